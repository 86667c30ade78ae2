"""Version 1 of avro_accounts, as a catalogue module."""

from tests.integration.catalogues.avro_accounts import V1 as CATALOGUE

__all__ = ["CATALOGUE"]
