"""The console's HTTP side: pages rendered on the server, a little JSON for the live parts.

Read-only for anyone who reaches it; a redrive needs an API key (the
gateway's kind, from PIPELINE_CONSOLE__API_KEYS) in X-API-Key, and a
token from its preview. Pages escape everything a record carries: a dead
letter's body is whatever an upstream sent.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from pipeline.catalogue import Catalogue
from pipeline.console import dlq as dlq_view
from pipeline.console.autoscaler import read_decisions
from pipeline.console.replays import replays_in
from pipeline.console.watch import ClusterWatch
from pipeline.console.workers import WorkerReading, scrape_workers
from pipeline.errors import PipelineError
from pipeline.gateway.auth import KeyRing
from pipeline.gateway.errors import GatewayError
from pipeline.kafka.connect import connect
from pipeline.kafka.port import Clients
from pipeline.ops.dlq_tools import redrive
from pipeline.settings import PipelineSettings

log = logging.getLogger("pipeline.console")
HERE = Path(__file__).parent


@dataclass
class ConsoleConfig:
    settings: PipelineSettings
    catalogue: Catalogue | None
    metrics_urls: list[str] = field(default_factory=list)
    status_files: list[Path] = field(default_factory=list)
    interval_s: float = 5.0
    clients: Clients | None = None
    """Default: the cluster the settings name (tests pass the in-memory broker's)."""
    share_groups: dict[str, str] = field(default_factory=dict)
    """Queue-mode processors' share groups and their topics (pipeline.cli.common)."""


def create_console(config: ConsoleConfig) -> FastAPI:
    settings = config.settings
    clients = config.clients or connect(settings)
    watch = ClusterWatch(
        clients,
        config.catalogue,
        settings.topic_prefix,
        config.interval_s,
        share_groups=config.share_groups,
    )
    keys = KeyRing(settings.console.api_keys)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["number"] = _number
    templates.env.filters["seconds"] = _seconds
    templates.env.filters["when"] = _when

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await watch.start()
        try:
            yield
        finally:
            await watch.stop()

    app = FastAPI(title="pipeline console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            name,
            {"snapshot": watch.snapshot, "prefix": settings.topic_prefix, **context},
            status_code=status_code,
        )

    async def workers_by_group() -> dict[str, list[WorkerReading]]:
        grouped: dict[str, list[WorkerReading]] = {}
        for reading in await scrape_workers(config.metrics_urls):
            grouped.setdefault(reading.group or "?", []).append(reading)
        return grouped

    # -- pages ---------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        snapshot = watch.snapshot
        groups = [g for g in snapshot.groups.values() if not g.replay]
        return page(request, "overview.html", groups=groups, topics=snapshot.topics.values())

    @app.get("/groups/{group}", response_class=HTMLResponse)
    async def group_page(request: Request, group: str) -> HTMLResponse:
        view = watch.snapshot.groups.get(group)
        if view is None:
            return page(request, "missing.html", what=f"group {group!r}", status_code=404)
        workers = (await workers_by_group()).get(group, [])
        decisions = read_decisions(config.status_files).get(group, [])
        held = {key: n for w in workers for key, n in w.queued.items()}
        restoring = {key: n for w in workers for key, n in w.restoring.items()}
        owners = {
            (tp.topic, tp.partition): m.member_id
            for m in view.description.members
            for tp in m.assignment
        }
        return page(
            request,
            "group.html",
            view=view,
            workers=workers,
            held=held,
            restoring=restoring,
            owners=owners,
            decisions=decisions[-20:][::-1],
            scaled=bool(decisions),
        )

    @app.get("/dlq", response_class=HTMLResponse)
    async def dlq_list(request: Request) -> HTMLResponse:
        topics = [t for t in watch.snapshot.topics.values() if t.name.endswith(".dlq")]
        return page(request, "dlq_list.html", topics=topics)

    @app.get("/dlq/{topic}", response_class=HTMLResponse)
    async def dlq_topic(request: Request, topic: str) -> HTMLResponse:
        try:
            found = await dlq_view.recent(clients, topic)
        except PipelineError as exc:
            return page(request, "missing.html", what=str(exc), status_code=404)
        return page(request, "dlq_topic.html", dlq=found, keys_configured=not keys.open)

    @app.get("/dlq/{topic}/{partition}/{offset}", response_class=HTMLResponse)
    async def dlq_record(request: Request, topic: str, partition: int, offset: int) -> HTMLResponse:
        try:
            entry = await dlq_view.one_record(clients, topic, partition, offset)
        except PipelineError as exc:
            return page(request, "missing.html", what=str(exc), status_code=404)
        return page(request, "dlq_record.html", topic=topic, entry=entry, shown=entry.to_json())

    @app.get("/dlq/{topic}/redrive", response_class=HTMLResponse)
    async def redrive_preview(
        request: Request, topic: str, error_type: str | None = None
    ) -> HTMLResponse:
        try:
            plan = await dlq_view.preview(clients, topic, error_type)
        except PipelineError as exc:
            return page(request, "missing.html", what=str(exc), status_code=409)
        return page(
            request,
            "redrive_preview.html",
            topic=topic,
            error_type=error_type or "",
            plan=plan,
            token=dlq_view.plan_token(plan, error_type),
            keys_configured=not keys.open,
        )

    @app.get("/replays", response_class=HTMLResponse)
    async def replays_page(request: Request) -> HTMLResponse:
        return page(request, "replays.html", replays=replays_in(watch.snapshot))

    # -- JSON: what the pages' live parts poll ----------------------------------------------

    @app.get("/api/overview")
    async def api_overview() -> dict[str, Any]:
        snapshot = watch.snapshot
        return {
            "at": snapshot.at,
            "error": snapshot.error,
            "groups": [view.to_json() for view in snapshot.groups.values()],
            "topics": [
                {
                    "name": t.name,
                    "partitions": t.partitions,
                    "records": t.records,
                    "dlq_of": t.dlq_of,
                }
                for t in snapshot.topics.values()
            ],
        }

    @app.get("/api/groups/{group}")
    async def api_group(group: str) -> Response:
        view = watch.snapshot.groups.get(group)
        if view is None:
            return JSONResponse({"error": f"no group {group!r}"}, status_code=404)
        workers = (await workers_by_group()).get(group, [])
        return JSONResponse(
            {
                **view.to_json(),
                "workers": [w.to_json() for w in workers],
                "decisions": read_decisions(config.status_files).get(group, []),
            }
        )

    @app.get("/api/history")
    async def api_history(group: str | None = None) -> dict[str, Any]:
        wanted = [group] if group else [g for g, v in watch.snapshot.groups.items() if not v.replay]
        return {
            name: [
                {
                    "at": p.at,
                    "lag": p.lag,
                    "in": p.produce_rate,
                    "out": p.consume_rate,
                    "partitions": p.partition_lag,
                }
                for p in watch.history.get(name, ())
            ]
            for name in wanted
        }

    @app.get("/api/replays")
    async def api_replays() -> list[dict[str, object]]:
        return [replay.to_json() for replay in replays_in(watch.snapshot)]

    @app.post("/api/dlq/{topic}/redrive")
    async def api_redrive(
        topic: str,
        token: str,
        error_type: str | None = None,
        x_api_key: str | None = Header(default=None),
    ) -> JSONResponse:
        if keys.open:
            return _refused(
                403,
                "read_only",
                "this console is read-only: no API keys are configured "
                "(PIPELINE_CONSOLE__API_KEYS); redrive with `pipeline dlq redrive` instead",
            )
        try:
            who = keys.authorise(x_api_key, topic.removeprefix(settings.topic_prefix))
        except GatewayError as exc:
            return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        try:
            plan = await dlq_view.preview(clients, topic, error_type)
        except PipelineError as exc:
            return _refused(409, "cannot_redrive", str(exc))
        if dlq_view.plan_token(plan, error_type) != token:
            return _refused(
                409,
                "changed_since_preview",
                f"{topic} changed since the preview (new dead letters, or another redrive): "
                "nothing was sent; preview again",
            )
        sent = await redrive(settings, clients, plan, None)
        log.info("key %s redrove %d record(s) of %s (error type %s)", who, sent, topic, error_type)
        answer = {"sent": sent, "left_in_place": len(plan.too_often), "group": plan.group}
        return JSONResponse(answer)

    return app


def _refused(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"status": status, "reason": reason, "message": message}}, status_code=status
    )


def _number(value: float | int | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _seconds(value: float | str | None) -> str:
    if value is None:
        return "–"
    if value == "inf" or value == float("inf"):
        return "∞"
    return f"{float(value):,.1f}s"


def _when(value: float | None) -> str:
    if not value:
        return "–"
    return time.strftime("%H:%M:%S", time.gmtime(value)) + " UTC"
