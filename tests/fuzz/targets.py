"""One property function per decoder: run it on the input and assert what must hold (see the package doc).

Every ``check_*`` takes the raw input (and, for stream decoders, the read sizes); any exception other than
the decoder's own error types is a failure, as is a broken assertion. The hypothesis tests and the
atheris runner call these functions; none of them keeps state between calls except what the decoders
themselves keep (module caches, adapters), and that state is what several properties watch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Sequence

import httptools
from hypothesis import event
from hypothesis.control import currently_in_test_context

from discovery.model import split_address
from discovery.nacos.naming import InstanceError, ServiceView, cluster_endpoints, instance_endpoint, parse_service_name
from discovery.sofaregistry.data import DataError, Service, parse_provider, zone_endpoints
from discovery.zookeeper.layouts import get_layout
from discovery.zookeeper.overrides import parse_override
from discovery.zookeeper.service import ServiceState
from discovery.zookeeper.urls import URLError, java_urlencode, parse_url
from meshd.codec import bolt, dubbo
from meshd.codec.base import CLOSED, NEED_DATA, CodecError, FrameTooLarge
from meshd.codec.bolt import body as bolt_body
from meshd.codec.bolt.frame import decode_header_map, header_entries, header_value, key_names
from meshd.codec.dubbo import body as dubbo_body
from meshd.codec.hessian2 import DraftReader, FinalReader, JavaDate, JavaObject, MapKey, SkippedRef
from meshd.codec.sniff import MAX_SNIFF_BYTES, MATCH, NEED_MORE, NO_MATCH, sniff
from meshd.proxy.rpc_protocols import BOLT_KEY_HEADERS, BoltAdapter, DubboAdapter
from tests.fuzz.bounds import bounded
from tests.fuzz.mutate import split

LIMIT = 4096
"""``max_frame_size`` of the fuzzed stream decoders: small, so that boundary lengths reach it cheaply."""
SLACK = 24 + 4                       # the largest fixed header (Bolt v2 request) plus a v2 CRC

ERROR = object()
"""What :func:`outcome` records for a call that raised a codec error."""


def label(text: str) -> None:
    """Count ``text`` in hypothesis's statistics (``--hypothesis-show-statistics``): what the cases reached."""
    if currently_in_test_context():
        event(text)


def outcome(fn: Callable[[], Any], errors: type | tuple[type, ...] = CodecError) -> Any:
    """``fn()``, or :data:`ERROR` when it raised one of ``errors`` (anything else propagates)."""
    try:
        return fn()
    except errors:
        return ERROR


# -- stream decoders -----------------------------------------------------------------------------------

DECODERS: dict[str, Callable[[], Any]] = {
    "dubbo": lambda: dubbo.DubboDecoder(max_frame_size=LIMIT),
    "bolt": lambda: bolt.BoltDecoder(max_frame_size=LIMIT),
}


def transcript(protocol: str, data: bytes, chunks: Sequence[int], batched: bool,
               on_event: Callable[[Any], None] | None = None) -> list[tuple]:
    """Everything a fresh decoder says about ``data`` fed in reads of ``chunks`` and then closed: events,
    refusals, the error (checked to stick) and CLOSED, as comparable tuples."""
    dec = DECODERS[protocol]()
    out: list[tuple] = []
    for chunk in split(data, chunks) + [b""]:
        dec.receive_data(chunk)
        while True:
            assert dec.buffered <= LIMIT + SLACK + len(chunk), f"{dec.buffered} bytes buffered"
            try:
                evs = dec.events() if batched else [dec.next_event()]
            except FrameTooLarge as exc:
                assert exc.declared > exc.limit == LIMIT
                out.append(("too large", exc.request_id, exc.declared))
                continue
            except CodecError as exc:
                out.append(("error", type(exc).__name__, str(exc)))
                _assert_broken(dec, exc)
                return out
            if not evs or evs == [NEED_DATA]:
                break
            for ev in evs:
                if ev is CLOSED:
                    out.append(("closed",))
                    return out
                out.append((type(ev).__name__, tuple(ev)))
                if on_event is not None:
                    on_event(ev)
    raise AssertionError("end of stream announced but the decoder neither closed nor failed")


