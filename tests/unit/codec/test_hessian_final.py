"""Final Hessian 2.0 grammar: every lead byte of docs/protocols.md §3, read and skip, limits, the encoder."""

from __future__ import annotations

import datetime as dt
import math
import struct

import pytest

from meshd.codec.base import CodecError, EncodeError
from meshd.codec.hessian2 import (
    FinalEncoder, FinalReader, HessianError, JavaDate, JavaObject, Long, MapKey, SkippedRef, TypedList,
    TypedMap, decode_final, encode_final,
)

UTC = dt.timezone.utc


def one(data: bytes):
    values = decode_final(data)
    assert len(values) == 1, values
    return values[0]


def skip_len(data: bytes) -> int:
    r = FinalReader(data)
    r.skip()
    return r.pos


# (bytes, value) pairs written from the grammar table, not from our encoder.
VECTORS = [
    (b"N", None), (b"T", True), (b"F", False),
    (b"\x90", 0), (b"\x80", -16), (b"\xbf", 47), (b"\xc8\x30", 48), (b"\xc0\x00", -2048), (b"\xcf\xff", 2047),
    (b"\xd0\x00\x00", -262144), (b"\xd7\xff\xff", 262143), (b"I\x7f\xff\xff\xff", 2**31 - 1),
    (b"I\x80\x00\x00\x00", -2**31),
    (b"\xe0", 0), (b"\xd8", -8), (b"\xef", 15), (b"\xf8\x10", 16), (b"\xf0\x00", -2048),
    (b"\x3c\x01\x00", 256), (b"\x38\x00\x00", -262144), (b"\x59\x80\x00\x00\x00", -2**31),
    (b"L\x7f\xff\xff\xff\xff\xff\xff\xff", 2**63 - 1),
    (b"\x5b", 0.0), (b"\x5c", 1.0), (b"\x5d\x80", -128.0), (b"\x5e\x80\x00", -32768.0),
    (b"\x5f\x00\x00\x04\xd3", 0.001 * 1235), (b"D" + struct.pack(">d", 2.5), 2.5),
    (b"\x4a\x00\x00\x00\xd0\x4b\x92\x84\xb8", dt.datetime(1998, 5, 8, 9, 51, 31, tzinfo=UTC)),
    (b"\x4b\x00\xe3\x83\x8f", dt.datetime(1998, 5, 8, 9, 51, tzinfo=UTC)),
    (b"\x00", ""), (b"\x05hello", "hello"), (b"\x01\xc3\x83", "\u00c3"),
    (b"\x30\x20" + b"a" * 32, "a" * 32), (b"S\x00\x05hello", "hello"),
    (b"R\x00\x03hel\x02lo", "hello"), (b"R\x00\x01h" + b"R\x00\x01e" + b"S\x00\x03llo", "hello"),
    (b"\x20", b""), (b"\x23\x01\x02\x03", b"\x01\x02\x03"), (b"\x34\x10" + b"x" * 16, b"x" * 16),
    (b"B\x00\x02ab", b"ab"), (b"A\x00\x02ab" + b"\x21c", b"abc"),
    (b"\x57\x90\x91Z", [0, 1]), (b"\x58\x92\x90\x91", [0, 1]), (b"\x7a\x90\x91", [0, 1]), (b"\x78", []),
    (b"\x55\x04[int\x90Z", [0]), (b"V\x04[int\x92\x90\x91", [0, 1]), (b"\x72\x04[int\x90\x91", [0, 1]),
    (b"H\x91\x03fooZ", {1: "foo"}), (b"M\x08java.Map\x01a\x91Z", {"a": 1}), (b"HZ", {}),
    (b"C\x0bexample.Car\x92\x05color\x05model\x60\x03red\x06corvet",
     JavaObject("example.Car", {"color": "red", "model": "corvet"})),
    (b"C\x01A\x91\x01xO\x90\x93", JavaObject("A", {"x": 3})),
]


@pytest.mark.parametrize("data,expected", VECTORS, ids=[v[0][:6].hex() for v in VECTORS])
def test_grammar_vectors_read_and_skip(data, expected):
    value = one(data)
    assert value == expected
    assert type(value) is type(expected)
    assert skip_len(data) == len(data)


