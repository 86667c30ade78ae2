from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from pipeline.kafka.partitioner import kafka_partition, murmur2

# Signed 32-bit results of org.apache.kafka.common.utils.Utils.murmur2 for
# these inputs, as Kafka's own UtilsTest lists them.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
}


def test_murmur2_matches_java_vectors() -> None:
    for data, signed in JAVA_MURMUR2.items():
        assert murmur2(data) == signed & 0xFFFFFFFF


def test_partition_is_positive_murmur2_modulo_count() -> None:
    for data, signed in JAVA_MURMUR2.items():
        for count in (1, 3, 12, 100):
            assert kafka_partition(data, count) == (signed & 0x7FFFFFFF) % count


def test_cached_answer_depends_on_partition_count() -> None:
    first = kafka_partition(b"customer-42", 12)
    assert kafka_partition(b"customer-42", 12) == first
    assert kafka_partition(b"customer-42", 1) == 0


@given(st.binary(max_size=64))
def test_murmur2_agrees_with_aiokafkas_on_any_bytes(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)
