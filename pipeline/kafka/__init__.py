"""Everything that talks to Kafka: clients, the producer, admin and offset queries."""
