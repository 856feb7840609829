"""Hessian 2.0 draft grammar (sofa-hessian 3.x / hessian.js-1): colliding lead bytes, read and skip, encoder."""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from meshd.codec.hessian2 import (
    DraftReader, FinalReader, HessianError, JavaObject, Long, TypedList, TypedMap, decode_draft, encode_draft,
)

UTC = dt.timezone.utc


def one(data: bytes):
    values = decode_draft(data)
    assert len(values) == 1, values
    return values[0]


def skip_len(data: bytes) -> int:
    r = DraftReader(data)
    r.skip()
    return r.pos


VECTORS = [
    (b"N", None), (b"T", True), (b"F", False), (b"\x90", 0), (b"\xc8\x30", 48), (b"\xd4\x01\x00", 256),
    (b"I\x00\x01\x00\x00", 65536), (b"\xe0", 0), (b"\xf8\x10", 16), (b"\x3c\x10\x00", 4096),
    (b"\x77\x80\x00\x00\x00", -2**31), (b"L\x00\x00\x00\x01\x00\x00\x00\x00", 2**32),
    (b"\x67", 0.0), (b"\x68", 1.0), (b"\x69\xff", -1.0), (b"\x6a\x01\x00", 256.0),
    (b"\x6b" + struct.pack(">f", 0.5), 0.5), (b"D" + struct.pack(">d", 0.1), 0.1),
    (b"d\x00\x00\x00\xd0\x4b\x92\x84\xb8", dt.datetime(1998, 5, 8, 9, 51, 31, tzinfo=UTC)),
    (b"\x05hello", "hello"), (b"S\x00\x05hello", "hello"), (b"s\x00\x02heS\x00\x03llo", "hello"),
    (b"s\x00\x02he\x03llo", "hello"), (b"\x22ab", b"ab"), (b"B\x00\x02ab", b"ab"), (b"b\x00\x01aB\x00\x01b", b"ab"),
    (b"b\x00\x01a\x21b", b"ab"),
    (b"V\x6e\x02\x90\x91z", [0, 1]), (b"Vz", []), (b"V\x6c\x00\x00\x00\x01\x90z", [0]),
    (b"Vt\x00\x04[int\x6e\x01\x90z", [0]), (b"V\x90\x91z", [0, 1]),       # no type, no length
    (b"M\x05hello\x91z", {"hello": 1}), (b"Mt\x00\x01T\x01a\x91z", {"a": 1}), (b"H\x91\x90z", {1: 0}),
    (b"O\x93abc\x92\x01x\x01yo\x90\x91\x05hello", JavaObject("abc", {"x": 1, "y": "hello"})),
]


@pytest.mark.parametrize("data,expected", VECTORS, ids=[v[0][:6].hex() for v in VECTORS])
def test_grammar_vectors_read_and_skip(data, expected):
    value = one(data)
    assert value == expected
    assert type(value) is type(expected)
    assert skip_len(data) == len(data)


def test_fixed_list_with_type_reference():
    data = b"Vt\x00\x04[int\x6e\x01\x90z" + b"v\x90\x92\x91\x92"     # 'v' type-ref 0, length 2
    r = DraftReader(data)
    assert r.read_all() == [[0], [1, 2]]
    assert r.types == ["[int"]


def test_type_refs_with_T_and_u():
    data = b"Mt\x00\x01Tz" + b"M\x75\x90\x01a\x91z" + b"V\x54\x90\x6e\x00z"
    assert decode_draft(data) == [{}, {"a": 1}, []]


def test_references_in_three_widths():
    base = b"V\x6e\x01\x90z"
    for ref in (b"\x4a\x00", b"\x4b\x00\x00", b"R\x00\x00\x00\x00"):
        first, again = decode_draft(base + ref)
        assert again is first


def test_the_leads_collide_with_the_final_grammar():
    # 'O' starts a class definition in the draft, an object instance in the final grammar
    draft_obj = encode_draft(JavaObject("A", {"x": 1}))
    assert draft_obj[0] == 0x4F
    with pytest.raises(HessianError):
        FinalReader(draft_obj).read()
    # 'J' is a one-byte reference in the draft, a 64-bit date in the final grammar
    assert decode_draft(b"V\x6e\x00z\x4a\x00")[1] == []
    # 0x30-0x33 are short strings in the final grammar only
    with pytest.raises(HessianError, match="unexpected lead byte 0x30"):
        DraftReader(b"\x30\x01a").read()


