"""State beside the stream: the local cache, tables materialised from topics, PostgreSQL."""
