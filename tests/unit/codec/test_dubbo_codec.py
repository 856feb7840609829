"""Dubbo2 codec: transcripts of captured real traffic, lazy bodies, events, limits, id rewriting, encoders."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec_helpers import (
    capture_streams, drain, feed_all, normalize_ours, normalize_pyhessian, pyhessian_values,
)
from meshd.codec.base import CLOSED, NEED_DATA, FrameTooLarge, ProtocolError, UnsupportedSerialization
from meshd.codec.dubbo import (
    DubboDecoder, DubboEvent, DubboHeartbeat, DubboHeartbeatAck, DubboRequest, DubboResponse,
    count_params, encode_error_response, encode_heartbeat, encode_heartbeat_ack, encode_readonly_event,
    encode_request, encode_response, java_descriptor, parse_header, patch_request_id, read_request_id,
    with_request_id,
)
from meshd.codec.hessian2 import JavaObject, Long, decode_final

CAPTURE = "dubbo_js_to_sofa_dubbo.tap"
JS_ATTACHMENTS = {"application": "dubbo-js", "interface": "org.example.DemoService",
                  "path": "org.example.DemoService", "version": "1.0.0"}


@pytest.fixture(scope="module")
def streams():
    return capture_streams(CAPTURE)


def events_of(data: bytes, chunk: int | None = None) -> list:
    return feed_all(DubboDecoder(), data, chunk)


# -- transcripts ----------------------------------------------------------------------------------------

def test_captured_request_matches_protocols_md(streams):
    """Connection 0 is the exchange printed in docs/protocols.md §2, byte for byte in the header."""
    req1, req2 = events_of(streams[(0, "C>S")])
    assert isinstance(req1, DubboRequest)
    assert bytes(req1.frame[:16]).hex() == "dabbc2000000000000000001000000ac"
    assert (req1.request_id, req1.flag, req1.twoway, req1.serialization_id, req1.body_length) == (1, 0xC2, True, 2, 172)
    head = req1.head()
    assert head == ("2.0.2", "org.example.DemoService", "1.0.0", "sayHello", "Ljava/lang/String;I")
    assert head.param_count == 2
    meta = req1.meta()
    assert meta.attachments == JS_ATTACHMENTS
    assert meta.group is None and meta.interface == "org.example.DemoService"
    inv = req1.invocation()
    assert inv.args == ["world", 7] and inv.attachments == JS_ATTACHMENTS
    assert req2.request_id == 2 and req2.head() == head


def test_captured_ok_responses(streams):
    r1, r2 = events_of(streams[(0, "S>C")])
    for rid, resp in ((1, r1), (2, r2)):
        assert isinstance(resp, DubboResponse)
        assert bytes(resp.frame[:16]).hex() == f"dabb021400000000000000{rid:02x}00000010"
        assert (resp.request_id, resp.status, resp.ok, resp.serialization_id) == (rid, 20, True, 2)
        assert resp.result_type() == 1 and not resp.is_exception()
        result = resp.result()
        assert (result.result_type, result.value, result.exception, result.attachments) == (1, "hello world x7", None, {})


def test_captured_error_status(streams):
    (req,) = events_of(streams[(1, "C>S")])
    assert req.head().method == "fail" and req.invocation().args == ["boom"]
    (resp,) = events_of(streams[(1, "S>C")])
    assert (resp.request_id, resp.status, resp.ok) == (1, 80, False)
    assert resp.result_type() is None
    assert resp.error_message() == "boom"


def test_captured_group_attachment_and_long_argument(streams):
    (req,) = events_of(streams[(2, "C>S")])
    head = req.head()
    assert (head.method, head.param_types, head.param_count) == ("add", "IJ", 2)
    meta = req.meta()
    assert meta.group == "blue"
    assert meta.attachments == {**JS_ATTACHMENTS, "group": "blue"}
    assert req.invocation().args == [3, 4]
    (resp,) = events_of(streams[(2, "S>C")])
    assert resp.result().value == 7


def test_captured_non_ascii_and_surrogate_pair(streams):
    (req,) = events_of(streams[(3, "C>S")])
    text = "h\u00e9llo \u4e16\u754c \U0001F600"
    assert req.invocation().args == [text]
    (resp,) = events_of(streams[(3, "S>C")])
    assert resp.result().value == text


@pytest.mark.parametrize("key", [(0, "C>S"), (0, "S>C"), (1, "C>S"), (1, "S>C"), (2, "C>S"), (3, "C>S"), (3, "S>C")])
def test_captured_bodies_agree_with_python_hessian(streams, key):
    for ev in events_of(streams[key]):
        body = bytes(ev.frame[16:])
        assert decode_final(body) == pyhessian_values(body)


@pytest.mark.parametrize("chunk", [1, 2, 7, 16, 17, 100])
def test_any_chunking_gives_the_same_events(streams, chunk):
    data = streams[(0, "C>S")] + streams[(0, "S>C")]
    whole = events_of(data)
    assert [tuple(e) for e in events_of(data, chunk)] == [tuple(e) for e in whole]


# -- decoder behaviour ------------------------------------------------------------------------------------

def test_need_data_then_closed():
    frame = encode_heartbeat(5)
    dec = DubboDecoder()
    assert dec.next_event() is NEED_DATA
    dec.receive_data(frame[:15])
    assert dec.next_event() is NEED_DATA and dec.buffered == 15
    dec.receive_data(frame[15:])
    assert isinstance(dec.next_event(), DubboHeartbeat)
    dec.receive_data(b"")
    assert dec.next_event() is CLOSED


def test_eof_inside_a_frame_is_an_error():
    dec = DubboDecoder()
    dec.receive_data(encode_heartbeat(5)[:10])
    dec.receive_data(b"")
    with pytest.raises(ProtocolError, match="closed inside a frame"):
        dec.next_event()


def test_events_heartbeats_and_readonly():
    data = (encode_heartbeat(7) + encode_heartbeat_ack(7) + encode_readonly_event(8) + encode_readonly_event(9, False))
    hb, ack, ro, rw = events_of(data)
    assert isinstance(hb, DubboHeartbeat) and (hb.request_id, hb.flag, hb.twoway) == (7, 0xE2, True)
    assert bytes(hb.frame) == bytes.fromhex("dabbe200" + "0000000000000007" + "00000001") + b"N"
    assert isinstance(ack, DubboHeartbeatAck) and (ack.request_id, ack.flag, ack.status) == (7, 0x22, 20)
    assert isinstance(ro, DubboEvent) and ro.flag == 0xA2 and not ro.twoway and ro.readonly is True
    assert bytes(ro.frame[16:]) == b"\x01R" and ro.data() == "R"
    assert rw.readonly is False


def test_mosn_style_heartbeat_ack_body():
    frame = bytes.fromhex("dabb2214" + "0000000000000003" + "00000002") + b"NN"
    (ack,) = events_of(frame)
    assert isinstance(ack, DubboHeartbeatAck) and ack.request_id == 3


def test_oneway_request():
    frame = encode_request(3, "S", "m", ["x"], param_types="Ljava/lang/String;", twoway=False)
    (req,) = events_of(frame)
    assert req.flag == 0x82 and not req.twoway


def test_other_serialization_forwards_but_body_is_unavailable():
    frame = bytearray(encode_request(9, "S", "m"))
    frame[2] = 0xC0 | 6                       # fastjson
    (req,) = events_of(bytes(frame))
    assert isinstance(req, DubboRequest) and req.serialization_id == 6 and bytes(req.frame) == bytes(frame)
    with pytest.raises(UnsupportedSerialization) as info:
        req.head()
    assert info.value.serialization_id == 6 and info.value.request_id == 9 and "fastjson" in str(info.value)
    with pytest.raises(UnsupportedSerialization):
        req.meta()
    hb = bytearray(encode_heartbeat(1))
    hb[2] = 0xE0 | 6
    (event,) = events_of(bytes(hb))
    assert isinstance(event, DubboHeartbeat)


def test_frame_too_large_is_refused_with_its_id_and_decoding_goes_on():
    big = encode_request(41, "S", "m", ["x" * 5000], param_types="Ljava/lang/String;")
    small = encode_heartbeat(42)
    dec = DubboDecoder(max_frame_size=1024)
    dec.receive_data(big[:100])
    with pytest.raises(FrameTooLarge) as info:
        dec.next_event()
    err = info.value
    assert (err.request_id, err.declared, err.limit) == (41, len(big) - 16, 1024)
    assert err.header.flag == 0xC2 and err.header.serialization_id == 2 and err.header.twoway
    assert dec.buffered == 0                       # nothing of the oversized body is kept
    for i in range(100, len(big), 1000):
        dec.receive_data(big[i:i + 1000])
        assert dec.buffered == 0
    dec.receive_data(small)
    (ev,) = drain(dec)
    assert isinstance(ev, DubboHeartbeat) and ev.request_id == 42


def test_frame_too_large_when_the_body_is_already_buffered():
    big = encode_request(1, "S", "m", ["x" * 3000], param_types="Ljava/lang/String;")
    dec = DubboDecoder(max_frame_size=1024)
    dec.receive_data(big + encode_heartbeat(2))
    with pytest.raises(FrameTooLarge):
        dec.next_event()
    assert isinstance(dec.next_event(), DubboHeartbeat)


@pytest.mark.parametrize("data,message", [
    (b"\xda\xbc" + bytes(14), "bad magic 0xdabc"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad magic"),
    (bytes.fromhex("dabbc200" + "0000000000000001" + "ffffffff"), "negative body length"),
])
def test_fatal_header_errors_break_the_decoder(data, message):
    dec = DubboDecoder()
    dec.receive_data(data)
    with pytest.raises(ProtocolError, match=message):
        dec.next_event()
    with pytest.raises(ProtocolError, match=message):
        dec.next_event()


def test_malformed_body_is_a_protocol_error_with_the_request_id():
    frame = bytearray(encode_request(77, "S", "m", [1], param_types="I"))
    del frame[-3:]                                   # cut the attachments map short
    frame[12:16] = (len(frame) - 16).to_bytes(4, "big")
    (req,) = events_of(bytes(frame))
    assert req.head().service == "S"                 # the head is intact
    with pytest.raises(ProtocolError) as info:
        req.meta()
    assert info.value.request_id == 77


def test_bad_descriptor_is_a_protocol_error():
    frame = encode_request(1, "S", "m")
    body = bytes(frame[16:]).replace(b"\x00H", b"\x01QH", 1)   # desc "" -> "Q"
    bad = parse_header(frame)._replace(body_length=len(body))
    data = b"\xda\xbb" + bytes([bad.flag, 0]) + bad.request_id.to_bytes(8, "big") + len(body).to_bytes(4, "big") + body
    (req,) = events_of(data)
    with pytest.raises(ProtocolError, match="unknown type 'Q'"):
        req.meta()


# -- lazy body forms beyond the fast path ---------------------------------------------------------------

def test_head_with_long_and_non_ascii_strings_uses_the_full_reader():
    svc = "org.example." + "Long" * 10 + "Service"   # > 31 chars: 0x30 form
    frame = encode_request(1, svc, "h\u00e9", ["a"], param_types=["java.lang.String"], version=None,
                           attachments={"group": "g\u00e9", "n": 5})
    (req,) = events_of(frame)
    assert req.head() == ("2.0.2", svc, "", "h\u00e9", "Ljava/lang/String;")
    assert req.meta().group == "g\u00e9" and req.meta().attachments["n"] == 5


def test_meta_skips_complex_arguments_sharing_class_definitions():
    user = JavaObject("com.example.User", {"name": "n", "tags": ["a", "b"], "next": None})
    frame = encode_request(1, "S", "m", [user, {"k": [1, 2.5]}, user],
                           param_types=["com.example.User", "java.util.Map", "com.example.User"],
                           attachments={"group": "g", "obj": JavaObject("com.example.User", {"name": "x", "tags": [], "next": None})})
    (req,) = events_of(frame)
    meta = req.meta()
    assert meta.group == "g" and meta.attachments["obj"]["name"] == "x"
    inv = req.invocation()
    assert inv.args[0] == user and inv.args[2] is inv.args[0]


def test_generic_invoke_descriptor():
    assert count_params("Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;") == 3
    assert count_params("[[I") == 1 and count_params("") == 0 and count_params("ZBCDFIJS") == 8
    assert java_descriptor(["java.lang.String", "int", "long[]", "[Ljava.lang.String;"]) == \
        "Ljava/lang/String;I[J[Ljava/lang/String;"


# -- id rewriting ---------------------------------------------------------------------------------------

def test_id_rewriting_in_place_and_copy(streams):
    (req, _) = events_of(streams[(0, "C>S")])
    original = bytes(req.frame)
    assert read_request_id(req.frame) == 1
    out = bytearray(b"xx") + req.frame             # a forwarder appends to its output buffer, then patches
    patch_request_id(out, 2**40 + 5, offset=2)
    assert read_request_id(out, 2) == 2**40 + 5 and out[2 + 12:] == original[12:]
    copy = with_request_id(original, 9)
    assert read_request_id(copy) == 9 and copy[12:] == original[12:] and copy[:4] == original[:4]
    (again,) = events_of(copy)
    assert again.request_id == 9 and again.invocation().args == ["world", 7]


# -- encoders ---------------------------------------------------------------------------------------------

def test_request_encoder_matches_what_apache_dubbo_js_sends(streams):
    captured = events_of(streams[(0, "C>S")])[0]
    ours = encode_request(1, "org.example.DemoService", "sayHello", ["world", 7],
                          param_types=["java.lang.String", "int"], version="1.0.0",
                          attachments={"application": "dubbo-js"})
    (ev,) = events_of(ours)
    assert ev.invocation().head == captured.invocation().head
    assert ev.invocation().args == captured.invocation().args
    assert ev.meta().attachments == captured.meta().attachments


def test_response_encoders_all_result_types():
    cases = [
        (encode_response(1, "v"), 1, "v", None, {}),
        (encode_response(1, None), 2, None, None, {}),
        (encode_response(1, exception=JavaObject("java.lang.RuntimeException", {"detailMessage": "x"})), 0, None,
         JavaObject("java.lang.RuntimeException", {"detailMessage": "x"}), {}),
        (encode_response(1, Long(5), attachments={"dubbo": "2.0.2"}), 4, 5, None, {"dubbo": "2.0.2"}),
        (encode_response(1, None, attachments={}), 5, None, None, {}),
        (encode_response(1, exception=JavaObject("E", {}), attachments={"a": "b"}), 3, None, JavaObject("E", {}), {"a": "b"}),
    ]
    for frame, rtype, value, exc, att in cases:
        (resp,) = events_of(frame)
        result = resp.result()
        assert (resp.result_type(), result.value, result.exception, result.attachments) == (rtype, value, exc, att)
        assert resp.is_exception() == (rtype in (0, 3))
        body = bytes(resp.frame[16:])
        assert [normalize_ours(v) for v in decode_final(body)] == [normalize_pyhessian(v) for v in pyhessian_values(body)]


def test_error_response_echoes_id_and_serialization():
    frame = encode_error_response(2**33, 100, "meshd: flow control blocked")
    assert frame[:4] == b"\xda\xbb\x02\x64"
    (resp,) = events_of(frame)
    assert (resp.request_id, resp.status, resp.error_message()) == (2**33, 100, "meshd: flow control blocked")
    other = encode_error_response(5, 60, "no route", serialization_id=6)
    assert other[2] == 6 and other[3] == 60 and len(other) == 16
    with pytest.raises(Exception, match="non-OK status"):
        encode_error_response(1, 20, "x")


def test_heartbeat_ack_encoder():
    assert encode_heartbeat_ack(7) == bytes.fromhex("dabb2214" + "0000000000000007" + "00000001") + b"N"
    assert encode_heartbeat_ack(7, serialization_id=6)[2] == 0x26


def test_request_encoder_checks_the_argument_count():
    with pytest.raises(Exception, match="describe 1 arguments, got 2"):
        encode_request(1, "S", "m", [1, 2], param_types="I")


_arg = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False),
                 st.text(max_size=40), st.binary(max_size=20), st.lists(st.integers(-99, 2**40), max_size=3),
                 st.builds(lambda v: JavaObject("a.B", {"v": v}), st.text(max_size=5)),
                 st.datetimes(timezones=st.just(dt.timezone.utc)).map(lambda d: d.replace(microsecond=0)))


@settings(max_examples=300, deadline=None)
@given(st.lists(_arg, max_size=4), st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=40), st.integers(-(2**63), 2**63 - 1)),
                                                   max_size=5),
       st.text(max_size=40), st.one_of(st.none(), st.text(max_size=8)))
def test_fast_paths_agree_with_full_decoding(args, att, service, version):
    """head() and meta() take fast paths where they can; they must equal the full reader's answer."""
    frame = encode_request(1, service, "m", args, param_types="Ljava/lang/Object;" * len(args), version=version,
                           attachments=att)
    (req,) = events_of(frame)
    inv = req.invocation()
    assert req.head() == inv.head and req.meta() == (inv.head, inv.attachments)
    assert inv.args == args


