"""Reading topics and offsets back, built on the Kafka port: whole topics, log ends, commits."""