def test_type_references_and_class_reuse():
    # second typed list refers to its type by number; second object reuses definition 0 (0x60)
    data = (b"\x72\x04[int\x90\x91" + b"\x71\x90\x92"
            + b"C\x01P\x91\x01v" + b"\x60\x01a" + b"\x60\x01b")
    r = FinalReader(data)
    assert r.read_all() == [[0, 1], [2], JavaObject("P", {"v": "a"}), JavaObject("P", {"v": "b"})]
    assert r.types == ["[int"]


def test_back_references_resolve_to_the_same_object_and_cycles():
    data = b"\x7a\x90\x91" + b"\x51\x90"          # list, then a reference to it
    first, again = decode_final(data)
    assert again is first
    cyc = one(b"C\x04Node\x91\x04next\x60\x51\x90")   # Node whose next is itself
    assert cyc["next"] is cyc


def test_reference_to_a_skipped_container_reads_as_skippedref():
    data = b"\x7a\x90\x91" + b"\x51\x90"
    r = FinalReader(data)
    r.skip()
    assert r.read() == SkippedRef(0)


def test_skip_then_read_shares_class_definitions():
    # definition made inside a skipped value is used by a later read value (one table per body)
    data = b"C\x01A\x91\x01x\x60\x90" + b"\x60\x91"
    r = FinalReader(data)
    r.skip()
    assert r.read() == JavaObject("A", {"x": 1})


def test_strings_count_utf16_units_both_encodings():
    smile = "\U0001F600"
    cesu = b"\x02\xed\xa0\xbd\xed\xb8\x80"        # Java: two 3-byte surrogates, length 2 units
    four = b"\x02\xf0\x9f\x98\x80"                 # JS: one 4-byte sequence, still 2 units
    assert one(cesu) == smile
    assert one(four) == smile
    assert skip_len(cesu) == len(cesu) and skip_len(four) == len(four)
    mixed = "a\u00e9\u4e16" + smile + "z"
    data = encode_final(mixed)
    assert data[0] == 6                            # a é 世 + 2 surrogates + z = 6 units
    assert one(data) == mixed


def test_unhashable_keys_are_wrapped():
    value = one(b"H\x79\x90\x91Z")                  # {[0]: 1}
    (key, v), = value.items()
    assert isinstance(key, MapKey) and key.value == [0] and v == 1


def test_dates_out_of_datetime_range():
    assert one(b"\x4a" + struct.pack(">q", 2**62)) == JavaDate(2**62)


MALFORMED = [
    (b"", "truncated"), (b"\x05hel", "truncated"), (b"I\x00\x00", "truncated"), (b"Z", "unexpected lead"),
    (b"\x40", "unexpected lead"), (b"\x57\x90", "truncated"), (b"\x51\x90", "reference 0 out of range"),
    (b"\x60", "class reference 0 out of range"), (b"O\x95", "class reference 5"),
    (b"\x71\x90\x90", "type reference 0"), (b"C\x01A\x8f", "negative field count"),
    (b"\x58\x8f", "negative list length"), (b"\x02\x80\x80", "invalid UTF-8 lead"),
    (b"\x01\xf0\x9f\x98\x80", "splits a 4-byte"), (b"\x01\xc3", "truncated"), (b"R\x00\x01a\x90", "bad string chunk"),
    (b"A\x00\x01a\x90", "bad binary chunk"), (b"C\x90\x90", r"expected a string \(class name\)"),
    (b"\x01\xed\xa0", "truncated"),
]


@pytest.mark.parametrize("data,message", MALFORMED, ids=[m[0].hex() or "empty" for m in MALFORMED])
def test_malformed_raise_hessian_error_in_read_and_skip(data, message):
    with pytest.raises(HessianError, match=message):
        FinalReader(data).read()
    with pytest.raises(HessianError):
        FinalReader(data).skip()


def test_hessian_error_is_a_codec_error():
    assert issubclass(HessianError, CodecError)


def test_depth_limit():
    deep = b"\x79" * 50 + b"\x90"
    assert FinalReader(deep, max_depth=50).read() is not None
    with pytest.raises(HessianError, match="nesting deeper than 49"):
        FinalReader(deep, max_depth=49).read()
    with pytest.raises(HessianError, match="nesting deeper"):
        FinalReader(deep, max_depth=49).skip()


def test_depth_default_protects_the_python_stack():
    deep = b"\x79" * 100_000 + b"\x90"
    with pytest.raises(HessianError, match="nesting deeper"):
        FinalReader(deep).read()


