"""SOFA Bolt (v1 and v2) codec, sans-IO: frame layout, connection-side decoder, lazy bodies, encoders, statuses.

Architecture (for the forwarding path):

- ``decoder.BoltDecoder``: ``receive_data(bytes)`` / ``next_event()`` → one event per frame, ``NEED_DATA``
  or ``CLOSED``; v1 and v2 frames may share a stream. v2 CRCs are verified.
- ``events``: ``BoltRequest`` (``request_id``, ``type``, ``cmdcode``, ``timeout``, ``frame``),
  ``BoltResponse`` (``status``), ``BoltHeartbeat``, ``BoltHeartbeatAck``. Routing: ``service()`` (the
  ``service`` header), ``head()`` (interface / version / uniqueId / method), ``header_map()``;
  everything else (``sofa_request()``, ``sofa_response()``) is parsed only on demand.
- ``frame``: layouts, ``read_request_id`` / ``patch_request_id`` (u32 at offset 5 in v1, 6 in v2; a v2 CRC
  is recomputed) / ``with_request_id``, header-map codec.
- ``encode``: SofaRequest / SofaResponse frames (draft hessian, as sofa-rpc-node writes), plain object frames
  (``encode_object``, as sofa-bolt sends any other class), status-only responses, heartbeats, ``reject``
  (in-protocol error for an outcome).
- ``wire``: :class:`~meshd.codec.bolt.wire.BoltObjectWire`, these codecs behind the interface discovery sources
  that speak Bolt to their registry use (:mod:`discovery.wire`).
- ``status``: response status ↔ ``Outcome`` both ways.
"""

from meshd.codec.bolt.body import BoltRequestHead, SofaRequest, SofaResponse, split_service
from meshd.codec.bolt.decoder import BoltDecoder
from meshd.codec.bolt.encode import (
    encode_heartbeat, encode_heartbeat_ack, encode_object, encode_request, encode_response, encode_status_response,
    reject,
)
from meshd.codec.bolt.events import BoltHeartbeat, BoltHeartbeatAck, BoltRequest, BoltResponse
from meshd.codec.bolt.frame import (
    BoltHeader, decode_header_map, encode_header_map, header_entries, key_names, parse_header, patch_request_id,
    read_request_id, with_request_id,
)
from meshd.codec.bolt.status import response_outcome, status_for, status_name, status_outcome

__all__ = [
    "BoltDecoder", "BoltRequest", "BoltResponse", "BoltHeartbeat", "BoltHeartbeatAck", "BoltHeader",
    "BoltRequestHead", "SofaRequest", "SofaResponse", "split_service",
    "parse_header", "read_request_id", "patch_request_id", "with_request_id",
    "decode_header_map", "encode_header_map", "header_entries", "key_names",
    "encode_object", "encode_request", "encode_response", "encode_status_response", "encode_heartbeat",
    "encode_heartbeat_ack",
    "reject", "status_outcome", "response_outcome", "status_for", "status_name",
]
