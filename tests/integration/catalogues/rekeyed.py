"""v1 keyed by another field: must be refused."""

import dataclasses

from pipeline.catalogue import Catalogue
from tests.integration.catalogues.v1 import SAMPLES

CATALOGUE = Catalogue([dataclasses.replace(SAMPLES, key_field="note")])
