"""Version 3 of avro_accounts, as a catalogue module."""

from tests.integration.catalogues.avro_accounts import V3 as CATALOGUE

__all__ = ["CATALOGUE"]
