"""Bolt codec: transcripts of captured sofa-rpc-node traffic (draft and final hessian), v2 + CRC, limits,
id rewriting, header maps, encoders."""

from __future__ import annotations

import zlib

import pytest

from codec_helpers import capture_streams, drain, feed_all
from meshd.codec.base import CLOSED, NEED_DATA, FrameTooLarge, ProtocolError, UnsupportedSerialization
from meshd.codec.bolt import (
    BoltDecoder, BoltHeartbeat, BoltHeartbeatAck, BoltRequest, BoltResponse, decode_header_map,
    encode_header_map, encode_heartbeat, encode_heartbeat_ack, encode_request, encode_response,
    encode_status_response, parse_header, patch_request_id, read_request_id, with_request_id,
)
from meshd.codec.bolt.frame import REQUEST_CLASS, RESPONSE_CLASS
from meshd.codec.hessian2 import JavaObject

SERVICE = "com.example.Calc:1.0"


@pytest.fixture(scope="module")
def draft():
    return capture_streams("sofa_node_bolt_draft.tap")


@pytest.fixture(scope="module")
def final():
    return capture_streams("sofa_node_bolt_final.tap")


def events_of(data: bytes, chunk: int | None = None, **kw) -> list:
    return feed_all(BoltDecoder(**kw), data, chunk)


# -- transcripts ----------------------------------------------------------------------------------------

def test_captured_request_header_fields(draft):
    req1, req2 = events_of(draft[(0, "C>S")])
    assert isinstance(req1, BoltRequest)
    h = req1.parsed_header()
    assert (h.proto, h.type, h.cmdcode, h.ver2, h.request_id, h.codec, h.timeout) == (1, 1, 1, 1, 1, 1, 3000)
    assert (h.class_len, h.header_len, h.size, h.total) == (44, 35, 22, len(req1.frame))
    assert (req1.request_id, req1.type, req1.cmdcode, req1.timeout, req1.oneway) == (1, 1, 1, 3000, False)
    assert (req1.version, req1.ver1, req1.codec, req1.switch, req1.crc) == (1, 1, 1, 0, False)
    assert req1.class_name() == REQUEST_CLASS
    assert req1.header_map() == {"service": SERVICE}     # sofa-rpc-node 2.10 sends only `service`
    assert req1.service() == SERVICE and req1.header("sofa_head_method_name") is None
    head = req1.head()
    assert head == (SERVICE, "com.example.Calc", "1.0", None, "add")   # method from the SofaRequest body
    sofa = req1.sofa_request()
    assert sofa == ("add", ["int", "int"], SERVICE, None, {"service": SERVICE}, [1, 2])
    assert req2.request_id == 2 and req2.head() == head


def test_captured_ok_response(draft):
    r1, r2 = events_of(draft[(0, "S>C")])
    assert isinstance(r1, BoltResponse) and (r1.request_id, r2.request_id) == (1, 2)
    h = r1.parsed_header()
    assert (h.proto, h.type, h.cmdcode, h.status, h.class_len, h.header_len, h.content_len) == (1, 0, 2, 0, 46, 0, 0x62)
    assert r1.ok and r1.class_name() == RESPONSE_CLASS and r1.header_map() == {}
    assert r1.sofa_response() == (False, None, 3, {})


def test_captured_string_argument_and_map_echo(draft):
    (req,) = events_of(draft[(1, "C>S")])
    assert req.head().method == "greet" and req.sofa_request().args == ["bolt"]
    assert req.sofa_request().method_arg_sigs == ["java.lang.String"]
    (resp,) = events_of(draft[(1, "S>C")])
    assert resp.sofa_response().app_response == "hi bolt"
    (req,) = events_of(draft[(3, "C>S")])
    value = {"k": [1, 2.5, "x", True, None]}
    assert req.sofa_request().args == [value] and req.sofa_request().method_arg_sigs == ["java.util.HashMap"]
    (resp,) = events_of(draft[(3, "S>C")])
    assert resp.sofa_response().app_response == value


@pytest.mark.parametrize("conn,detail", [(2, "Error: boom"), (4, "Error: not found service: no.Such:1.0")])
def test_captured_server_exceptions(draft, conn, detail):
    (resp,) = events_of(draft[(conn, "S>C")])
    assert (resp.status, resp.ok) == (2, False)                # SERVER_EXCEPTION
    exc = resp.content_value()
    assert isinstance(exc, JavaObject)
    assert exc.class_name == "com.alipay.remoting.rpc.exception.RpcServerException"
    assert exc["detailMessage"] == detail and exc["cause"] is None
    assert all(e.class_name == "java.lang.StackTraceElement" for e in exc["stackTrace"])