def test_sofa_request_capture_shape():
    """The SofaRequest content of docs/protocols.md §4 (sofa-rpc-node 2.10.0), built byte for byte."""
    name = b"com.alipay.sofa.rpc.core.request.SofaRequest"
    svc = b"com.nodejs.test.TestService:1.0"
    content = (b"O\xbc" + name + b"\x95\x0amethodName\x0dmethodArgSigs\x17targetServiceUniqueName"
               b"\x0dtargetAppName\x0crequestProps"
               + b"o\x90\x04plus" + b"Vt\x00\x11[java.lang.String\x6e\x02\x03int\x03intz"
               + b"\x1f" + svc + b"N" + b"M\x07service\x1f" + svc + b"z" + b"\x91\x92")
    assert len(content) == 0xEF
    req, a, b = decode_draft(content)
    assert req == JavaObject(name.decode(), {
        "methodName": "plus", "methodArgSigs": ["int", "int"], "targetServiceUniqueName": svc.decode(),
        "targetAppName": None, "requestProps": {"service": svc.decode()}})
    assert (a, b) == (1, 2)
    # and our encoder writes exactly these bytes for that value
    again = encode_draft(JavaObject(name.decode(), {
        "methodName": "plus", "methodArgSigs": TypedList("[java.lang.String", ["int", "int"]),
        "targetServiceUniqueName": svc.decode(), "targetAppName": None,
        "requestProps": {"service": svc.decode()}}), 1, 2)
    assert again == content


def test_begin_object_finds_fields_by_name():
    data = encode_draft(JavaObject("X", {"a": [1, 2], "methodName": "m", "z": {"k": "v"}}), 7)
    r = DraftReader(data)
    cdef = r.begin_object()
    assert cdef.fields == ["a", "methodName", "z"]
    r.skip()
    assert r.read() == "m"
    r.skip()
    assert r.read() == 7
    assert DraftReader(b"\x91").begin_object() is None


MALFORMED = [
    (b"o\x90", "class reference 0 out of range"), (b"\x4a\x00", "reference 0 out of range"),
    (b"v\x90\x91\x90", "type reference 0 out of range"), (b"V\x90", "truncated"), (b"M\x91", "truncated"),
    (b"s\x00\x01a\x90", "bad string chunk"), (b"b\x00\x01a\x90", "bad binary chunk"), (b"O\x8f", "negative"),
    (b"z", "unexpected lead byte 0x7a"), (b"Z", "unexpected lead byte 0x5a"), (b"\x43", "unexpected lead byte 0x43"),
]


@pytest.mark.parametrize("data,message", MALFORMED, ids=[m[0].hex() for m in MALFORMED])
def test_malformed(data, message):
    with pytest.raises(HessianError, match=message):
        DraftReader(data).read()
    with pytest.raises(HessianError):
        DraftReader(data).skip()


def test_depth_and_definition_loops_are_bounded():
    with pytest.raises(HessianError, match="nesting deeper"):
        DraftReader(b"V" * 10_000 + b"\x90").read()
    assert DraftReader(b"O\x91A\x90" * 20_000 + b"\x90").read() == 0


@pytest.mark.parametrize("value,expected", [
    (Long(2**20), b"\x77\x00\x10\x00\x00"), (0.0, b"\x67"), (1.0, b"\x68"), (-1.0, b"\x69\xff"),
    (256.0, b"\x6a\x01\x00"), (0.5, b"\x6b" + struct.pack(">f", 0.5)), (0.1, b"D" + struct.pack(">d", 0.1)),
    ("a" * 32, b"S\x00\x20" + b"a" * 32), (b"x" * 16, b"B\x00\x10" + b"x" * 16), ([1], b"V\x6e\x01\x91z"),
    ({"a": 1}, b"M\x01a\x91z"), (TypedMap("T", {}), b"Mt\x00\x01Tz"),
    (dt.datetime(1998, 5, 8, 9, 51, 31, tzinfo=UTC), b"d\x00\x00\x00\xd0\x4b\x92\x84\xb8"),
])
def test_encoder_forms(value, expected):
    assert encode_draft(value) == expected


def test_encoder_reuses_types_classes_and_refs():
    shared = {"k": "v"}
    values = [TypedList("[int", [1]), TypedList("[int", [2, 3]), JavaObject("P", {"v": 1}),
              JavaObject("P", {"v": 2}), shared, shared]
    data = encode_draft(*values)
    assert data.count(b"[int") == 1 and data.count(b"\x91P") == 1
    out = decode_draft(data)
    assert out[:4] == [[1], [2, 3], JavaObject("P", {"v": 1}), JavaObject("P", {"v": 2})]
    assert out[4] == shared and out[5] is out[4]


def test_encoder_long_strings_and_binaries_chunk():
    text = "\u4e16" * 70_000
    data = encode_draft(text, b"\x01" * 70_000)
    assert data[0] == 0x73                     # 's' non-final chunk
    assert decode_draft(data) == [text, b"\x01" * 70_000]
