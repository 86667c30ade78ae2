"""v1 with fewer partitions: must be refused."""

import dataclasses

from pipeline.catalogue import Catalogue
from tests.integration.catalogues.v1 import SAMPLES

CATALOGUE = Catalogue([dataclasses.replace(SAMPLES, partitions=2, retention_ms=1)])
