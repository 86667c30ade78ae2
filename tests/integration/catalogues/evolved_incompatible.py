"""v1 with a required field renamed, as schema version 2: refused."""

from tests.integration.catalogues.evolved import INCOMPATIBLE as CATALOGUE

__all__ = ["CATALOGUE"]
