"""Protocol sniffing over byte prefixes: match / need more / no match, for every prefix length."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec_helpers import capture_streams
from meshd.codec.bolt import encode_heartbeat as bolt_heartbeat
from meshd.codec.bolt import encode_request as bolt_request
from meshd.codec.dubbo import encode_heartbeat as dubbo_heartbeat
from meshd.codec.sniff import (
    ALL_PROTOCOLS, HTTP2_PREFACE, MATCH, MAX_SNIFF_BYTES, NEED_MORE, NO_MATCH, sniff, sniff_bolt, sniff_dubbo,
    sniff_http1, sniff_tls,
)

CLIENT_HELLO = bytes.fromhex("160301020001") + bytes(40)


def first_bytes():
    dubbo = capture_streams("dubbo_js_to_sofa_dubbo.tap")[(0, "C>S")]
    bolt = capture_streams("sofa_node_bolt_draft.tap")[(0, "C>S")]
    return [
        ("dubbo", dubbo), ("dubbo", dubbo_heartbeat(1)), ("bolt", bolt), ("bolt", bolt_heartbeat(1)),
        ("bolt", bolt_request(1, "a:1.0", "m", version=2, ver1=2, crc=True)),
        ("http2", HTTP2_PREFACE + b"\x00\x00\x12\x04"), ("http1", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("http1", b"POST /x HTTP/1.1\r\n"), ("http1", b"OPTIONS * HTTP/1.1\r\n"), ("http1", b"PATCH /a HTTP/1.0\r\n"),
        ("http1", b"UNLINK /a HTTP/1.1\r\n"), ("tls", CLIENT_HELLO),
    ]


@pytest.mark.parametrize("protocol,data", first_bytes(), ids=lambda v: v if isinstance(v, str) else None)
def test_real_first_bytes_are_recognised_and_prefixes_ask_for_more(protocol, data):
    decided_at = None
    for n in range(len(data) + 1):
        result = sniff(data[:n])
        assert result.status is not NO_MATCH, (n, data[:n])
        if result.status is MATCH:
            assert result.protocol == protocol
            decided_at = decided_at or n
    assert decided_at is not None and decided_at <= MAX_SNIFF_BYTES


@pytest.mark.parametrize("data", [
    b"\x00", b"hello", b"\xda\xba", b"\xda\xbb\x02",           # a Dubbo response cannot open a connection
    b"\xda\xbb\x9f", b"\x01\x03", b"\x01\x01\x01", b"\x01\x01\x00\x07", b"\x02\x03", b"\x02\x01\x05",
    b"PRI * HTTP/1.1", b"GETX", b"get /", b"\x16\x02", b"SSH-2.0-OpenSSH\r\n",
])
def test_garbage_is_no_match(data):
    assert sniff(data).status is NO_MATCH


def test_individual_matchers_and_protocol_selection():
    assert sniff_dubbo(b"\xda\xbb\xe2") is MATCH and sniff_dubbo(b"\xda") is NEED_MORE
    assert sniff_bolt(b"\x01\x01\x00\x01") is MATCH and sniff_bolt(b"\x01\x01\x00") is NEED_MORE
    assert sniff_http1(b"DELETE ") is MATCH and sniff_http1(b"DEL") is NEED_MORE
    assert sniff_tls(b"\x16\x03") is MATCH
    assert sniff(b"GET / HTTP/1.1", protocols=("dubbo", "bolt")).status is NO_MATCH
    assert sniff(b"\xda\xbb\xc2", protocols=("bolt",)).status is NO_MATCH
    with pytest.raises(ValueError, match="unknown protocol 'smtp'"):
        sniff(b"x", protocols=("smtp",))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_any_prefix_gets_an_answer_and_never_needs_more_than_max(data):
    result = sniff(data)
    assert result.status in (MATCH, NEED_MORE, NO_MATCH)
    if len(data) >= MAX_SNIFF_BYTES:
        assert result.status is not NEED_MORE
    if result.status is MATCH:
        assert result.protocol in ALL_PROTOCOLS
