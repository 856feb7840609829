"""Seeds: real captured frames and the registry strings real SDKs write; every fuzz strategy starts here.

Frames come from ``tests/fixtures/captures`` (recorded between third-party peers, see its README) and from
the captures quoted in docs/protocols.md; a few frames meshd encodes itself cover what the captures lack
(heartbeats, readonly events, Bolt v2 with CRC, attachments and exceptions in responses). Each
:class:`Seed` knows where its length fields are, so that mutations can aim at them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from integration.peers import read_tap_log
from meshd.codec import bolt, dubbo
from meshd.codec.base import NEED_DATA
from meshd.codec.hessian2 import JavaObject, encode_draft, encode_final

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"


class Seed(NamedTuple):
    """Bytes to mutate and its length fields: (offset, width in bytes)."""

    data: bytes
    lengths: tuple[tuple[int, int], ...] = ()


def _streams(name: str) -> dict[tuple[int, str], bytes]:
    out: dict[tuple[int, str], bytes] = {}
    for conn, tag, data in read_tap_log(CAPTURES / name):
        out[(conn, tag)] = out.get((conn, tag), b"") + data
    return out


def _frames(decoder: object, stream: bytes) -> list[bytes]:
    decoder.receive_data(stream)  # type: ignore[attr-defined]
    out = []
    while (ev := decoder.next_event()) is not NEED_DATA:  # type: ignore[attr-defined]
        out.append(bytes(ev.frame))
    return out


def dubbo_lengths(frames: list[bytes]) -> tuple[tuple[int, int], ...]:
    """The body-length field (int32 at 12) of every frame of a stream made of ``frames``."""
    out, at = [], 0
    for frame in frames:
        out.append((at + 12, 4))
        at += len(frame)
    return tuple(out)


def bolt_lengths(frames: list[bytes]) -> tuple[tuple[int, int], ...]:
    """classLen, headerLen, contentLen of every frame, and the i32 lengths inside every header map."""
    out, at = [], 0
    for frame in frames:
        h = bolt.parse_header(frame)
        assert h is not None
        first = h.size - 8                          # classLen u16, headerLen u16, contentLen u32 end the header
        out += [(at + first, 2), (at + first + 2, 2), (at + first + 4, 4)]
        p, end = at + h.size + h.class_len, at + h.size + h.class_len + h.header_len
        while p + 4 <= end:
            out.append((p, 4))
            n = int.from_bytes(frame[p - at:p - at + 4], "big", signed=True)
            p += 4 + max(n, 0)
        at += len(frame)
    return tuple(out)


_USER = JavaObject("com.example.User", {"name": "n", "tags": ["a"], "next": None})


def _dubbo_extra() -> list[bytes]:
    return [
        dubbo.encode_request(1, "org.example.DemoService", "save", [_USER, {"k": [1.5, b"\x00"]}, _USER],
                             param_types=["com.example.User", "java.util.Map", "com.example.User"],
                             version="1.0.0", attachments={"group": "blue", "timeout": "3000",
                                                           "remote.application": "caller"}),
        dubbo.encode_request(2, "org.example.DemoService", "echo", ["h\u00e9llo \u4e16\u754c \U0001f600"],
                             param_types=["java.lang.String"], twoway=False),
        dubbo.encode_heartbeat(3), dubbo.encode_heartbeat_ack(3), dubbo.encode_readonly_event(4),
        dubbo.encode_response(5, exception=_USER, attachments={"dubbo": "2.0.2"}),
        dubbo.encode_response(6, {"a": [1, 2, 3]}, attachments={"dubbo": "2.0.2"}),
        dubbo.encode_response(7, null_value=True),
    ]


def _bolt_extra() -> list[bytes]:
    return [
        bolt.encode_request(5, "com.nodejs.test.TestService:1.0:blue", "plus", [1, 2], arg_types=["int", "int"],
                            version=2, ver1=2, crc=True),
        bolt.encode_request(6, "com.nodejs.test.TestService:1.0", "greet", ["bolt"], arg_types=["java.lang.String"],
                            headers={"app": "caller", "rpc_trace_context.sofaTraceId": "0a0b0c"}, oneway=True),
        bolt.encode_request(7, "com.nodejs.test.TestService:1.0", "plus", [_USER], arg_types=["com.example.User"],
                            method_header=False),
        bolt.encode_heartbeat(8), bolt.encode_heartbeat(9, version=2), bolt.encode_heartbeat_ack(8),
        bolt.encode_status_response(10, 4), bolt.encode_response(11, _USER, response_props={"k": "v"}),
    ]


def frame_seeds() -> dict[str, list[Seed]]:
    """``{"dubbo": [...], "bolt": [...]}``: whole captured streams (one per connection and direction) and
    single frames, each with its length fields."""
    out: dict[str, list[Seed]] = {"dubbo": [], "bolt": []}
    streams = {"dubbo": list(_streams("dubbo_js_to_sofa_dubbo.tap").values()) + _dubbo_extra(),
               "bolt": list(_streams("sofa_node_bolt_draft.tap").values())
               + list(_streams("sofa_node_bolt_final.tap").values()) + _bolt_extra()}
    for protocol, make, lengths in (("dubbo", dubbo.DubboDecoder, dubbo_lengths),
                                    ("bolt", bolt.BoltDecoder, bolt_lengths)):
        for stream in streams[protocol]:
            frames = _frames(make(1 << 20), stream)
            assert b"".join(frames) == stream, f"a {protocol} seed stream is whole frames"
            out[protocol].append(Seed(stream, lengths(frames)))
            if len(frames) > 1:
                out[protocol] += [Seed(f, lengths([f])) for f in frames]
        every = [s.data for s in out[protocol] if len(s.data) < 2000]    # one pipelined stream of them all
        out[protocol].append(Seed(b"".join(every), lengths(_frames(make(1 << 20), b"".join(every)))))
    return out


def hessian_seeds() -> dict[str, list[Seed]]:
    """Hessian bodies in each grammar: the bodies of the captured frames and a few rich values."""
    frames = frame_seeds()
    final = [Seed(s.data[16:]) for s in frames["dubbo"] if len(s.data) > 16 and s.data[2] & 0x1F == 2
             and int.from_bytes(s.data[12:16], "big") == len(s.data) - 16]
    draft = []
    for s in frames["bolt"]:
        h = bolt.parse_header(s.data)
        if h is not None and h.total == len(s.data) and h.content_len:
            content = s.data[h.total - h.content_len - (4 if h.has_crc else 0):][:h.content_len]
            (final if content[:1] == b"C" else draft).append(Seed(content))
    rich = ("s" * 40, "\u4e16\U0001f600", 1 << 40, -7, 2.5, 0.0, b"\x00" * 20, [1, "x", {"k": b"\x00"}], None, True,
            JavaObject("A", {"a": 1, "b": [JavaObject("A", {"a": 2, "b": None})]}), {1: [], "k": {}})
    final.append(Seed(encode_final(*rich)))
    draft.append(Seed(encode_draft(*rich)))
    return {"final": final, "draft": draft}


def header_map_seeds() -> list[Seed]:
    """Bolt header maps: the captured ones and a Java SOFARPC-sized one (docs/protocols.md §4)."""
    out = []
    for s in frame_seeds()["bolt"]:
        h = bolt.parse_header(s.data)
        if h is not None and h.total == len(s.data) and h.header_len:
            raw = s.data[h.size + h.class_len:h.size + h.class_len + h.header_len]
            out.append(Seed(raw, bolt_lengths_in_map(raw)))
    java = bolt.encode_header_map({
        "service": "com.example.Calc:1.0:blue", "sofa_head_method_name": "add",
        "sofa_head_target_service": "com.example.Calc:1.0:blue", "sofa_head_target_app": "calc",
        "rpc_trace_context.sofaTraceId": "0a1b2c3d4e5f", "rpc_trace_context.sofaRpcId": "0.1",
        "rpc_trace_context.sofaCallerApp": "caller", "protocol": "bolt", "type": "sync", "empty": "",
        "\u4e16": "\u754c",
    })
    out.append(Seed(java, bolt_lengths_in_map(java)))
    return out


def bolt_lengths_in_map(raw: bytes) -> tuple[tuple[int, int], ...]:
    out, p = [], 0
    while p + 4 <= len(raw):
        out.append((p, 4))
        p += 4 + max(int.from_bytes(raw[p:p + 4], "big", signed=True), 0)
    return tuple(out)


HTTP_REQUESTS = [
    # what curl 7.88 sends, a browser-like GET, a POST with a body, a chunked upload, pipelining
    b"GET /demo?x=1 HTTP/1.1\r\nHost: svc\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: svc:8080\r\nConnection: keep-alive\r\nAccept-Encoding: gzip, deflate\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nCookie: a=b; c=d\r\n\r\n",
    b"POST /api HTTP/1.1\r\nHost: svc\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n"
    b"{\"k\": \"v\"}",
    b"PUT /up HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: svc\r\n\r\nGET /2 HTTP/1.1\r\nHost: svc\r\nX-Envoy-Upstream-Rq-Timeout-Ms: 50\r\n\r\n",
    b"GET /old HTTP/1.0\r\nHost: svc\r\n\r\n",
]


# Registry strings as the SDKs write them (tests/unit/discovery/*, docs/discovery.md): Dubbo 2.7
# URL.toFullString, SOFARPC's RegistryUtils and SofaRegistryHelper, a Dubbo override rule.
DUBBO_URL = ("dubbo://10.0.0.5:20880/org.example.DemoService?anyhost=true&application=demo&deprecated=false"
             "&dubbo=2.0.2&dynamic=true&generic=false&group=g1&interface=org.example.DemoService"
             "&methods=sayHello,sayBye&pid=4242&release=2.7.23&revision=1.0.0&side=provider"
             "&timestamp=1700000000000&version=1.0.0&weight=100&warmup=600000")
SOFA_URL = ("bolt://10.0.0.5:12200?version=1.0&uniqueId=&interface=org.example.DemoService&timeout=0&delay=-1"
            "&id=rpc-cfg-0&dynamic=true&weight=100&accepts=100000&startTime=1700000000000&pid=7&language=java"
            "&rpcVer=50707&warmupTime=60000&warmupWeight=10")
OVERRIDE_URL = "override://0.0.0.0/org.example.DemoService?category=configurators&dynamic=false&enabled=true" \
               "&weight=200&~application=demo&providerAddresses=10.0.0.5:20880&priority=3"
SOFAREGISTRY_PROVIDER = ("10.0.0.5:12200?rpcVer=50900&serialization=hessian2&weight=100&timeout=3000&appName=calc"
                         "&p=1&v=4.0&_SERIALIZETYPE=hessian2&_WEIGHT=100&_TIMEOUT=3000&app_name=calc"
                         "&startTime=1700000000000&warmupTime=60000&warmupWeight=5")
SOFA_DATA_IDS = ["com.example.Calc:1.0@DEFAULT", "com.example.Calc:1.0:blue@DEFAULT", "com.example.Calc:2.0@h2c"]
NACOS_HOST = {"instanceId": "10.0.0.1#20880#DEFAULT#DEFAULT_GROUP@@providers:org.example.DemoService:1.0.0:g1",
              "ip": "10.0.0.1", "port": 20880, "weight": 1.0, "healthy": True, "enabled": True, "ephemeral": True,
              "clusterName": "DEFAULT", "serviceName": "DEFAULT_GROUP@@providers:org.example.DemoService:1.0.0:g1",
              "metadata": {"side": "provider", "weight": "100", "timestamp": "1700000000000", "warmup": "600000",
                           "dubbo": "2.0.2", "release": "2.7.23", "methods": "sayHello", "version": "1.0.0",
                           "group": "g1", "zone": "z1"}}
NACOS_SERVICES = ["providers:org.example.DemoService:1.0.0:g1", "providers:org.example.DemoService::",
                  "consumers:org.example.DemoService:1.0.0:", "user-service"]