def _assert_broken(dec: Any, exc: CodecError) -> None:
    """A decoder that raised a fatal error raises that same error for every later call, more data or not."""
    for call in (dec.next_event, dec.events, lambda: (dec.receive_data(b"") if not dec.eof else None,
                                                      dec.next_event())):
        try:
            call()
        except CodecError as again:
            assert again is exc, f"broken decoder raised {again!r} after {exc!r}"
        else:
            raise AssertionError(f"decoder answered after failing with {exc!r}")


def check_stream(protocol: str, data: bytes, chunks: Sequence[int]) -> None:
    """Split invariance (any reads give the events and the error of one read, batched or not); errors stick;
    refused frames are skipped without buffering; every body accessor raises only codec errors and agrees
    with the slow path."""
    with bounded(f"{protocol} stream", len(data)):
        exercise = EXERCISE[protocol]
        whole = transcript(protocol, data, [], True)
        label(f"{len([e for e in whole if e[0] not in ('too large', 'error', 'closed')])} frames, "
              f"ends {whole[-1][0]}{', refused one' if any(e[0] == 'too large' for e in whole) else ''}")
        assert transcript(protocol, data, chunks, False, exercise) == whole
        assert transcript(protocol, data, chunks, True) == whole


# -- Dubbo bodies --------------------------------------------------------------------------------------

_WARM_DUBBO = DubboAdapter()          # shared across cases, like the proxy's one adapter per protocol
_WARM_BOLT = BoltAdapter()
_NAMES = key_names(BOLT_KEY_HEADERS)


def _reference_meta(frame: bytearray, request_id: int) -> Any:
    """Dubbo request meta the slow way: the full reader for the head, skip every argument, read the map."""
    r = FinalReader(frame, 16)
    head = dubbo_body.RequestHead(*(r.read_string() for _ in range(5)))
    for _ in range(dubbo.count_params(head.param_types or "")):
        r.skip()
    return dubbo_body.RequestMeta(head, dubbo_body._attachments(r, request_id))


def exercise_dubbo(ev: Any) -> None:
    if isinstance(ev, dubbo.DubboRequest):
        head = outcome(ev.head)
        assert head == outcome(lambda: dubbo_body._slow_head(ev.frame, ev.request_id)[0]) or \
            ev.serialization_id != 2, "the head fast path changed the answer"
        meta = outcome(ev.meta)
        if ev.serialization_id == 2:
            assert repr(meta) == repr(outcome(lambda: _reference_meta(ev.frame, ev.request_id))), \
                "the attachments fast path changed the answer"    # repr: a MapKey key equals only itself
        outcome(ev.invocation)
        _adapter_agrees(DubboAdapter(), _WARM_DUBBO, ev)
        _key_holds_the_group(ev)
    elif isinstance(ev, dubbo.DubboResponse):
        for fn in (ev.result_type, ev.result, ev.error_message, ev.is_exception):
            outcome(fn)
    elif isinstance(ev, dubbo.DubboEvent):
        outcome(ev.data)
        assert ev.readonly in (True, False, None)


def _adapter_agrees(fresh: Any, warm: Any, ev: Any) -> None:
    """A long-lived adapter (caches warmed by every earlier case) answers what a fresh one answers. Keys
    are compared for routable requests only: one that cannot be routed is answered and leaves no plan, so
    its key (a fresh Dubbo adapter's sentinel, say) is never looked up."""
    views = [outcome(lambda a=a: _view_fields(a.view(ev))) for a in (fresh, warm)]
    assert views[0] == views[1], "a warm adapter routed a request differently"
    keys = [a.route_key(ev, _NAMES) for a in (fresh, warm)]
    assert views[0] is ERROR or keys[0] == keys[1], "a warm adapter keyed a request differently"
    for adapter in (fresh, warm):
        adapter.deadline_ms(ev)
        adapter.origin(ev)


def _key_holds_the_group(ev: Any) -> None:
    """A Dubbo routing key is the raw head plus, when the body names one, the group; the group the request
    is routed by must be that one: plans are cached by key, and a later request with the same key (from
    any connection) is forwarded by the plan without being routed again."""
    adapter = DubboAdapter()
    view = outcome(lambda: adapter.view(ev))
    key = adapter.route_key(ev, _NAMES)
    head = DubboAdapter._head_key(ev.frame)
    if view is ERROR or key is None or head is None:
        return
    rest = key[len(head) + (0 if ev.twoway else 1):]
    assert rest in ({b"", b"\x00"} if not view.group else {b"\x00" + view.group.encode()}), \
        f"keyed by group {rest[1:]!r} but routed by group {view.group!r}"


