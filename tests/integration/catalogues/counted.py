"""The runtime tests' source topic, for `topics apply` with tests.integration.processors: its
stateful processors' changelogs are made with it."""

from pipeline.catalogue import Catalogue
from tests.integration.processors import SOURCE

CATALOGUE = Catalogue([SOURCE])
