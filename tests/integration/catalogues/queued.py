"""The queue tests' source topics, for `topics apply` with tests.integration.processors: the
share groups of its queue-mode processors get their configs with them."""

from pipeline.catalogue import Catalogue
from tests.integration.processors import NARROW_QUEUE, QUEUE_SOURCE

CATALOGUE = Catalogue([QUEUE_SOURCE, NARROW_QUEUE])