def test_value_budget():
    data = b"\x57" + b"\x90" * 100 + b"Z"
    assert len(FinalReader(data, max_values=101).read()) == 100
    with pytest.raises(HessianError, match="too many values"):
        FinalReader(data, max_values=100).read()
    with pytest.raises(HessianError, match="too many values"):
        FinalReader(data, max_values=100).skip()


def test_repeated_class_definitions_are_looped_not_recursive():
    data = b"C\x01A\x90" * 20_000 + b"\x90"
    assert FinalReader(data).read() == 0


def test_declared_lengths_allocate_nothing():
    # a fixed list that claims 2**31-1 elements: fails on truncation, without allocating them
    with pytest.raises(HessianError, match="truncated"):
        FinalReader(b"\x58I\x7f\xff\xff\xff\x90").read()


def test_reader_bounds_respect_end():
    data = b"\x05hello\x90"
    r = FinalReader(data, 0, 4)
    with pytest.raises(HessianError, match="truncated"):
        r.read()


# -- encoder -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (0, b"\x90"), (-16, b"\x80"), (47, b"\xbf"), (48, b"\xc8\x30"), (-2048, b"\xc0\x00"),
    (262143, b"\xd7\xff\xff"), (262144, b"I\x00\x04\x00\x00"), (2**31, b"L" + struct.pack(">q", 2**31)),
    (Long(0), b"\xe0"), (Long(16), b"\xf8\x10"), (Long(4096), b"\x3c\x10\x00"), (Long(2**20), b"\x59\x00\x10\x00\x00"),
    (0.0, b"\x5b"), (1.0, b"\x5c"), (-128.0, b"\x5d\x80"), (300.0, b"\x5e\x01\x2c"), (1.5, b"\x5f\x00\x00\x05\xdc"),
    (0.1, b"\x5f\x00\x00\x00\x64"), (1e300, b"D" + struct.pack(">d", 1e300)), ("", b"\x00"), ("a" * 32, b"\x30\x20" + b"a" * 32),
    ("a" * 1024, b"S\x04\x00" + b"a" * 1024), (b"", b"\x20"), (b"x" * 16, b"\x34\x10" + b"x" * 16),
    (b"x" * 1024, b"B\x04\x00" + b"x" * 1024), ([], b"\x78"), ([0] * 8, b"\x58\x98" + b"\x90" * 8),
    ({}, b"HZ"), (TypedList("[int", [0]), b"\x71\x04[int\x90"), (TypedMap("T", {}), b"M\x01TZ"),
    (dt.datetime(1998, 5, 8, 9, 51, tzinfo=UTC), b"\x4b\x00\xe3\x83\x8f"),
    (dt.datetime(1998, 5, 8, 9, 51, 31, tzinfo=UTC), b"\x4a\x00\x00\x00\xd0\x4b\x92\x84\xb8"),
])
def test_encoder_forms(value, expected):
    assert encode_final(value) == expected


def test_encoder_chunks_long_strings_without_splitting_surrogates():
    text = "a" * 0x7FFF + "\U0001F600" + "b" * 10
    data = encode_final(text)
    assert data[:3] == b"R\x7f\xff"              # first chunk stops before the high surrogate
    assert one(data) == text
    assert skip_len(data) == len(data)


def test_encoder_refs_for_shared_and_cyclic_containers():
    shared = [1]
    node = JavaObject("Node", {"next": None})
    node["next"] = node
    a, b, n = decode_final(encode_final(shared, shared, node))
    assert a is b and n["next"] is n


def test_encoder_class_definitions_are_written_once():
    objs = [JavaObject("P", {"v": i}) for i in range(20)]
    data = encode_final(*objs)
    assert data.count(b"C\x01P") == 1
    assert decode_final(data) == objs           # indexes >15 use 'O' + int


def test_encoder_rejects_what_hessian_cannot_carry():
    with pytest.raises(EncodeError):
        encode_final(object())
    with pytest.raises(EncodeError):
        encode_final(2**64)
    deep: list = []
    cur = deep
    for _ in range(200):
        cur.append([])
        cur = cur[0]
    with pytest.raises(EncodeError, match="nested deeper"):
        FinalEncoder(max_depth=100).write(deep)


def test_encoder_nan_and_infinities():
    for v in (math.inf, -math.inf):
        assert one(encode_final(v)) == v
    assert math.isnan(one(encode_final(math.nan)))
