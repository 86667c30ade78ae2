"""`pipeline new`: a project of one's own, written from templates, that works as written.

A new project should run before its author changes a line: its test passes
with `pytest`, and `pipeline infra up`, `topics apply` and `worker` run its
processor. So the skeleton is small and complete: a catalogue of two
topics, one processor, its `TestPipeline` test, and a pyproject.toml whose
`[tool.pipeline]` table names the modules, so that no command needs an
environment variable to find them.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from pipeline.errors import ConfigError

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "Event processors on Apache Kafka, built with event-pipeline."
requires-python = ">=3.11"
dependencies = ["event-pipeline"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=1"]

[tool.setuptools]
packages = ["$package"]

# Read by every `pipeline` command run from this folder (PIPELINE_* variables override).
[tool.pipeline]
catalogue_module = "$package.topics"
processors_module = "$package.processors"

[tool.pytest.ini_options]
asyncio_mode = "auto"
"""

TOPICS = '''\
"""The topics of $name: each declared once, with the model of its events and its key."""

from pydantic import BaseModel

from pipeline import Catalogue, TopicSpec


class Order(BaseModel):
    order_id: str
    amount_cents: int


class Receipt(BaseModel):
    order_id: str
    total: str


ORDERS = TopicSpec("orders", Order, key_field="order_id", partitions=6, replication_factor=1)
RECEIPTS = TopicSpec("receipts", Receipt, key_field="order_id", partitions=6, replication_factor=1)
CATALOGUE = Catalogue([ORDERS, RECEIPTS])
'''

PROCESSORS = '''\
"""The processors of $name: what `pipeline worker NAME` runs."""

from pipeline import Context, Processor

from $package.topics import ORDERS, RECEIPTS, Order, Receipt


async def receipt(order: Order, ctx: Context) -> Receipt:
    return Receipt(order_id=order.order_id, total=f"{order.amount_cents / 100:.2f} EUR")


RECEIPTS_PROCESSOR = Processor("receipts", ORDERS, receipt, outputs=(RECEIPTS,))
PROCESSORS = {"receipts": RECEIPTS_PROCESSOR}
'''

TEST = '''\
"""The processor in the real worker runtime, on an in-memory broker: no Kafka needed."""

from pipeline import TestPipeline

from $package.processors import RECEIPTS_PROCESSOR
from $package.topics import ORDERS, RECEIPTS, Order, Receipt


async def test_every_order_gets_a_receipt() -> None:
    async with TestPipeline(RECEIPTS_PROCESSOR) as pipeline:
        await pipeline.publish(ORDERS, [Order(order_id="o-1", amount_cents=1250)])
        await pipeline.processed()
        assert pipeline.outputs(RECEIPTS) == [Receipt(order_id="o-1", total="12.50 EUR")]
        assert pipeline.dead_letters() == []
'''

README = """\
# $name

Event processors on Apache Kafka, built with event-pipeline.

    pip install -e '.[test]' && pytest

    pipeline infra up && pipeline topics apply && pipeline worker receipts

The first line runs the processor's test (no Kafka needed). The second starts
a local Kafka under .state/, creates the topics `$package/topics.py` declares
and runs the processor `$package/processors.py` names; publish to it with
`pipeline produce --topic orders --file orders.jsonl` (one JSON object a line).
`pipeline infra down` stops Kafka. Every command has `--help`.
"""

GITIGNORE = """\
.state/
__pycache__/
*.egg-info/
.pytest_cache/
"""


def package_name(name: str) -> str:
    if not NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a project name: start with a letter, then letters, digits, "
            "'-' or '_' (e.g. orders-app)"
        )
    return name.replace("-", "_").lower()


def files_of(name: str) -> dict[str, str]:
    """Relative path -> content of a new project called `name`."""
    package = package_name(name)
    fill = {"name": name, "package": package}
    templates = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        ".gitignore": GITIGNORE,
        f"{package}/__init__.py": '"""$name: its topics and processors."""\n',
        f"{package}/topics.py": TOPICS,
        f"{package}/processors.py": PROCESSORS,
        "tests/test_processors.py": TEST,
    }
    return {path: Template(text).substitute(fill) for path, text in templates.items()}


def write_project(name: str, into: Path) -> Path:
    """The project in `into/name`; refuses a folder that exists and is not empty."""
    folder = into / name
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} exists and is not empty; choose another name or folder")
    for relative, text in files_of(name).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder
