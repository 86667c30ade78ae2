"""The HTTP ingest gateway: upstream systems publish events over HTTP (`pipeline gateway`)."""