def test_captured_unknown_service_request(draft):
    (req,) = events_of(draft[(4, "C>S")])
    assert req.head() == ("no.Such:1.0", "no.Such", "1.0", None, "add")


def test_captured_final_grammar_contents(final):
    (req,) = events_of(final[(0, "C>S")])
    assert req.content()[0] == 0x43                             # 'C': final grammar class definition
    assert req.head().method == "add" and req.sofa_request().args == [1, 2]
    (resp,) = events_of(final[(0, "S>C")])
    assert resp.sofa_response().app_response == 3
    (req,) = events_of(final[(1, "C>S")])
    assert req.sofa_request().args == ["bolt"]
    (resp,) = events_of(final[(1, "S>C")])
    assert resp.sofa_response().app_response == "hi bolt"


@pytest.mark.parametrize("chunk", [1, 3, 21, 22, 23, 200])
def test_any_chunking_gives_the_same_events(draft, chunk):
    data = draft[(0, "C>S")] + draft[(0, "S>C")] + draft[(2, "S>C")]
    assert [tuple(e) for e in events_of(data, chunk)] == [tuple(e) for e in events_of(data)]


# -- v2 and CRC ---------------------------------------------------------------------------------------------

def test_v2_request_with_crc_round_trip():
    frame = encode_request(7, SERVICE, "add", [1, 2], arg_types=["int", "int"], version=2, ver1=2, crc=True,
                           timeout=1500)
    assert frame[:3] == b"\x02\x02\x01" and frame[11] == 1
    assert int.from_bytes(frame[-4:], "big") == zlib.crc32(frame[:-4])
    (req,) = events_of(frame)
    h = req.parsed_header()
    assert (h.proto, h.ver1, h.switch, h.has_crc, h.size, h.total) == (2, 2, 1, True, 24, len(frame))
    assert (req.request_id, req.timeout, req.version, req.ver1, req.crc) == (7, 1500, 2, 2, True)
    assert req.head() == (SERVICE, "com.example.Calc", "1.0", None, "add")
    assert req.sofa_request().args == [1, 2]


def test_v2_without_crc_and_ver1_1():
    frame = encode_response(3, "ok", version=2)
    assert frame[:3] == b"\x02\x01\x00" and frame[11] == 0
    (resp,) = events_of(frame)
    assert resp.sofa_response().app_response == "ok" and not resp.crc


def test_crc_mismatch_breaks_the_decoder():
    frame = bytearray(encode_heartbeat(1, version=2, ver1=2, crc=True))
    frame[-1] ^= 0xFF
    dec = BoltDecoder()
    dec.receive_data(bytes(frame))
    with pytest.raises(ProtocolError, match="CRC check failed") as info:
        dec.next_event()
    assert info.value.request_id == 1
    with pytest.raises(ProtocolError):
        dec.next_event()
    assert isinstance(events_of(bytes(frame), verify_crc=False)[0], BoltHeartbeat)


def test_crc_needs_v2_ver1_2():
    with pytest.raises(Exception, match="ver1=2"):
        encode_heartbeat(1, version=2, ver1=1, crc=True)


# -- id rewriting ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,offset", [({}, 5), ({"version": 2}, 6), ({"version": 2, "ver1": 2, "crc": True}, 6)])
def test_id_rewrite_offsets_and_crc(kw, offset):
    frame = encode_request(0x01020304, SERVICE, "add", [1, 2], arg_types=["int", "int"], **kw)
    assert frame[offset:offset + 4] == b"\x01\x02\x03\x04" and read_request_id(frame) == 0x01020304
    buf = bytearray(b"\xff" * 3) + frame
    patch_request_id(buf, 0xFFFFFFFE, offset=3)
    assert read_request_id(buf, 3) == 0xFFFFFFFE
    (ev,) = events_of(bytes(buf[3:]))              # a wrong CRC would be refused here
    assert ev.request_id == 0xFFFFFFFE and ev.sofa_request().args == [1, 2]
    copy = with_request_id(frame, 5)
    assert events_of(copy)[0].request_id == 5


def test_captured_frame_id_rewrite(draft):
    (req, _) = events_of(draft[(0, "C>S")])
    new = with_request_id(bytes(req.frame), 1000)
    assert new[:5] == bytes(req.frame[:5]) and new[9:] == bytes(req.frame[9:])
    assert events_of(new)[0].request_id == 1000


# -- decoder behaviour ------------------------------------------------------------------------------------

