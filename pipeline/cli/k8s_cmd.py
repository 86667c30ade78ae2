"""`pipeline k8s render`: Kubernetes and KEDA manifests for a processor."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.common import console, parse_duration, settings_for_cli

app = typer.Typer(
    help="Kubernetes manifests for workers and their autoscaling.\n\n"
    "Example: pipeline k8s render enrich_orders --image registry/pipeline:1.4 --out k8s/",
    no_args_is_help=True,
)


@app.command()
def render(
    processor: str = typer.Argument(..., help="Processor name from the processors module."),
    image: str = typer.Option(..., "--image", help="Container image with this project."),
    namespace: str = typer.Option("default", "--namespace", help="Kubernetes namespace."),
    scale_on: str = typer.Option(
        "kafka", "--scale-on", help="kafka: KEDA's Kafka scaler; prometheus: our policy."
    ),
    min_replicas: int = typer.Option(1, "--min", help="Fewest worker replicas."),
    max_replicas: int = typer.Option(
        8, "--max", help="Most worker replicas (more than the source's partitions would idle)."
    ),
    target_drain: str = typer.Option(
        "30s", "--target-drain", help="How soon a backlog should be gone (30s, 2m)."
    ),
    scale_down_window: str = typer.Option(
        "20s", "--scale-down-window", help="Scale down only to the highest need of this window."
    ),
    caught_up_window: str = typer.Option(
        "5s", "--caught-up-window", help="Our policy only (--scale-on prometheus)."
    ),
    replica_rate: float = typer.Option(
        200.0, "--replica-rate", help="Events/s one replica handles (sets KEDA's lagThreshold)."
    ),
    prometheus_url: str = typer.Option(
        "http://prometheus.monitoring:9090",
        "--prometheus-url",
        help="Where KEDA's Prometheus scaler queries (--scale-on prometheus).",
    ),
    gateway: bool = typer.Option(
        False, "--gateway", help="Also the HTTP gateway's Deployment and Service."
    ),
    cache_size: str = typer.Option(
        "1Gi", "--cache-size", help="The table caches' emptyDir (Mi or Gi)."
    ),
    out: Path = typer.Option(None, "--out", help="Write files here instead of printing them."),
) -> None:
    """Fill the Kubernetes templates in from a processor's settings and the scaling policy.

    Example: pipeline k8s render enrich_orders --image registry/pipeline:1.4 --scale-on prometheus

    With PIPELINE_SECURITY_PROTOCOL=SASL_SSL (or SSL, SASL_PLAINTEXT) the
    workers, the gateway and KEDA read the Kafka credentials from Secrets
    (<name>-kafka: username, password, sasl, tls; <name>-kafka-tls: ca.crt).
    """
    from pipeline.processor import load_processor
    from pipeline.scaling.k8s import RenderOptions, write
    from pipeline.scaling.k8s import render as render_manifests
    from pipeline.scaling.policy import ScalingPolicy

    settings = settings_for_cli()
    found = load_processor(settings.processors_module, processor, settings.topic_prefix)
    policy = ScalingPolicy(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_drain_s=parse_duration(target_drain),
        scale_down_window_s=parse_duration(scale_down_window),
        caught_up_window_s=parse_duration(caught_up_window),
    )
    rendered = render_manifests(
        found,
        settings,
        policy,
        RenderOptions(
            image=image,
            namespace=namespace,
            scale_on=scale_on,
            replica_rate=replica_rate,
            prometheus_url=prometheus_url,
            gateway=gateway,
            cache_size=cache_size,
        ),
    )
    if out is None:
        typer.echo("\n---\n".join(rendered.values()))
        return
    for path in write(rendered, out):
        console.print(f"wrote {path}")
