"""v1 with more partitions and a longer retention: an allowed update."""

import dataclasses

from pipeline.catalogue import Catalogue
from tests.integration.catalogues.v1 import SAMPLES

CATALOGUE = Catalogue([dataclasses.replace(SAMPLES, partitions=6, retention_ms=7_200_000)])
