"""The confluent-kafka adapter: the port (pipeline.kafka.port) on librdkafka.

The only package that imports confluent_kafka. Same file names as the other adapters for
the same roles: clients, config, consumer, producer, admin, errors.
"""
