"""Publishing events, built on the Kafka port: the EventProducer and what keeps it ordered."""
