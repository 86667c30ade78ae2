"""The Kafka port (port.py) and its adapters, one subpackage each: aiokafka/, confluent/, memory/.

`connect.py` chooses the adapter; nothing outside this package imports a Kafka client.
"""
