"""The wire format: how an event becomes a record, and how a record's envelope is read."""
