"""Fuzzing every decoder with hypothesis: random bytes and mutated real frames.

Properties: no exception other than CodecError escapes (frame decoders, every lazy body accessor, both
hessian readers in read and skip mode); a decoder never buffers more than one frame limit plus one header
plus the chunk it was just given; inputs are bounded so that the work is too (deadline=None: no timing).
"""

from __future__ import annotations

from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec_helpers import capture_streams
from meshd.codec import bolt, dubbo
from meshd.codec.base import CLOSED, NEED_DATA, CodecError, FrameTooLarge
from meshd.codec.hessian2 import DraftReader, FinalReader, JavaObject, encode_draft, encode_final

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 4096


def _seed_frames() -> dict[str, list[bytes]]:
    dub = capture_streams("dubbo_js_to_sofa_dubbo.tap")
    bol = capture_streams("sofa_node_bolt_draft.tap")
    fin = capture_streams("sofa_node_bolt_final.tap")
    user = JavaObject("com.example.User", {"name": "n", "tags": ["a"], "next": None})
    return {
        "dubbo": [dub[(c, d)] for c in range(4) for d in ("C>S", "S>C")] + [
            dubbo.encode_request(1, "S", "m", [user, {"k": [1.5, b"\x00"]}, user],
                                 param_types=["com.example.User", "java.util.Map", "com.example.User"],
                                 attachments={"group": "g"}),
            dubbo.encode_heartbeat(1) + dubbo.encode_readonly_event(2) + dubbo.encode_response(3, exception=user),
        ],
        "bolt": [bol[(c, d)] for c in range(5) for d in ("C>S", "S>C")] + [fin[(0, "C>S")], fin[(1, "S>C")]] + [
            bolt.encode_request(5, "a:1.0:u", "m", [user], arg_types=["com.example.User"], version=2, ver1=2, crc=True),
            bolt.encode_heartbeat(1, version=2) + bolt.encode_status_response(2, 4),
        ],
    }


SEEDS = _seed_frames()


