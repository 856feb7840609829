"""Dubbo2 (``dubbo://``) codec, sans-IO: frame layout, connection-side decoder, lazy bodies, encoders, statuses.

Architecture (for the forwarding path):

- ``decoder.DubboDecoder``: ``receive_data(bytes)`` / ``next_event()`` → one event per frame, ``NEED_DATA``
  or ``CLOSED``. Per frame: one ``struct.unpack_from`` of the 16-byte header and one slice (the frame).
- ``events``: ``DubboRequest``, ``DubboResponse``, ``DubboHeartbeat``, ``DubboHeartbeatAck``,
  ``DubboEvent`` — NamedTuples with ``request_id``, ``flag`` (``status``) and the raw ``frame``
  (bytearray, owned by the receiver). Bodies parse lazily: ``head()`` → service/version/method,
  ``meta()`` → + attachments (``group``), ``invocation()`` → + arguments.
- ``frame``: header constants, ``read_request_id`` / ``patch_request_id`` / ``with_request_id`` for
  multiplexing (int64 at offset 4, no re-encoding), JVM descriptors.
- ``encode``: requests, responses, synthesized errors (``encode_error_response``, ``reject``),
  heartbeats and acks, readonly events.
- ``status``: status bytes / result types ↔ ``Outcome`` both ways.

Only serialization id 2 (hessian2) bodies are parsed; frames in other serializations decode and forward
untouched, and their body accessors raise ``UnsupportedSerialization`` so the caller can reject them.
"""

from meshd.codec.dubbo.body import Invocation, RequestHead, RequestMeta, ResponseResult
from meshd.codec.dubbo.decoder import DubboDecoder
from meshd.codec.dubbo.encode import (
    encode_error_response, encode_heartbeat, encode_heartbeat_ack, encode_readonly_event, encode_request,
    encode_response, reject,
)
from meshd.codec.dubbo.events import DubboEvent, DubboHeartbeat, DubboHeartbeatAck, DubboRequest, DubboResponse
from meshd.codec.dubbo.frame import (
    HEADER_SIZE, MAGIC, DubboHeader, count_params, java_descriptor, parse_header, patch_request_id,
    read_request_id, with_request_id,
)
from meshd.codec.dubbo.status import response_outcome, status_for, status_name, status_outcome

__all__ = [
    "DubboDecoder", "DubboRequest", "DubboResponse", "DubboHeartbeat", "DubboHeartbeatAck", "DubboEvent",
    "RequestHead", "RequestMeta", "Invocation", "ResponseResult", "DubboHeader",
    "HEADER_SIZE", "MAGIC", "parse_header", "read_request_id", "patch_request_id", "with_request_id",
    "count_params", "java_descriptor",
    "encode_request", "encode_response", "encode_error_response", "encode_heartbeat", "encode_heartbeat_ack",
    "encode_readonly_event", "reject",
    "status_outcome", "response_outcome", "status_for", "status_name",
]