def _view_fields(view: Any) -> tuple:
    return view.service, view.method, view.version, view.group, tuple(sorted(map(str, view.attachments())))


def check_dubbo_body(body: bytes, flag: int, status: int) -> None:
    """``body`` behind a valid 16-byte header: every accessor of the event the decoder makes of it."""
    frame = dubbo.frame.header_bytes(flag, status, 7, len(body)) + body
    with bounded("dubbo body", len(frame)):
        dec = dubbo.DubboDecoder(max_frame_size=len(frame))
        dec.receive_data(frame)
        exercise_dubbo(dec.next_event())


# -- Bolt bodies ---------------------------------------------------------------------------------------

def exercise_bolt(ev: Any) -> None:
    for name in ("class_name", "content", "parsed_header"):
        outcome(getattr(ev, name))
    hmap = outcome(ev.header_map)
    if hmap is not ERROR:
        for name in ("service", "sofa_head_method_name", "app"):
            assert ev.header(name) == hmap.get(name), f"header({name!r}) disagrees with header_map()"
    if isinstance(ev, bolt.BoltRequest):
        outcome(ev.head)
        outcome(ev.sofa_request)
        s = bolt_body.sections(ev.frame)
        cached = outcome(lambda: bolt_body._cached_method_name(ev.frame, s)) if s.codec == 1 else bolt_body._SLOW
        if cached is not ERROR and cached is not bolt_body._SLOW:
            slow = outcome(lambda: bolt_body._read_method_name(ev.frame, s))
            assert slow is not ERROR and tuple(slow) == tuple(cached), "the class-definition cache changed the method"
        outcome(lambda: bolt_body.content_method(ev.frame, s))
        _adapter_agrees(BoltAdapter(), _WARM_BOLT, ev)
    elif isinstance(ev, bolt.BoltResponse):
        outcome(ev.sofa_response)
        outcome(ev.content_value)


def check_bolt_content(content: bytes, codec: int) -> None:
    """``content`` as the content of a well-formed SofaRequest frame and of a response frame."""
    header = bolt.encode_header_map({"service": "com.nodejs.test.TestService:1.0"})
    cls = bolt.frame.REQUEST_CLASS.encode()
    req = bolt.frame.V1_REQUEST.pack(1, 1, 1, 1, 9, codec, 3000, len(cls), len(header), len(content))
    resp = bolt.frame.V1_RESPONSE.pack(1, 0, 2, 1, 9, codec, 0, 0, 0, len(content))
    stream = req + cls + header + content + resp + content
    with bounded("bolt content", len(stream)):
        dec = bolt.BoltDecoder(max_frame_size=len(stream))
        dec.receive_data(stream)
        exercise_bolt(dec.next_event())
        exercise_bolt(dec.next_event())


EXERCISE: dict[str, Callable[[Any], None]] = {"dubbo": exercise_dubbo, "bolt": exercise_bolt}


def check_header_map(raw: bytes) -> None:
    """The three readers of a Bolt header map agree: the map, one value, the routing entries."""
    with bounded("bolt header map", len(raw)):
        hmap = outcome(lambda: decode_header_map(raw, 0, len(raw)))
        names = sorted(hmap)[:4] if hmap is not ERROR else []
        wanted = key_names([n.encode() for n in names] + list(BOLT_KEY_HEADERS))
        entries = outcome(lambda: header_entries(raw, 0, len(raw), wanted, b"service"))
        if hmap is ERROR:
            return
        assert entries is not ERROR, "header_entries refused a map decode_header_map reads"
        assert entries[1] == ("service" in hmap)
        for name in names + ["service", "absent"]:
            assert header_value(raw, 0, len(raw), name.encode()) == hmap.get(name), \
                f"header_value({name!r}) disagrees with decode_header_map"


# -- hessian -------------------------------------------------------------------------------------------

