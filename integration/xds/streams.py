"""ADS stream logic without I/O, for both variants: requests and snapshot changes in, responses out.

:class:`SotwStream` (State of the World) and :class:`DeltaStream` (Incremental) each hold one stream's
subscriptions per type URL; ``on_request(request)`` and ``on_change(type_url)`` return the responses to
send, in order, and every request and response is handed to the ``record`` callback
(:mod:`integration.xds.log`). They read the shared :class:`~integration.xds.snapshot.Snapshot` and never
block; :mod:`integration.xds.server` moves their messages to and from gRPC on its event loop.

SotW contract (server side of envoyproxy/envoy:api/xds_protocol.rst), per stream and per type URL:
- The node is taken from the first request that carries one and remembered for the stream.
- Nonces are per stream (``"<stream>-<n>"``). A request whose ``response_nonce`` is not the latest nonce
  sent for its type is **stale**: logged and ignored (no subscription change, no response).
- Subscriptions: each request carries the full ``resource_names``. For LDS/CDS, ``"*"`` means wildcard, and
  an empty list means wildcard only while the client never sent a non-empty list for that type on this
  stream (legacy wildcard); otherwise an empty list means "not interested". EDS/RDS are by name only.
- Responses are sent (a) on the first request of a type on the stream (also after a reconnect, whatever
  ``version_info`` it carries: this server does not know what the client cached), (b) when a request
  newly names a resource or turns wildcard on (new names are sent even if unchanged), (c) when the
  snapshot changes what the stream would receive. Never in answer to an ACK or a NACK as such: a NACK is
  logged, the state is kept, and nothing is resent until the resources or the subscription change.
- Content: LDS/CDS responses carry every subscribed resource that exists (full state: a missing one is
  deleted, an empty response deletes all). EDS/RDS responses carry the subscribed resources that exist;
  a removed EDS/RDS resource just stops being sent (SotW has no delete for them). ``version_info`` is the
  type's current version.

Delta contract (server side of envoyproxy/envoy:api/xds_protocol.rst), per stream and per type URL:
- The node is remembered from the first request that carries one. Nonces are per stream.
- Subscriptions change only by ``resource_names_subscribe`` / ``resource_names_unsubscribe``; they are
  honoured on every request, also one with a stale nonce. ``"*"`` subscribes to the wildcard (LDS/CDS
  only); the first request of an LDS/CDS type with no names at all is the legacy wildcard.
- ``response_nonce`` + ``error_detail`` make a request an ACK or a NACK (logged with the
  ``system_version_info`` of the response the nonce names); ``system_version_info`` is debug only.
- The server tracks, per stream, the version of every resource it told the client about (or that the
  client declared in ``initial_resource_versions`` on its first request of a type, after a reconnect).
  It sends a resource only when the client does not have its current version, so a reconnect whose
  initial versions are all current gets nothing, and a NACKed resource is not resent until it changes.
- ``removed_resources`` lists names the client has (or declared) that no longer exist, and subscribed
  names that do not exist yet (the Delta "does not exist" signal, sent once per name until it appears).
  Unsubscribed names are simply forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from envoy.service.discovery.v3 import discovery_pb2

from integration.xds.log import Record, RequestRecord, ResponseRecord
from integration.xds.snapshot import WILDCARD_TYPES, Snapshot

WILDCARD = "*"
_ABSENT = ""  # Delta: "told the client this name does not exist"

@dataclass
class _SotwTypeState:
    names: set[str] = field(default_factory=set)
    wildcard: bool = False
    ever_named: bool = False
    last_nonce: str = ""
    sent: dict[str, str] | None = None  # name -> version of the last response; None = nothing sent yet


class SotwStream:
    """One SotW ADS stream: ``on_request`` / ``on_change`` return the responses to send, in order."""

    variant = "sotw"

    def __init__(self, stream_id: int, snapshot: Snapshot, record: Callable[[Record], None]) -> None:
        self.stream_id = stream_id
        self.snapshot = snapshot
        self.record = record
        self.node_id = ""
        self.types: dict[str, _SotwTypeState] = {}
        self._nonces = 0

    def __repr__(self) -> str:
        subs = {url.rsplit(".", 1)[-1]: (["*"] if st.wildcard else []) + sorted(st.names)
                for url, st in self.types.items()}
        return f"<SotwStream #{self.stream_id} node={self.node_id!r} subscriptions={subs}>"

    def on_request(self, req: discovery_pb2.DiscoveryRequest) -> list[discovery_pb2.DiscoveryResponse]:
        if req.HasField("node") and not self.node_id:
            self.node_id = req.node.id
        url = req.type_url
        first = url not in self.types
        state = self.types.setdefault(url, _SotwTypeState())
        nonce = req.response_nonce
        kind = self._classify(req, state)
        self.record(RequestRecord(
            stream=self.stream_id, variant=self.variant, kind=kind, type_url=url, version=req.version_info,
            nonce=nonce, resource_names=tuple(req.resource_names), node_id=self.node_id,
            error_detail=req.error_detail.message if req.HasField("error_detail") else None,
            error_code=req.error_detail.code if req.HasField("error_detail") else None))
        if kind == "stale":
            return []
        grew = self._subscribe(url, state, list(req.resource_names))
        if first or not nonce or grew:
            return [self._respond(url, state)]
        if state.sent is not None and not state.wildcard:  # unsubscribed names no longer count as sent
            state.sent = {n: v for n, v in state.sent.items() if n in state.names}
        return []

    def on_change(self, url: str) -> list[discovery_pb2.DiscoveryResponse]:
        """The snapshot changed ``url``: respond if what this stream would receive differs from what it got."""
        state = self.types.get(url)
        if state is None or state.sent is None:
            return []
        if self._content(url, state) == state.sent:
            return []
        return [self._respond(url, state)]

    @staticmethod
    def _classify(req: discovery_pb2.DiscoveryRequest, state: _SotwTypeState) -> str:
        if not req.response_nonce:
            return "request"
        if req.response_nonce != state.last_nonce:
            return "stale"
        return "nack" if req.HasField("error_detail") else "ack"

    @staticmethod
    def _subscribe(url: str, state: _SotwTypeState, names: list[str]) -> bool:
        """Apply the full name list; True when it adds names or turns wildcard on."""
        explicit = [n for n in names if n != WILDCARD]
        if url in WILDCARD_TYPES:
            wildcard = WILDCARD in names or (not names and not state.ever_named)
        else:
            wildcard = False
        grew = bool(set(explicit) - state.names) or (wildcard and not state.wildcard)
        state.ever_named = state.ever_named or bool(explicit)
        state.names, state.wildcard = set(explicit), wildcard
        return grew

    def _content(self, url: str, state: _SotwTypeState) -> dict[str, str]:
        available = self.snapshot.resources(url)
        wanted = available.keys() if state.wildcard else state.names
        return {name: available[name].version for name in wanted if name in available}

    def _respond(self, url: str, state: _SotwTypeState) -> discovery_pb2.DiscoveryResponse:
        content = self._content(url, state)
        available = self.snapshot.resources(url)
        self._nonces += 1
        nonce = f"{self.stream_id}-{self._nonces}"
        version = self.snapshot.version(url)
        resp = discovery_pb2.DiscoveryResponse(version_info=version, type_url=url, nonce=nonce,
                                               resources=[available[n].packed for n in sorted(content)])
        state.last_nonce, state.sent = nonce, content
        self.record(ResponseRecord(stream=self.stream_id, variant=self.variant, type_url=url, version=version,
                                   nonce=nonce, resource_names=tuple(sorted(content))))
        return resp


@dataclass
class _DeltaTypeState:
    names: set[str] = field(default_factory=set)
    wildcard: bool = False
    known: dict[str, str] = field(default_factory=dict)  # name -> version the client has, or _ABSENT


class DeltaStream:
    """One Delta ADS stream: ``on_request`` / ``on_change`` return the responses to send, in order."""

    variant = "delta"

    def __init__(self, stream_id: int, snapshot: Snapshot, record: Callable[[Record], None]) -> None:
        self.stream_id = stream_id
        self.snapshot = snapshot
        self.record = record
        self.node_id = ""
        self.types: dict[str, _DeltaTypeState] = {}
        self._nonces = 0
        self._sent_versions: dict[str, str] = {}  # nonce -> system_version_info

    def __repr__(self) -> str:
        subs = {url.rsplit(".", 1)[-1]: (["*"] if st.wildcard else []) + sorted(st.names)
                for url, st in self.types.items()}
        return f"<DeltaStream #{self.stream_id} node={self.node_id!r} subscriptions={subs}>"

    def on_request(self, req: discovery_pb2.DeltaDiscoveryRequest) -> list[discovery_pb2.DeltaDiscoveryResponse]:
        if req.HasField("node") and not self.node_id:
            self.node_id = req.node.id
        url = req.type_url
        first = url not in self.types
        state = self.types.setdefault(url, _DeltaTypeState())
        has_error = req.HasField("error_detail")
        kind = "request" if not req.response_nonce else ("nack" if has_error else "ack")
        self.record(RequestRecord(
            stream=self.stream_id, variant=self.variant, kind=kind, type_url=url,
            version=self._sent_versions.get(req.response_nonce, ""), nonce=req.response_nonce,
            resource_names=tuple(req.resource_names_subscribe), node_id=self.node_id,
            error_detail=req.error_detail.message if has_error else None,
            error_code=req.error_detail.code if has_error else None,
            unsubscribed=tuple(req.resource_names_unsubscribe),
            initial_resource_versions=dict(req.initial_resource_versions)))
        if first:
            state.known.update(req.initial_resource_versions)
            if url in WILDCARD_TYPES and not req.resource_names_subscribe:
                state.wildcard = True
        for name in req.resource_names_subscribe:
            if name == WILDCARD:
                state.wildcard = url in WILDCARD_TYPES
            else:
                state.names.add(name)
        for name in req.resource_names_unsubscribe:
            if name == WILDCARD:
                state.wildcard = False
            else:
                state.names.discard(name)
        self._forget_unwanted(url, state)
        return self._diff(url, state)

    def on_change(self, url: str) -> list[discovery_pb2.DeltaDiscoveryResponse]:
        state = self.types.get(url)
        return [] if state is None else self._diff(url, state)

    def _wants(self, url: str, state: _DeltaTypeState, name: str) -> bool:
        return name in state.names or (state.wildcard and name in self.snapshot.resources(url))

    def _forget_unwanted(self, url: str, state: _DeltaTypeState) -> None:
        """Drop what the client no longer subscribes to (a wildcard client keeps what it must be told is gone)."""
        for name in [n for n in state.known if not self._wants(url, state, n)]:
            if not (state.wildcard and state.known[name] != _ABSENT):
                del state.known[name]

    def _diff(self, url: str, state: _DeltaTypeState) -> list[discovery_pb2.DeltaDiscoveryResponse]:
        available = self.snapshot.resources(url)
        scope = set(state.names) | (set(available) if state.wildcard else set())
        send = sorted(n for n in scope if n in available and state.known.get(n) != available[n].version)
        removed = sorted(
            {n for n, v in state.known.items() if n not in available and v != _ABSENT}
            | {n for n in state.names if n not in available and n not in state.known})
        if not send and not removed:
            return []
        self._nonces += 1
        nonce = f"d{self.stream_id}-{self._nonces}"
        version = self.snapshot.version(url)
        self._sent_versions[nonce] = version
        resp = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=version, type_url=url, nonce=nonce, removed_resources=removed,
            resources=[discovery_pb2.Resource(name=n, version=available[n].version, resource=available[n].packed)
                       for n in send])
        for n in send:
            state.known[n] = available[n].version
        for n in removed:
            if n in state.names:
                state.known[n] = _ABSENT
            else:
                state.known.pop(n, None)
        self.record(ResponseRecord(stream=self.stream_id, variant=self.variant, type_url=url, version=version,
                                   nonce=nonce, resource_names=tuple(send), removed=tuple(removed)))
        return [resp]