@pytest.mark.parametrize("request_id", [0, 1, 0x7F, 0x80, 0xFFFF, 2**31, 2**32 + 5, 2**63 - 1, -1, -2**63])
def test_the_batch_splitter_reads_every_request_id_as_the_header_does(request_id):
    # events() reads header fields byte by byte when compiled: signed 64-bit ids, big-endian, as ">q"
    frames = encode_request(request_id, "S", "m", ["x"], param_types="Ljava/lang/String;") + \
        encode_response(request_id, "ok")
    dec = DubboDecoder()
    dec.receive_data(frames)
    request, response = dec.events()
    assert (request.request_id, response.request_id, response.status) == (request_id, request_id, 20)
    assert bytes(request.frame) + bytes(response.frame) == frames


@pytest.mark.parametrize("length", [b"\x80\x00\x00\x00", b"\xff\xff\xff\xff"])
def test_the_batch_splitter_stops_at_a_negative_length_and_the_next_call_raises(length):
    good = encode_heartbeat(1)
    dec = DubboDecoder()
    dec.receive_data(good + bytes.fromhex("dabbc202" + "0000000000000009") + length + b"x" * 8)
    assert [type(ev) for ev in dec.events()] == [DubboHeartbeat]
    with pytest.raises(ProtocolError, match="negative body length"):
        dec.events()
