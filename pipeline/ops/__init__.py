"""Operations on topics and groups: topics apply, replays, DLQ redrive, offset resets, ingest."""
