"""Local infrastructure for development and tests: Kafka from Maven jars, PostgreSQL from Debian."""