READERS = {"final": FinalReader, "draft": DraftReader}
_PLAIN = (type(None), bool, int, float, str, bytes, dt.datetime, JavaDate, SkippedRef)


def _plain(value: Any, seen: set[int] | None = None) -> None:
    """Decoded values are only the documented Python types. Back-references make cycles (a map holding
    itself is valid hessian), so containers are walked once each."""
    if isinstance(value, (list, dict)):
        seen = set() if seen is None else seen
        if id(value) in seen:
            return
        seen.add(id(value))
        assert type(value) in (list, dict, JavaObject), type(value)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            if isinstance(value, dict):
                assert isinstance(k, (MapKey, tuple, *_PLAIN)), type(k)
            _plain(v, seen)
    else:
        assert isinstance(value, _PLAIN), type(value)


def _walk(reader: Any, mode: str) -> tuple[list[int], bool, int]:
    """End offsets of the values read (or skipped) until the end or an error; whether it failed; values used."""
    ends, failed = [], False
    start_budget = reader.budget
    try:
        while not reader.at_end:
            value = reader.read() if mode == "read" else reader.skip()
            if mode == "read":
                _plain(value)
            ends.append(reader.pos)
    except CodecError:
        failed = True
    return ends, failed, start_budget - reader.budget


def check_hessian(grammar: str, data: bytes) -> None:
    """read and skip walk the same values over the same bytes (skip checks less: it may get further, never
    less far); the work is linear (a value costs at least one byte); only HessianError escapes."""
    cls = READERS[grammar]
    with bounded(f"hessian {grammar}", len(data)):
        read_ends, read_failed, used = _walk(cls(data, max_values=100_000), "read")
        label(f"read {'failed' if read_failed else 'whole body'} after {min(len(read_ends), 5)}+ values")
        skip_ends, skip_failed, _ = _walk(cls(data, max_values=100_000), "skip")
        assert used <= len(data) + 1, f"{used} values from {len(data)} bytes"
        assert skip_ends[:len(read_ends)] == read_ends, "skip and read disagree on where a value ends"
        if not read_failed:
            assert not skip_failed and skip_ends == read_ends
        begin = outcome(lambda: cls(data).begin_object())
        assert begin is ERROR or begin is None or begin.fields is not None


# -- sniffing ------------------------------------------------------------------------------------------

def check_sniff(data: bytes) -> None:
    """Total and monotonic: a decision never changes with more bytes; 24 bytes always decide."""
    with bounded("sniff", len(data)):
        decided = None
        for n in range(min(len(data), MAX_SNIFF_BYTES + 8) + 1):
            result = sniff(data[:n])
            assert result.status in (MATCH, NEED_MORE, NO_MATCH)
            if decided is not None:
                assert result == decided, f"sniff changed its mind at {n} bytes: {decided} → {result}"
            elif result.status is not NEED_MORE:
                decided = result
            assert n < MAX_SNIFF_BYTES or result.status is not NEED_MORE


# -- registry data -------------------------------------------------------------------------------------

def _valid_endpoint(spec: Any) -> None:
    host, port = split_address(spec.address)
    assert host and 0 < port < 65536 and isinstance(spec.weight, int) and spec.weight >= 0, spec


def check_zookeeper(texts: Sequence[str], raw_names: Sequence[str], now_ms: int) -> None:
    """Provider and configurator znodes (URLEncoder-encoded URLs, and names that are not): every parser
    raises only URLError; ServiceState reports bad nodes as errors and never fails as a whole."""
    names = [java_urlencode(t) for t in texts] + list(raw_names)
    with bounded("zookeeper urls", sum(map(len, names))):
        for text in texts:
            outcome(lambda: parse_url(text), URLError)
        for layout in ("dubbo", "sofarpc"):
            state = ServiceState("org.example.DemoService", get_layout(layout))
            for name in names:
                outcome(lambda: state.layout.parse_provider(name, state.interface), URLError)
                outcome(lambda: parse_override(name), URLError)
            errors = state.set_providers(names)
            errors += state.set_overrides(names)
            assert all(isinstance(e, str) for e in errors)
            for name in names:
                state.set_data(name, b"\x01")
            specs, _ = state.endpoints(now_ms, 600_000)
            for spec in specs:
                _valid_endpoint(spec)