def test_heartbeats_v1_and_v2():
    data = encode_heartbeat(1) + encode_heartbeat_ack(1) + encode_heartbeat(2, version=2, ver1=2, crc=True) \
        + encode_heartbeat_ack(2, version=2, ver1=2, crc=True)
    hb1, ack1, hb2, ack2 = events_of(data)
    assert isinstance(hb1, BoltHeartbeat) and (hb1.request_id, hb1.type, hb1.timeout) == (1, 1, -1)
    assert bytes(hb1.frame) == bytes.fromhex("01010000010000000101ffffffff000000000000000000")[:22]
    assert isinstance(ack1, BoltHeartbeatAck) and (ack1.request_id, ack1.status) == (1, 0)
    assert bytes(ack1.frame) == bytes.fromhex("0100000001000000010100000000000000000000")
    assert isinstance(hb2, BoltHeartbeat) and hb2.crc and isinstance(ack2, BoltHeartbeatAck) and ack2.crc


def test_oneway_request():
    (req,) = events_of(encode_request(1, SERVICE, "add", [1], arg_types=["int"], oneway=True))
    assert req.type == 2 and req.oneway


def test_method_header_wins_over_the_body():
    frame = encode_request(1, SERVICE, "add", [1, 2], arg_types=["int", "int"],
                           headers={"sofa_head_method_name": "fromHeader"})
    (req,) = events_of(frame)
    assert req.header_map()["sofa_head_method_name"] == "fromHeader"
    assert req.head().method == "fromHeader" and req.sofa_request().method_name == "add"


def test_unique_id_in_the_service_header():
    (req,) = events_of(encode_request(1, "com.example.Calc:2.0:blue", "add"))
    assert req.head() == ("com.example.Calc:2.0:blue", "com.example.Calc", "2.0", "blue", "add")


def test_frame_too_large_refused_then_decoding_goes_on():
    big = encode_request(9, SERVICE, "echo", ["x" * 5000], arg_types=["java.lang.String"], version=2)
    dec = BoltDecoder(max_frame_size=2048)
    dec.receive_data(big[:30])
    with pytest.raises(FrameTooLarge) as info:
        dec.next_event()
    err = info.value
    assert err.request_id == 9 and err.declared == len(big) - 24 and err.limit == 2048
    assert (err.header.proto, err.header.type, err.header.cmdcode) == (2, 1, 1)
    assert dec.buffered == 0
    dec.receive_data(big[30:] + encode_heartbeat(10))
    (hb,) = drain(dec)
    assert isinstance(hb, BoltHeartbeat) and hb.request_id == 10


def test_frame_too_large_v1_fast_path():
    big = encode_request(3, SERVICE, "echo", ["x" * 5000], arg_types=["java.lang.String"])
    dec = BoltDecoder(max_frame_size=2048)
    dec.receive_data(big + encode_heartbeat(4))
    with pytest.raises(FrameTooLarge) as info:
        dec.next_event()
    assert info.value.request_id == 3
    assert dec.next_event().request_id == 4


@pytest.mark.parametrize("data,message", [
    (b"\x03" + bytes(30), "unknown bolt protocol code 0x03"),
    (b"\x01\x05" + bytes(30), "unknown command type 5"),
    (b"\x02\x01\x07" + bytes(30), "unknown command type 7"),
    (bytes.fromhex("0101000101000000010100000bb800000000ffffffff"), "negative content length"),
])
def test_fatal_header_errors(data, message):
    dec = BoltDecoder()
    dec.receive_data(data)
    with pytest.raises(ProtocolError, match=message):
        dec.next_event()
    with pytest.raises(ProtocolError, match=message):
        dec.next_event()


def test_closed_and_eof_inside_a_frame():
    dec = BoltDecoder()
    dec.receive_data(encode_heartbeat(1))
    dec.receive_data(b"")
    assert isinstance(dec.next_event(), BoltHeartbeat) and dec.next_event() is CLOSED
    dec = BoltDecoder()
    dec.receive_data(encode_heartbeat(1)[:5])
    assert dec.next_event() is NEED_DATA
    dec.receive_data(b"")
    with pytest.raises(ProtocolError, match="closed inside a frame"):
        dec.next_event()


def test_protobuf_codec_content_is_unavailable_but_headers_are():
    frame = bytearray(encode_request(1, SERVICE, "add", [1], arg_types=["int"]))
    frame[9] = 11
    (req,) = events_of(bytes(frame))
    assert req.codec == 11 and req.service() == SERVICE and req.head().method == "add"   # from the header
    with pytest.raises(UnsupportedSerialization) as info:
        req.sofa_request()
    assert info.value.serialization_id == 11


def test_malformed_header_map_and_content():
    frame = bytearray(encode_request(5, SERVICE, "add", [1], arg_types=["int"], method_header=False))
    start = 22 + len(REQUEST_CLASS)
    frame[start:start + 4] = (999).to_bytes(4, "big")          # key length past the header map
    (req,) = events_of(bytes(frame))
    with pytest.raises(ProtocolError, match="truncated header map") as info:
        req.head()
    assert info.value.request_id == 5
    bad_content = bytearray(encode_request(6, SERVICE, "add", method_header=False))
    bad_content[bad_content.index(b"o\x90")] = 0x40             # an undefined lead byte for the instance
    (req,) = events_of(bytes(bad_content))
    with pytest.raises(ProtocolError):
        req.sofa_request()


