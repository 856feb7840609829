"""``meshd call``: a command-line Dubbo2 / Bolt client, like grpcurl.

    meshd call dubbo://127.0.0.1:20880 org.example.DemoService sayHello '"world"' 7 --version 1.0.0
    meshd call bolt://127.0.0.1:12200 com.example.Calc add 1 2 --types int,int

Arguments are JSON values. Java parameter types come from ``--types`` (``java.lang.String,int``) or are
inferred: str → java.lang.String, int → int (long when it does not fit 32 bits), float → double,
bool → boolean, list → java.util.List, dict → java.util.Map, null → java.lang.Object. With an explicit
class type, a JSON object becomes a typed Java object of that class.

Dubbo: ``--version`` and ``--group`` address the provider (group travels as an attachment), ``--attachment
k=v`` adds attachments. Bolt: the ``service`` header is ``iface:version[:uniqueId]`` (``--version``
defaults to 1.0, ``--group`` is the uniqueId), attachments become request headers and requestProps.

The decoded result is printed as JSON on stdout (exit 0). A failed call prints ``STATUS_NAME: message``
on stderr: exit 1 for an error answer (error status or exception result), 2 for bad usage, 3 when the
call could not complete (connection refused, timeout, undecodable answer).

This is not the forwarding path: it uses a blocking socket and the same sans-IO codecs as the proxy.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import itertools
import json
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from meshd.codec.base import NEED_DATA, CodecError
from meshd.codec.hessian2.values import JavaObject, Long

EXIT_OK, EXIT_CALL_FAILED, EXIT_USAGE, EXIT_TRANSPORT = 0, 1, 2, 3

_INT_TYPES = {"int", "java.lang.Integer", "short", "java.lang.Short", "byte", "java.lang.Byte"}
_LONG_TYPES = {"long", "java.lang.Long"}
_FLOAT_TYPES = {"double", "java.lang.Double", "float", "java.lang.Float"}
_BUILTIN_TYPES = _INT_TYPES | _LONG_TYPES | _FLOAT_TYPES | {
    "boolean", "java.lang.Boolean", "char", "java.lang.Character", "java.lang.String", "java.lang.Object",
    "java.util.List", "java.util.ArrayList", "java.util.Map", "java.util.HashMap", "java.util.Collection",
    "java.util.Set", "java.util.Date", "java.math.BigDecimal",
}
_JVM_PRIMS = {"boolean": "Z", "byte": "B", "char": "C", "double": "D", "float": "F", "int": "I", "long": "J",
              "short": "S"}


class CallError(Exception):
    """A failed call: ``name`` is the status (or error kind) name, ``exit_code`` what the CLI returns."""

    def __init__(self, name: str, message: str, exit_code: int = EXIT_CALL_FAILED) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.exit_code = exit_code


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("call", help="call a Dubbo or Bolt service (like grpcurl)",
                       description="Call one method of a Dubbo2 or Bolt service and print the result as JSON.")
    p.add_argument("target", help="dubbo://host:port or bolt://host:port")
    p.add_argument("service", help="interface name, e.g. org.example.DemoService")
    p.add_argument("method")
    p.add_argument("args", nargs="*", help="JSON arguments (quote strings: '\"world\"')")
    p.add_argument("--types", default=None, help="comma-separated Java parameter types, e.g. java.lang.String,int")
    p.add_argument("--attachment", action="append", default=[], metavar="K=V",
                   help="Dubbo attachment / Bolt header (repeatable)")
    p.add_argument("--version", dest="service_version", default=None, help="service version")
    p.add_argument("--group", default=None, help="Dubbo group / Bolt uniqueId")
    p.add_argument("--timeout", default="5s", help='call timeout: "5s", "500ms" or seconds (default 5s)')
    p.add_argument("--dubbo-version", default="2.0.2", help="Dubbo protocol version in the request body")
    p.add_argument("--bolt-version", type=int, choices=(1, 2), default=1, help="Bolt protocol version")
    p.add_argument("--crc", action="store_true", help="Bolt v2: append a CRC32 (ver1=2)")
    p.add_argument("--no-method-header", action="store_true",
                   help="Bolt: omit sofa_head_method_name (as sofa-rpc-node does)")


def call_command(args: argparse.Namespace) -> int:
    try:
        result = run_call(args)
    except CallError as e:
        print(f"{e.name}: {e.message}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(to_json(result), ensure_ascii=False, indent=2, sort_keys=False))
    return EXIT_OK


# -- arguments -------------------------------------------------------------------------------------------

def parse_timeout(text: str) -> float:
    t = text.strip()
    try:
        if t.endswith("ms"):
            return float(t[:-2]) / 1000
        if t.endswith("s"):
            return float(t[:-1])
        return float(t)
    except ValueError:
        raise CallError("BAD_ARGUMENT", f"--timeout {text!r}: expected e.g. 5s, 500ms or 2.5", EXIT_USAGE) from None


def parse_json_args(raw: list[str]) -> list[Any]:
    out = []
    for i, text in enumerate(raw):
        try:
            out.append(json.loads(text))
        except ValueError as e:
            raise CallError("BAD_ARGUMENT", f"argument {i + 1} {text!r} is not JSON ({e}); quote strings: "
                            f"'\"{text}\"'", EXIT_USAGE) from None
    return out


def infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int" if -(1 << 31) <= value < (1 << 31) else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "java.lang.String"
    if isinstance(value, list):
        return "java.util.List"
    if isinstance(value, dict):
        return "java.util.Map"
    return "java.lang.Object"


def convert(value: Any, java_type: str) -> Any:
    """A JSON value as the Python value the hessian encoder writes for ``java_type``."""
    t = java_type.strip()
    if value is None:
        return None
    if t in _LONG_TYPES:
        return Long(int(value))
    if t in _INT_TYPES:
        return int(value)
    if t in _FLOAT_TYPES:
        return float(value)
    if t in ("boolean", "java.lang.Boolean"):
        return bool(value)
    if isinstance(value, dict) and t not in _BUILTIN_TYPES and not t.endswith("[]") and not t.startswith("["):
        return JavaObject(t, value)
    return value


def typed_args(values: list[Any], types: str | None) -> tuple[list[Any], list[str]]:
    if types is None:
        names = [infer_type(v) for v in values]
    else:
        names = [t.strip() for t in types.split(",") if t.strip()]
        if len(names) != len(values):
            raise CallError("BAD_ARGUMENT", f"--types lists {len(names)} types for {len(values)} arguments",
                            EXIT_USAGE)
    return [convert(v, t) for v, t in zip(values, names)], names


def java_class_name(type_name: str) -> str:
    """``int[]`` → ``[I``, ``java.lang.String[]`` → ``[Ljava.lang.String;`` (Class.getName()); else unchanged."""
    t = type_name.strip()
    dims = 0
    while t.endswith("[]"):
        dims += 1
        t = t[:-2].strip()
    if not dims:
        return t
    return "[" * dims + (_JVM_PRIMS.get(t) or f"L{t};")


def parse_attachments(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CallError("BAD_ARGUMENT", f"--attachment {item!r}: expected key=value", EXIT_USAGE)
        out[key] = value
    return out


# -- the call ------------------------------------------------------------------------------------------------

def run_call(args: argparse.Namespace) -> Any:
    """Perform the call described by parsed CLI arguments; return the decoded result or raise CallError."""
    url = urlsplit(args.target)
    if url.scheme not in ("dubbo", "bolt") or not url.hostname or not url.port:
        raise CallError("BAD_ARGUMENT", f"target {args.target!r}: expected dubbo://host:port or bolt://host:port",
                        EXIT_USAGE)
    timeout = parse_timeout(args.timeout)
    values, types = typed_args(parse_json_args(args.args), args.types)
    attachments = parse_attachments(args.attachment)
    deadline = time.monotonic() + timeout
    try:
        if url.scheme == "dubbo":
            return _dubbo_call(url.hostname, url.port, args, values, types, attachments, deadline)
        return _bolt_call(url.hostname, url.port, args, values, types, attachments, deadline)
    except CodecError as e:
        raise CallError("PROTOCOL_ERROR", str(e), EXIT_TRANSPORT) from None


_IDS = itertools.count(1)


def _exchange(host: str, port: int, frame: bytes, decoder: Any, request_id: int, deadline: float,
              response_types: tuple[type, ...]) -> Any:
    """Send one frame and return the response event carrying ``request_id`` (heartbeats are ignored)."""
    try:
        sock = socket.create_connection((host, port), timeout=max(0.01, deadline - time.monotonic()))
    except OSError as e:
        raise CallError("CONNECT_FAILURE", f"{host}:{port}: {e.strerror or e}", EXIT_TRANSPORT) from None
    with sock:
        try:
            sock.sendall(frame)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                sock.settimeout(left)
                data = sock.recv(65536)
                decoder.receive_data(data)
                while (ev := decoder.next_event()) is not NEED_DATA:
                    if isinstance(ev, response_types) and ev.request_id == request_id:
                        return ev
                if not data:
                    raise CallError("RESET", "connection closed before the response", EXIT_TRANSPORT)
        except socket.timeout:
            raise CallError("TIMEOUT", f"no response from {host}:{port} within the timeout", EXIT_TRANSPORT) from None
        except OSError as e:
            raise CallError("RESET", f"{host}:{port}: {e.strerror or e}", EXIT_TRANSPORT) from None


def _dubbo_call(host: str, port: int, args: argparse.Namespace, values: list[Any], types: list[str],
                attachments: dict[str, str], deadline: float) -> Any:
    from meshd.codec.dubbo import DubboDecoder, DubboResponse, encode_request, status_name
    att = dict(attachments)
    if args.group:
        att["group"] = args.group
    att.setdefault("timeout", str(int(max(0.0, deadline - time.monotonic()) * 1000)))
    rid = next(_IDS)
    frame = encode_request(rid, args.service, args.method, values, param_types=types,
                           version=args.service_version, attachments=att, dubbo_version=args.dubbo_version)
    resp = _exchange(host, port, frame, DubboDecoder(), rid, deadline, (DubboResponse,))
    if not resp.ok:
        message = resp.error_message() if resp.serialization_id == 2 else None
        raise CallError(status_name(resp.status), message or "(no message)")
    result = resp.result()
    if result.is_exception:
        raise CallError("RESPONSE_WITH_EXCEPTION", describe_exception(result.exception))
    return result.value


def _bolt_call(host: str, port: int, args: argparse.Namespace, values: list[Any], types: list[str],
               attachments: dict[str, str], deadline: float) -> Any:
    from meshd.codec.bolt import BoltDecoder, BoltResponse, encode_request, status_name
    from meshd.codec.bolt.status import SERVER_EXCEPTION
    service = f"{args.service}:{args.service_version or '1.0'}" + (f":{args.group}" if args.group else "")
    rid = next(_IDS)
    timeout_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
    frame = encode_request(rid, service, args.method, values, arg_types=[java_class_name(t) for t in types],
                           timeout=timeout_ms, request_props={"service": service, **attachments},
                           headers=attachments, method_header=not args.no_method_header,
                           version=args.bolt_version, ver1=2 if args.crc else 1, crc=args.crc)
    resp = _exchange(host, port, frame, BoltDecoder(), rid, deadline, (BoltResponse,))
    if not resp.ok:
        detail = resp.content_value() if resp.status == SERVER_EXCEPTION or resp.content() else None
        raise CallError(status_name(resp.status), describe_exception(detail) if detail else "(no message)")
    sofa = resp.sofa_response()
    if sofa.is_error:
        raise CallError("SERVER_EXCEPTION", sofa.error_msg or "(no message)")
    if is_exception(sofa.app_response):
        raise CallError("SERVER_EXCEPTION", describe_exception(sofa.app_response))
    return sofa.app_response


def is_exception(value: Any) -> bool:
    return isinstance(value, JavaObject) and "detailMessage" in value and "stackTrace" in value


def describe_exception(value: Any) -> str:
    """``class: message`` for a decoded Java throwable; the JSON of anything else."""
    if isinstance(value, JavaObject):
        message = value.get("detailMessage")
        return f"{value.class_name}: {message}" if message is not None else value.class_name
    if isinstance(value, str):
        return value
    return json.dumps(to_json(value), ensure_ascii=False)


def to_json(value: Any, _depth: int = 0) -> Any:
    """Decoded hessian values as JSON-ready values (objects keep their class in ``$class``)."""
    if _depth > 200:
        return "<too deep or cyclic>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"$binary": base64.b64encode(value).decode()}
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, JavaObject):
        out = {"$class": value.class_name}
        out.update({str(k): to_json(v, _depth + 1) for k, v in value.items()})
        return out
    if isinstance(value, dict):
        return {k if isinstance(k, str) else json.dumps(to_json(k, _depth + 1)): to_json(v, _depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, _depth + 1) for v in value]
    return repr(value)