def check_sofaregistry(texts: Sequence[str], data_id: str, now_ms: int) -> None:
    """Data ids and provider strings raise only DataError; a push's bad strings become errors."""
    with bounded("sofaregistry data", sum(map(len, texts)) + len(data_id)):
        service = outcome(lambda: Service.from_data_id(data_id), DataError)
        outcome(lambda: Service.parse(data_id.partition("@")[0]), DataError)
        for text in texts:
            outcome(lambda: parse_provider(text), DataError)
        if service is ERROR:
            service = Service("com.example.Calc")
        specs, _, errors = zone_endpoints(service, {"z1": list(texts), "z2": list(texts[:1])}, "z1", "dc", now_ms)
        for spec in specs:
            _valid_endpoint(spec)
        assert all(isinstance(e, str) for e in errors)


def check_nacos(hosts: Sequence[Any], service: str, now_ms: int) -> None:
    """Service names parse or are None; an instance raises only InstanceError; a push's bad instances
    become errors and the rest become endpoints."""
    with bounded("nacos instances", len(repr(hosts)) + len(service)):
        parse_service_name(service)
        for naming in ("plain", "dubbo"):
            for host in hosts:
                outcome(lambda: instance_endpoint(service, host, naming=naming, now_ms=now_ms,
                                                  default_warmup_ms=600_000), InstanceError)
            view = ServiceView(service)
            view.offer([h for h in hosts if isinstance(h, dict)], 1)
            specs, _, errors = cluster_endpoints([view], naming=naming, now_ms=now_ms)
            for spec in specs:
                _valid_endpoint(spec)


# -- the proxy around the decoders (tests.fuzz.rig) ---------------------------------------------------

def check_proxy(rig: Any, listener: str, data: bytes, chunks: Sequence[int]) -> None:
    """One connection sends ``data``: nothing escapes the protocol object, nothing is logged as an internal
    error, what meshd wrote is well formed, nothing of the connection outlives it (requests in flight,
    registered connections), and the control request on a fresh connection gets the baseline answer."""
    rt = rig.runtime
    before, logged = (rt.in_flight, len(rt.connections)), len(rig.errors.records)
    with bounded(f"{listener} listener", len(data)):
        _, transport = rig.connect(listener)
        rig.send(transport, split(data, chunks))
        proto = transport.protocol
        label(f"{type(proto).__name__}, {'closed by meshd' if transport.closed else 'left open'}, "
              f"{'answered' if transport.out else 'silent'}")
        rig.hang_up(transport)
        assert transport.late_writes == 0, "meshd wrote to a connection it had closed"
        assert [r.getMessage() for r in rig.errors.records[logged:]] == []
        assert (rt.in_flight, len(rt.connections)) == before, "a closed connection left requests or itself behind"
        _well_formed(proto, b"".join(transport.out), data)
        assert rig.talk(listener, [rig.control[listener]]) == rig.baseline[listener], \
            "another connection's garbage changed the answer to a good request"


class _Responses:
    def __init__(self) -> None:
        self.complete = 0
        self.started = 0

    def on_message_begin(self) -> None:
        self.started += 1

    def on_message_complete(self) -> None:
        self.complete += 1


def _well_formed(proto: Any, out: bytes, sent: bytes) -> None:
    """HTTP: whole HTTP/1.1 responses; RPC: whole response frames of the connection's protocol; a connection
    still sniffing wrote nothing."""
    kind = type(proto).__name__
    if kind == "AutoDownstream":
        assert out == b"", "meshd answered before it knew the protocol"
    elif kind == "HttpDownstream":
        if b"HEAD" in sent.upper():               # a HEAD answer has a length but no body: unparseable alone
            assert out[:9] in (b"", b"HTTP/1.1 ")
            return
        parsed = _Responses()
        parser = httptools.HttpResponseParser(parsed)
        parser.feed_data(out)
        assert parsed.started == parsed.complete, "a response was cut short"
    else:
        dec = proto.adapter.decoder(1 << 24)
        dec.receive_data(out)
        dec.receive_data(b"")
        adapter = proto.adapter
        while (ev := dec.next_event()) is not CLOSED:
            assert type(ev) in (adapter.Response, adapter.HeartbeatAck), f"meshd sent a {type(ev).__name__}"
