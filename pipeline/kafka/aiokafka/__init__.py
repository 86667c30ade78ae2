"""The aiokafka adapter: the port (pipeline.kafka.port) on aiokafka, and nothing else.

The only package that imports aiokafka. Same file names as the other adapters for the
same roles: clients, config, consumer, producer, admin, errors.
"""