# -- header map and encoders --------------------------------------------------------------------------------

def test_header_map_format():
    data = encode_header_map({"service": "a:1.0", "empty": "", "dropped": None, "\u4e16": "\u754c"})
    assert data[:4] == b"\x00\x00\x00\x07" and b"dropped" not in data
    assert decode_header_map(data, 0, len(data)) == {"service": "a:1.0", "empty": "", "\u4e16": "\u754c"}
    nulls = b"\x00\x00\x00\x01k\xff\xff\xff\xff" + b"\xff\xff\xff\xff\x00\x00\x00\x00"
    assert decode_header_map(nulls, 0, len(nulls)) == {"k": None}


def test_request_encoder_reproduces_sofa_rpc_node_bytes(draft):
    captured = events_of(draft[(0, "C>S")])[0]
    ours = encode_request(1, SERVICE, "add", [1, 2], arg_types=["int", "int"], method_header=False)
    assert ours == bytes(captured.frame)


def test_response_encoder_reproduces_sofa_rpc_node_bytes(draft):
    captured = events_of(draft[(0, "S>C")])[0]
    assert encode_response(1, 3) == bytes(captured.frame)


def test_status_response_and_parse_header():
    frame = encode_status_response(2**32 - 1, 4, version=2, ver1=2, crc=True)
    h = parse_header(frame)
    assert (h.request_id, h.status, h.class_len, h.header_len, h.content_len, h.total) == (2**32 - 1, 4, 0, 0, 0, 26)
    (resp,) = events_of(frame)
    assert (resp.status, resp.cmdcode, resp.content_value(), resp.content()) == (4, 2, None, b"")


def test_method_lookup_cache_agrees_with_the_reader(draft, final):
    from meshd.codec.bolt import body
    frames = [events_of(draft[(c, "C>S")])[0] for c in range(5)] + [events_of(final[(c, "C>S")])[0] for c in range(2)]
    fresh = []
    for req in frames:
        body._DEF_CACHE.clear()
        fresh.append(req.head().method)                   # through the reader (fills the cache)
    cached = [req.head().method for req in frames for _ in range(2)][::2]
    assert fresh == cached == ["add", "greet", "fail", "echo", "add", "add", "greet"]
    assert body._DEF_CACHE


def test_method_lookup_cache_falls_back_for_other_shapes():
    from meshd.codec.bolt import body
    from meshd.codec.hessian2 import encode_draft
    body._DEF_CACHE.clear()

    def request(fields: dict) -> BoltRequest:
        from meshd.codec.bolt.encode import _frame
        frame = _frame(request=True, proto=1, ver1=1, crc=False, typ=1, cmdcode=1, request_id=1, codec=1,
                       timeout_or_status=3000, clazz=REQUEST_CLASS.encode(),
                       header=encode_header_map({"service": SERVICE}),
                       content=encode_draft(JavaObject(REQUEST_CLASS, fields)))
        (req,) = events_of(frame)
        return req

    later = {"targetAppName": "app", "methodName": "second"}
    assert request(later).head().method == "second"
    assert request({"targetAppName": "app", "methodName": "again"}).head().method == "again"    # cached
    assert request({"targetAppName": ["not", "compact"], "methodName": "slow"}).head().method == "slow"
    assert request({"targetAppName": "app", "methodName": "m\u00e9thode"}).head().method == "m\u00e9thode"
    assert request({"targetAppName": "app", "methodName": None}).head().method is None


@pytest.mark.parametrize("request_id", [0, 1, 0x7F, 0x80, 0xFFFF, 2**31, 2**32 - 1])
@pytest.mark.parametrize("timeout", [0, 3000, 2**31 - 1, -1, -2**31])
def test_the_batch_splitter_reads_every_field_as_the_header_does(request_id, timeout):
    # events() reads header fields byte by byte when compiled: unsigned ids and lengths, a signed timeout
    frames = encode_request(request_id, "S:1.0", "m", ["x" * 300], arg_types=["java.lang.String"],
                                 timeout=timeout) + encode_status_response(request_id, 0x10)
    one_by_one = BoltDecoder()
    one_by_one.receive_data(frames)
    want = [one_by_one.next_event(), one_by_one.next_event()]
    dec = BoltDecoder()
    dec.receive_data(frames)
    got = dec.events()
    assert got == want and (got[0].request_id, got[0].timeout, got[1].status) == (request_id, timeout, 0x10)
