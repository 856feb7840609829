"""The raw-byte readers the one RPC path routes with: ``trailing_attachment`` (a Dubbo attachment read
without decoding the body) and ``header_entries`` (the Bolt header-map entries a routing key holds).
Each agrees with the full decoder whenever it answers, and says UNSURE (or raises the codec's own
error) instead of guessing; arbitrary bytes never make either raise anything else."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from meshd.codec import bolt, dubbo
from meshd.codec.base import CodecError
from meshd.codec.bolt.frame import decode_header_map, header_entries, key_names
from meshd.codec.dubbo.body import UNSURE, trailing_attachment

_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
_VALUES = st.one_of(_TEXT, st.integers(-300000, 300000), st.text(max_size=8))


def _frame(attachments: dict, args: list) -> bytearray:
    return bytearray(dubbo.encode_request(1, "org.example.Demo", "m", args, version="1.0.0", attachments=attachments,
                                          param_types=["java.lang.Object"] * len(args)))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["timeout", "group", "remote.application", "traceparent", "x"]), _VALUES,
                       max_size=5),
       st.lists(st.one_of(_TEXT, st.dictionaries(st.sampled_from(["timeout", "group"]), _TEXT, max_size=2)),
                max_size=2))
def test_trailing_attachment_agrees_with_the_decoded_attachments(attachments, args):
    frame = _frame(attachments, args)
    decoded = dubbo.DubboDecoder(1 << 20)
    decoded.receive_data(bytes(frame))
    real = decoded.events()[0].meta().attachments
    for key in ("timeout", "group", "remote.application"):
        raw = trailing_attachment(frame, bytes([len(key)]) + key.encode())
        if raw is UNSURE:
            continue
        want = real.get(key)
        assert (raw.decode() if isinstance(raw, bytearray) else raw) == want, (key, attachments, args)


def test_a_key_inside_an_argument_is_never_taken_for_an_attachment():
    frame = _frame({"application": "t"}, [{"timeout": "5"}])
    assert trailing_attachment(frame, b"\x07timeout") is UNSURE
    assert trailing_attachment(_frame({"timeout": "3000", "traceparent": "x" * 55}, ["w"]), b"\x07timeout") == b"3000"
    assert trailing_attachment(_frame({"application": "t"}, ["w"]), b"\x07timeout") is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_trailing_attachment_takes_any_bytes(tail):
    frame = bytearray(16) + tail
    value = trailing_attachment(frame, b"\x07timeout")
    assert value is UNSURE or value is None or isinstance(value, (bytearray, int))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["service", "sofa_head_method_name", "sofa_head_target_app", "trace", "a"]),
                       st.text(max_size=20), max_size=5))
def test_header_entries_hold_exactly_the_named_entries(headers):
    raw = bolt.encode_header_map(headers)
    names = key_names([b"service", b"sofa_head_method_name"])
    got, has_method = header_entries(raw, 0, len(raw), names, b"sofa_head_method_name")
    assert has_method == ("sofa_head_method_name" in headers)
    want = bolt.encode_header_map({k: v for k, v in decode_header_map(raw, 0, len(raw)).items()
                                   if k in ("service", "sofa_head_method_name")})
    assert got == want


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_header_entries_raise_only_codec_errors(data):
    try:
        header_entries(data, 0, len(data), key_names([b"service"]))
    except CodecError:
        pass


_JAVA_HEADERS = ["service", "sofa_head_method_name", "sofa_head_target_app", "rpc_trace_context.sofaTraceId",
                 "rpc_trace_context.sofaRpcId", "sofa_head_target_service"]
_JAVA_VALUES = st.sampled_from(["", "a", "b", "ab", "ba", "svc:1.0", "svc:2.0"])   # equal lengths that differ


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.dictionaries(st.sampled_from(_JAVA_HEADERS), _JAVA_VALUES, max_size=6),
                          st.sampled_from(["sayHello", "add"]), st.booleans()), min_size=1, max_size=6))
def test_the_bolt_key_of_a_remembered_layout_is_the_key_of_the_request(requests):
    """A request that matches the last one's bytes but for the values outside the key gets the last key;
    that key must be what the request's own header map gives, whatever differs between requests."""
    from meshd.proxy.rpc_protocols import BoltAdapter
    names = key_names([b"service", b"sofa_head_method_name", b"sofa_head_target_app"])
    remembering = BoltAdapter()
    for headers, method, method_header in requests:
        frame = bolt.encode_request(1, "org.example.Demo:1.0", method, ["x"], arg_types=["java.lang.String"],
                                    method_header=method_header, headers=headers)
        event = bolt.BoltDecoder(1 << 20)
        event.receive_data(frame)
        ev = event.events()[0]
        assert remembering.route_key(ev, names) == BoltAdapter().route_key(ev, names), (headers, method)
