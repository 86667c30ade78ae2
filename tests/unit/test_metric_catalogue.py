"""Every metric name has a description, and the operations page lists each one as served."""

from __future__ import annotations

import re
import typing

from pipeline.metric_names import CATALOGUE, MetricName
from pipeline.paths import project_dir

GATEWAY = {"requests", "request_seconds", "rejections", "events_published"}


def test_every_name_is_described_and_every_description_names_a_metric() -> None:
    assert set(typing.get_args(MetricName)) == set(CATALOGUE)
    for kind, _labels, text in CATALOGUE.values():
        assert kind in ("counter", "gauge", "histogram") and text.endswith(".")


def test_the_operations_page_table_is_the_catalogue() -> None:
    readme = (project_dir() / "docs" / "operations" / "observe.md").read_text()
    rows = dict(re.findall(r"^\| `(pipeline_[a-z_]+)` \| (\w+) \|", readme, re.MULTILINE))
    expected = {}
    for name, (kind, _labels, _text) in CATALOGUE.items():
        prefix = "pipeline_gateway_" if name in GATEWAY else "pipeline_"
        expected[prefix + name + ("_total" if kind == "counter" else "")] = kind
    assert rows == expected
