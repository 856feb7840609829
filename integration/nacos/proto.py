"""The Nacos 2.x gRPC wire envelope: ``Payload``/``Metadata`` messages and the three service methods.

Nacos (``alibaba/nacos:api/src/main/proto/nacos_grpc_service.proto``) wraps every request and response in::

    message Metadata { string type = 3; string clientIp = 8; map<string, string> headers = 7; }
    message Payload  { Metadata metadata = 2; google.protobuf.Any body = 3; }
    service Request          { rpc request (Payload) returns (Payload); }
    service RequestStream    { rpc requestStream (Payload) returns (stream Payload); }   // unused by clients
    service BiRequestStream  { rpc requestBiStream (stream Payload) returns (stream Payload); }

Only ``Any.value`` is used (``type_url`` stays empty): it holds the UTF-8 JSON of the request or response, and
``metadata.type`` is the Java simple class name (``InstanceRequest``, ``ConfigQueryResponse``, ...).

Choice: the descriptor is built by hand here (a ``FileDescriptorProto`` in a *private* descriptor pool), so the
server needs only ``protobuf`` and ``grpcio`` — not protoc, grpcio-tools or the client package. A private pool
matters: nacos-sdk-python registers a file of the same name with the same message names (no proto package) in
the default pool, and both live in one test process.

:func:`encode` / :func:`decode` turn ``(type, headers, body dict)`` into bytes and back; they raise
:class:`PayloadError` (never a protobuf or JSON exception) for anything a peer sent that does not parse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

#: Full method names, as gRPC sees them (no proto package, so the service name is bare).
REQUEST_METHOD = "/Request/request"
BI_STREAM_METHOD = "/BiRequestStream/requestBiStream"
REQUEST_STREAM_METHOD = "/RequestStream/requestStream"

_FILE_NAME = "meshd_nacos_grpc_service.proto"


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)

    f = descriptor_pb2.FileDescriptorProto(name=_FILE_NAME, syntax="proto3", dependency=[any_file.name])
    F = descriptor_pb2.FieldDescriptorProto
    meta = f.message_type.add(name="Metadata")
    meta.field.add(name="type", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    meta.field.add(name="clientIp", number=8, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    meta.field.add(name="headers", number=7, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                   type_name=".Metadata.HeadersEntry")
    entry = meta.nested_type.add(name="HeadersEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    payload = f.message_type.add(name="Payload")
    payload.field.add(name="metadata", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=".Metadata")
    payload.field.add(name="body", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                      type_name=".google.protobuf.Any")
    pool.Add(f)
    return pool


_POOL = _build_pool()
#: The generated message classes (private pool; see the module docstring).
Payload: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("Payload"))
Metadata: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("Metadata"))


class PayloadError(ValueError):
    """A payload from a peer that is not a valid Nacos envelope (bad protobuf, body not a JSON object)."""


@dataclass(frozen=True)
class Message:
    """One decoded payload: ``type`` is the Java class name, ``body`` the parsed JSON object."""

    type: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    client_ip: str = ""


def encode(type_name: str, body: dict[str, Any] | str | bytes, headers: dict[str, str] | None = None,
           client_ip: str = "") -> bytes:
    """Serialize a payload. ``body`` may be raw text/bytes (used to push deliberately broken JSON)."""
    if isinstance(body, dict):
        raw = json.dumps(body, separators=(",", ":")).encode()
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = body
    msg = Payload()
    msg.metadata.type = type_name
    msg.metadata.clientIp = client_ip
    msg.metadata.headers.update(headers or {})
    msg.body.value = raw
    return msg.SerializeToString()


def decode(data: bytes) -> Message:
    """Parse a serialized payload; :class:`PayloadError` when it is not a Nacos envelope."""
    try:
        msg = Payload.FromString(data)
    except Exception as exc:  # protobuf raises DecodeError, which is not part of a stable API
        raise PayloadError(f"not a Payload protobuf: {exc}") from None
    if not msg.metadata.type:
        raise PayloadError("payload without metadata.type")
    try:
        body = json.loads(msg.body.value.decode("utf-8")) if msg.body.value else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"{msg.metadata.type}: body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PayloadError(f"{msg.metadata.type}: body is JSON but not an object")
    return Message(msg.metadata.type, body, dict(msg.metadata.headers), msg.metadata.clientIp)


def identity(data: bytes) -> bytes:
    """Serializer for grpc generic handlers: the server works on raw bytes and calls encode/decode itself."""
    return data