@st.composite
def mutated(draw: Callable[..., Any], seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[i:i + draw(st.integers(1, 8))]
    return bytes(data)


def exercise(event: Any) -> None:
    """Call every lazy accessor an event has; only CodecError may come out."""
    calls = [name for name in ("head", "meta", "invocation", "result", "error_message", "result_type", "data",
                               "class_name", "header_map", "service", "sofa_request", "sofa_response",
                               "content_value", "content", "parsed_header") if hasattr(event, name)]
    for name in calls:
        try:
            getattr(event, name)()
        except CodecError:
            pass
    if hasattr(event, "readonly"):
        event.readonly


def run_decoder(decoder: Any, data: bytes, chunks: list[int]) -> None:
    """Feed ``data`` in the given chunk sizes, drain events, check the buffering bound."""
    pos = 0
    sizes = chunks or [len(data)]
    i = 0
    while pos < len(data):
        n = max(1, sizes[i % len(sizes)])
        i += 1
        chunk = data[pos:pos + n]
        pos += n
        decoder.receive_data(chunk)
        assert decoder.buffered <= LIMIT + 24 + len(chunk)
        while True:
            try:
                ev = decoder.next_event()
            except FrameTooLarge:
                continue
            except CodecError:
                return
            if ev is NEED_DATA or ev is CLOSED:
                break
            exercise(ev)
            assert decoder.buffered <= LIMIT + 24 + len(chunk)
    decoder.receive_data(b"")
    try:
        while decoder.next_event() is not CLOSED:
            pass
    except CodecError:
        pass


chunkings = st.lists(st.integers(1, 64), max_size=8)


@FUZZ
@given(st.binary(max_size=600), chunkings)
def test_dubbo_decoder_random_bytes(data, chunks):
    run_decoder(dubbo.DubboDecoder(max_frame_size=LIMIT), b"\xda\xbb" + data, chunks)


@FUZZ
@given(mutated(SEEDS["dubbo"]), chunkings)
def test_dubbo_decoder_mutated_frames(data, chunks):
    run_decoder(dubbo.DubboDecoder(max_frame_size=LIMIT), data, chunks)


@FUZZ
@given(st.sampled_from([b"\x01", b"\x02"]), st.binary(max_size=600), chunkings)
def test_bolt_decoder_random_bytes(lead, data, chunks):
    run_decoder(bolt.BoltDecoder(max_frame_size=LIMIT), lead + data, chunks)


@FUZZ
@given(mutated(SEEDS["bolt"]), chunkings)
def test_bolt_decoder_mutated_frames(data, chunks):
    run_decoder(bolt.BoltDecoder(max_frame_size=LIMIT), data, chunks)


@FUZZ
@given(st.binary(max_size=50), st.integers(LIMIT + 1, 300_000), st.integers(1000, 70_000))
def test_oversized_frames_are_dropped_without_buffering(tail, declared, chunk):
    dec = dubbo.DubboDecoder(max_frame_size=LIMIT)
    body = (tail + bytes(declared))[:declared]
    data = b"\xda\xbb\xc2\x00" + (7).to_bytes(8, "big") + declared.to_bytes(4, "big") + body
    data += dubbo.encode_heartbeat(8)
    refused = False
    events = []
    for i in range(0, len(data), chunk):
        dec.receive_data(data[i:i + chunk])
        while True:
            try:
                ev = dec.next_event()
            except FrameTooLarge as e:
                assert (e.request_id, e.declared) == (7, declared)
                refused = True
                continue
            if ev is NEED_DATA:
                break
            events.append(ev)
        assert dec.buffered < 16 + 17          # at most a partial header or the small heartbeat
    assert refused and [type(e).__name__ for e in events] == ["DubboHeartbeat"] and events[0].request_id == 8


def _hessian_fuzz(reader_cls: type, data: bytes) -> None:
    for mode in ("read", "skip"):
        r = reader_cls(data, max_values=10_000)
        try:
            while not r.at_end:
                r.read() if mode == "read" else r.skip()
        except CodecError:
            pass


hessian_seeds_final = [encode_final("s" * 40, 1 << 40, 2.5, [1, "x", {"k": b"\x00" * 20}],
                                    JavaObject("A", {"a": 1, "b": [JavaObject("A", {"a": 2, "b": None})]}))]
hessian_seeds_draft = [encode_draft("s" * 40, 1 << 40, 2.5, [1, "x", {"k": b"\x00" * 20}],
                                    JavaObject("A", {"a": 1, "b": [JavaObject("A", {"a": 2, "b": None})]}))]


@FUZZ
@given(st.binary(max_size=400))
def test_hessian_readers_random_bytes(data):
    _hessian_fuzz(FinalReader, data)
    _hessian_fuzz(DraftReader, data)


@FUZZ
@given(mutated(hessian_seeds_final))
def test_final_reader_mutated(data):
    _hessian_fuzz(FinalReader, data)


@FUZZ
@given(mutated(hessian_seeds_draft))
def test_draft_reader_mutated(data):
    _hessian_fuzz(DraftReader, data)


def _drain(decoder: Any, data: bytes, chunks: list[int], batched: bool) -> list:
    """Every event (and error) the decoder gives for ``data`` fed in chunks, by ``events()`` or ``next_event()``."""
    out: list = []
    sizes = [max(1, n) for n in chunks] or [len(data) or 1]
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        pieces.append(data[pos:pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    for chunk in pieces + [b""]:
        decoder.receive_data(chunk)
        while True:
            try:
                if batched:
                    evs = decoder.events()
                else:
                    ev = decoder.next_event()
                    evs = [] if ev is NEED_DATA else [ev]
            except FrameTooLarge as exc:
                out.append(("too large", str(exc)))
                continue
            except CodecError as exc:
                out.append(("error", str(exc)))
                return out
            if not evs:
                break
            for ev in evs:
                if ev is CLOSED:
                    out.append(("closed",))
                    return out
                out.append((type(ev).__name__, tuple(ev)))
    return out


@FUZZ
@given(mutated(SEEDS["dubbo"] + SEEDS["bolt"]), chunkings)
def test_events_in_one_call_are_the_events_one_by_one(data, chunks):
    for make in (lambda: dubbo.DubboDecoder(max_frame_size=LIMIT), lambda: bolt.BoltDecoder(max_frame_size=LIMIT)):
        assert _drain(make(), data, chunks, True) == _drain(make(), data, chunks, False)


def test_events_in_one_call_on_a_real_stream():
    for protocol, make in (("dubbo", dubbo.DubboDecoder), ("bolt", bolt.BoltDecoder)):
        stream = b"".join(SEEDS[protocol])
        one_by_one = _drain(make(max_frame_size=1 << 20), stream, [], False)
        assert _drain(make(max_frame_size=1 << 20), stream, [], True) == one_by_one
        assert len(one_by_one) > len(SEEDS[protocol]), "the seeds decode to their frames"
