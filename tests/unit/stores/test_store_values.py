"""What a plain store keeps: the bytes msgpack would write, read back as they went in."""

from __future__ import annotations

from decimal import Decimal

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from pipeline.stores.store_spec import Store, _encode_extension

PLAIN: Store[object] = Store("plain")


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_a_decimal_is_written_as_msgpack_writes_it_and_read_back_equal(value: Decimal) -> None:
    encoded = PLAIN.encode(value)
    assert encoded == msgpack.packb(value, default=_encode_extension)
    assert PLAIN.decode(encoded) == value
    assert str(PLAIN.decode(encoded)) == str(value), "the exponent (1.10 vs 1.1) is kept"


def test_a_decimal_too_long_for_an_ext_8_still_round_trips() -> None:
    value = Decimal("1" * 400)
    assert PLAIN.decode(PLAIN.encode(value)) == value


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=10,
    )
)
def test_plain_values_round_trip(value: object) -> None:
    assert PLAIN.decode(PLAIN.encode(value)) == value
