"""v1 with an optional field added, as schema version 2."""

from tests.integration.catalogues.evolved import COMPATIBLE as CATALOGUE

__all__ = ["CATALOGUE"]
