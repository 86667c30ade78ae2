"""The application's processors: `pipeline worker NAME` looks NAME up in PROCESSORS.

The example pipeline's processors (enrich_orders, order_stats) arrive with
the caching and sink work; the runtime's own tests run processors from
tests/integration/processors.py.
"""

from pipeline.processor import Processor

PROCESSORS: dict[str, Processor] = {}
