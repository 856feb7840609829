"""The ADS client protocol without I/O: subscriptions, versions, nonces, ACK/NACK and does-not-exist deadlines.

:class:`AdsState` is the whole client side of one ADS stream (``envoyproxy/envoy:api/xds_protocol.rst``), for
SotW (``StreamAggregatedResources``) or Delta (``DeltaAggregatedResources``). It never awaits and never
touches a socket: the shell (:mod:`discovery.xds.transport`) tells it that a stream opened or closed, hands it
every response, and writes the requests it returns, in order, on the one stream. Time comes from the injected
``clock`` (monotonic seconds); the shell asks :meth:`AdsState.next_deadline` and calls :meth:`AdsState.expire`.

Contract, per type URL (each an independent sub-stream; one :class:`SotwState` or :class:`DeltaState` each):

- ``subscribe(type_url, names)`` sets the FULL set wanted (``"*"`` = wildcard, CDS and LDS only). While a
  stream is open a changed set yields a request: SotW the full ``resource_names`` with the last accepted
  version and the latest nonce; Delta only the (un)subscribed names, no nonce. A type whose set is empty and
  was never requested on the stream sends nothing (an empty first list would be the legacy wildcard).
- ``stream_opened()`` returns the first requests, CDS and LDS first, then EDS and RDS, then SDS, then other
  types (Envoy's order); the first request of a stream carries the ``node``. SotW re-sends the last accepted
  ``version_info`` and the full names with an empty nonce; Delta subscribes every name and declares
  ``initial_resource_versions`` (the versions of the resources currently accepted).
- ``on_response(resp)`` validates the response and, if it is well-formed, calls the handler synchronously
  with an :class:`Update`; ``None`` ACKs (version + nonce), a string NACKs (``error_detail`` code
  INVALID_ARGUMENT, SotW ``version_info`` = last accepted). The transport NACKs without calling the handler
  a response for a type never subscribed, a resource whose ``Any.type_url`` differs from the response's,
  a resource without a name or body, duplicate names, more than :data:`MAX_NAMES` resources. A handler
  exception is a NACK naming it. A response that changes nothing the client accepted is ACKed without
  calling the handler. Resources of names not subscribed (and not covered by a wildcard) are left out.
  The handler may call ``subscribe`` for other types (a CDS handler subscribing EDS names): those requests
  are returned after the ACK/NACK of the response being handled, as Envoy does.
- ``Update.removed``: SotW CDS/LDS (full state) the accepted names absent from the response; SotW EDS/RDS
  nothing; Delta the ``removed_resources`` the client had accepted.
- Does-not-exist: a deadline of ``initial_fetch_timeout`` per named (not wildcard) subscription, armed when
  the name is requested on a stream (again on each new stream for names still not received), disarmed when
  the resource arrives (accepted or NACKed by the handler), dropped when the stream closes. ``expire()`` calls
  ``on_missing(type_url, name)`` once per name per subscription; a Delta ``removed_resources`` entry for a
  subscribed name never received is the same signal, immediately.
- ``stream_closed()`` forgets nonces and deadlines and keeps everything accepted: a control plane going
  away empties nothing.

Not thread-safe: the shell owns it on its event loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Union

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import wrappers_pb2
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

log = logging.getLogger(__name__)

_PREFIX = "type.googleapis.com/"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
SECRET = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
WILDCARD = "*"

#: SotW responses of these types carry the full state; only these may be subscribed with the wildcard.
FULL_STATE: frozenset[str] = frozenset({CLUSTER, LISTENER})
#: The order of the first requests on a stream (Envoy: all CDS and LDS, then EDS and RDS, then the SDS secrets
#: the clusters and listeners reference).
OPEN_ORDER: tuple[str, ...] = (CLUSTER, LISTENER, ENDPOINT, ROUTE, SECRET)
#: Bound on the names subscribed per type and on the resources of one response.
MAX_NAMES = 100_000
#: Bound on the length of an error message sent in ``error_detail``.
MAX_ERROR = 4096
INVALID_ARGUMENT = 3  # google.rpc.Code

Request = Union[discovery_pb2.DiscoveryRequest, discovery_pb2.DeltaDiscoveryRequest]
Response = Union[discovery_pb2.DiscoveryResponse, discovery_pb2.DeltaDiscoveryResponse]


@dataclass(frozen=True)
class Update:
    """One well-formed response, as the handler sees it.

    ``resources``: name -> the ``google.protobuf.Any`` as received (subscribed names only).
    ``removed``: Delta: the ``removed_resources`` the client had; SotW CDS/LDS: names accepted before and
    absent now; SotW EDS/RDS: empty. ``version``: ``version_info`` (Delta ``system_version_info``)."""

    type_url: str
    resources: dict[str, Any]
    removed: frozenset[str]
    version: str
    nonce: str

    def __repr__(self) -> str:
        removed = f" removed={sorted(self.removed)}" if self.removed else ""
        return (f"<Update {_short(self.type_url)} v={self.version!r} nonce={self.nonce!r} "
                f"resources={sorted(self.resources)}{removed}>")


#: ``None`` ACKs the update; a string NACKs it with that ``error_detail`` message.
Handler = Callable[[Update], Union[str, None]]


@dataclass(frozen=True)
class Nack:
    """The last response a type rejected: its version and nonce, the error sent, the wall-clock time."""

    version: str
    nonce: str
    error: str
    time: float


class Rejected(Exception):
    """A response the transport itself NACKs (the message names what is wrong)."""


def _short(type_url: str) -> str:
    return type_url.rsplit(".", 1)[-1]


def _status(message: str) -> status_pb2.Status:
    return status_pb2.Status(code=INVALID_ARGUMENT, message=message[:MAX_ERROR] or "rejected")


def resource_name(packed: Any) -> str:
    """The name of a packed xDS resource: field 1 (``name``; ``cluster_name`` for a ClusterLoadAssignment) of
    Cluster, ClusterLoadAssignment, RouteConfiguration, Listener and Secret, read without decoding the rest."""
    try:
        return str(wrappers_pb2.StringValue.FromString(packed.value).value)
    except DecodeError as exc:
        raise Rejected(f"cannot read the name of a {packed.type_url}: {exc}") from None


def validate_names(type_url: str, names: Collection[str]) -> frozenset[str]:
    """The subscription set, checked: strings, no empty name, wildcard only for CDS/LDS, at most MAX_NAMES."""
    if isinstance(names, str):
        raise TypeError(f"subscribe({_short(type_url)}) takes a collection of names, not the string {names!r}")
    wanted = frozenset(names)
    if not all(isinstance(n, str) and n for n in wanted):
        raise ValueError(f"subscribe({_short(type_url)}): names must be non-empty strings: {sorted(map(repr, wanted))[:5]}")
    if WILDCARD in wanted and type_url not in FULL_STATE:
        raise ValueError(f"the wildcard is for CDS and LDS only, not {type_url}")
    if len(wanted) > MAX_NAMES:
        raise ValueError(f"subscribe({_short(type_url)}): {len(wanted)} names, more than {MAX_NAMES}")
    return wanted


class _TypeState:
    """What both variants keep per type URL: the wanted set, what was accepted, counters, deadlines."""

    def __init__(self, type_url: str) -> None:
        self.type_url = type_url
        self.wanted: frozenset[str] = frozenset()
        self.accepted_version = ""
        self.accepted = 0
        self.rejected = 0
        self.last_nonce = ""
        self.last_nack: Nack | None = None
        self.deadlines: dict[str, float] = {}   # name -> when it is declared missing (open stream only)
        self.missing: set[str] = set()           # names reported missing (until they arrive or are dropped)
        self.on_stream = False                   # something was requested for this type on the open stream

    def __repr__(self) -> str:
        names = sorted(self.wanted)
        shown = names[:5] + (["..."] if len(names) > 5 else [])
        nack = f" nack={self.last_nack.error!r}" if self.last_nack else ""
        return (f"<{type(self).__name__} {_short(self.type_url)} names={shown} v={self.accepted_version!r} "
                f"nonce={self.last_nonce!r} known={len(self.known_names())} ok={self.accepted} "
                f"nacked={self.rejected}{nack}>")

    @property
    def wildcard(self) -> bool:
        return WILDCARD in self.wanted

    def wants(self, name: str) -> bool:
        return self.wildcard or name in self.wanted

    def known_names(self) -> Collection[str]:
        raise NotImplementedError

    def forget(self, name: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------------ subscriptions, deadlines
    def set_wanted(self, wanted: frozenset[str]) -> None:
        """Record a new wanted set; what is no longer wanted is forgotten (no removal is reported for it)."""
        self.wanted = wanted
        for name in [n for n in self.known_names() if not self.wants(n)]:
            self.forget(name)
        self.missing &= wanted
        for name in [n for n in self.deadlines if n not in wanted]:
            del self.deadlines[name]

    def arm(self, now: float, timeout: float) -> None:
        """Start a deadline for every named subscription not received, not reported, not already armed."""
        known = self.known_names()
        for name in self.wanted:
            if name != WILDCARD and name not in known and name not in self.missing and name not in self.deadlines:
                self.deadlines[name] = now + timeout

    def arrived(self, names: Collection[str]) -> None:
        for name in names:
            self.deadlines.pop(name, None)
            self.missing.discard(name)

    def expire(self, now: float) -> list[str]:
        due = sorted(n for n, t in self.deadlines.items() if t <= now)
        for name in due:
            del self.deadlines[name]
            self.missing.add(name)
        return due

    def close(self) -> None:
        self.last_nonce = ""
        self.on_stream = False
        self.deadlines.clear()

    # ------------------------------------------------------------------------------------- responses
    def settle(self, update: Update | None, error: str | None, wall: float) -> None:
        """Count the outcome of a response (``update`` None: nothing changed, ACKed without the handler)."""
        if error is None:
            self.accepted += update is not None
        else:
            self.rejected += 1
            self.last_nack = Nack(self.accepted_version, self.last_nonce, error[:MAX_ERROR], wall)

    def status(self) -> dict[str, Any]:
        nack = self.last_nack
        return {
            "subscribed": {"count": len(self.wanted), "names": sorted(self.wanted)[:20]},
            "accepted_version": self.accepted_version,
            "last_nonce": self.last_nonce,
            "updates_accepted": self.accepted,
            "updates_rejected": self.rejected,
            "last_nack": None if nack is None else
            {"version": nack.version, "nonce": nack.nonce, "error": nack.error, "time": nack.time},
            "resources_known": len(self.known_names()),
            "missing": sorted(self.missing)[:20],
        }


class SotwState(_TypeState):
    """One type of a SotW ADS stream. ``known``: name -> the accepted ``Any``."""

    def __init__(self, type_url: str) -> None:
        super().__init__(type_url)
        self.known: dict[str, Any] = {}

    def known_names(self) -> Collection[str]:
        return self.known.keys()

    def forget(self, name: str) -> None:
        self.known.pop(name, None)

    def request(self, error: str | None = None) -> discovery_pb2.DiscoveryRequest:
        """The request that states everything: full names, last accepted version, latest nonce."""
        req = discovery_pb2.DiscoveryRequest(type_url=self.type_url, version_info=self.accepted_version,
                                             resource_names=sorted(self.wanted), response_nonce=self.last_nonce)
        if error is not None:
            req.error_detail.CopyFrom(_status(error))
        return req

    def open(self) -> discovery_pb2.DiscoveryRequest | None:
        if not self.wanted:
            return None
        self.on_stream = True
        return self.request()

    def change(self, wanted: frozenset[str]) -> discovery_pb2.DiscoveryRequest | None:
        """The set changed while a stream is open: the request to send (empty list only once requested)."""
        self.set_wanted(wanted)
        if not wanted and not self.on_stream:
            return None
        self.on_stream = True
        return self.request()

    def decode(self, resp: discovery_pb2.DiscoveryResponse) -> Update | None:
        """The update in ``resp`` (None when it changes nothing accepted); raises :class:`Rejected`."""
        if len(resp.resources) > MAX_NAMES:
            raise Rejected(f"{len(resp.resources)} resources in one response, more than {MAX_NAMES}")
        seen: set[str] = set()
        received: dict[str, Any] = {}
        for i, packed in enumerate(resp.resources):
            if packed.type_url != resp.type_url:
                raise Rejected(f"resource [{i}] has type_url {packed.type_url!r}, the response is for {resp.type_url!r}")
            name = resource_name(packed)
            if not name:
                raise Rejected(f"resource [{i}] has no name")
            if name in seen:
                raise Rejected(f"duplicate resource name {name!r} in one response")
            seen.add(name)
            if self.wants(name):
                received[name] = packed
        if not self.wanted and seen:
            raise Rejected(f"{len(seen)} resources of {resp.type_url}, which is not subscribed")
        full = self.type_url in FULL_STATE
        removed = frozenset(n for n in self.known if n not in received) if full else frozenset()
        if not removed and all(n in self.known and self.known[n] == p for n, p in received.items()):
            return None
        return Update(self.type_url, received, removed, resp.version_info, resp.nonce)

    def commit(self, update: Update | None, resp: discovery_pb2.DiscoveryResponse) -> None:
        self.accepted_version = resp.version_info
        if update is None:
            return
        if self.type_url in FULL_STATE:
            self.known = dict(update.resources)
        else:
            self.known.update(update.resources)

    def ack(self) -> discovery_pb2.DiscoveryRequest:
        return self.request()

    def nack(self, error: str) -> discovery_pb2.DiscoveryRequest:
        return self.request(error)


class DeltaState(_TypeState):
    """One type of a Delta ADS stream. ``known``: name -> the accepted resource version;
    ``told``: the names the server was told on the open stream (None: nothing requested yet)."""

    def __init__(self, type_url: str) -> None:
        super().__init__(type_url)
        self.known: dict[str, str] = {}
        self.told: frozenset[str] | None = None
        self.absent: list[str] = []   # does-not-exist names of the last decoded response
        self._versions: dict[str, str] = {}  # name -> version of the last decoded response

    def known_names(self) -> Collection[str]:
        return self.known.keys()

    def forget(self, name: str) -> None:
        self.known.pop(name, None)

    def open(self) -> discovery_pb2.DeltaDiscoveryRequest | None:
        if not self.wanted:
            return None
        self.on_stream = True
        self.told = self.wanted
        return discovery_pb2.DeltaDiscoveryRequest(
            type_url=self.type_url, resource_names_subscribe=sorted(self.wanted),
            initial_resource_versions={n: v for n, v in self.known.items() if v and self.wants(n)})

    def change(self, wanted: frozenset[str]) -> discovery_pb2.DeltaDiscoveryRequest | None:
        self.set_wanted(wanted)
        if self.told is None:
            return self.open()
        add, drop = wanted - self.told, self.told - wanted
        self.told = wanted
        if not add and not drop:
            return None
        return discovery_pb2.DeltaDiscoveryRequest(type_url=self.type_url, resource_names_subscribe=sorted(add),
                                                   resource_names_unsubscribe=sorted(drop))

    def close(self) -> None:
        super().close()
        self.told = None

    def decode(self, resp: discovery_pb2.DeltaDiscoveryResponse) -> Update | None:
        if len(resp.resources) + len(resp.removed_resources) + len(resp.removed_resource_names) > MAX_NAMES:
            raise Rejected(f"more than {MAX_NAMES} resources and removals in one response")
        seen: set[str] = set()
        received: dict[str, Any] = {}
        versions: dict[str, str] = {}
        for i, res in enumerate(resp.resources):
            name = res.name or res.resource_name.name
            if not name:
                raise Rejected(f"resource [{i}] has no name")
            if not res.HasField("resource"):
                raise Rejected(f"resource {name!r} has no body (resource TTL heartbeats are not supported)")
            if res.resource.type_url != resp.type_url:
                raise Rejected(f"resource {name!r} has type_url {res.resource.type_url!r}, "
                               f"the response is for {resp.type_url!r}")
            if name in seen:
                raise Rejected(f"duplicate resource name {name!r} in one response")
            seen.add(name)
            if self.wants(name):
                received[name], versions[name] = res.resource, res.version
        gone = [*resp.removed_resources, *(r.name for r in resp.removed_resource_names)]
        for name in gone:
            if name in seen:
                raise Rejected(f"resource name {name!r} both updated and removed (or removed twice) in one response")
            seen.add(name)
        if not self.wanted and resp.resources:
            raise Rejected(f"{len(resp.resources)} resources of {resp.type_url}, which is not subscribed")
        removed = frozenset(n for n in gone if n in self.known)
        if len(self.known.keys() | received.keys()) - len(removed) > MAX_NAMES:
            raise Rejected(f"more than {MAX_NAMES} resources of {resp.type_url} would be known")
        self.absent = sorted(n for n in gone if n not in self.known and n in self.wanted and n != WILDCARD)
        self._versions = versions
        if not removed and all(v and self.known.get(n) == v for n, v in versions.items()):
            return None
        return Update(self.type_url, received, removed, resp.system_version_info, resp.nonce)

    def commit(self, update: Update | None, resp: discovery_pb2.DeltaDiscoveryResponse) -> None:
        self.accepted_version = resp.system_version_info
        if update is None:
            return
        self.known.update(self._versions)
        for name in update.removed:
            self.known.pop(name, None)

    def ack(self) -> discovery_pb2.DeltaDiscoveryRequest:
        return discovery_pb2.DeltaDiscoveryRequest(type_url=self.type_url, response_nonce=self.last_nonce)

    def nack(self, error: str) -> discovery_pb2.DeltaDiscoveryRequest:
        req = self.ack()
        req.error_detail.CopyFrom(_status(error))
        return req


TypeState = Union[SotwState, DeltaState]


class AdsState:
    """The client side of one ADS stream, all types; see the module docstring."""

    def __init__(self, node: Any, *, on_update: Handler,
                 on_missing: Callable[[str, str], None] = lambda type_url, name: None,
                 delta: bool = False, initial_fetch_timeout: float = 15.0,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.on_update = on_update
        self.on_missing = on_missing
        self.delta = delta
        self.initial_fetch_timeout = initial_fetch_timeout
        self.clock = clock
        self.wall_clock = wall_clock
        self.types: dict[str, TypeState] = {}
        self.connected = False
        self._node_due = False
        self._in_handler = False
        self._deferred: list[Request] = []   # requests of subscribe() calls made by the handler

    def __repr__(self) -> str:
        types = " ".join(map(repr, self._ordered()))
        return f"<AdsState {'delta' if self.delta else 'sotw'} connected={self.connected} {types}>"

    def _ordered(self) -> list[TypeState]:
        rank = {url: i for i, url in enumerate(OPEN_ORDER)}
        return sorted(self.types.values(), key=lambda s: rank.get(s.type_url, len(rank)))

    def _stamp(self, reqs: list[Request | None]) -> list[Request]:
        out = [r for r in reqs if r is not None]
        if out and self._node_due:
            out[0].node.CopyFrom(self.node)
            self._node_due = False
        return out

    # ---------------------------------------------------------------------------------- the commands
    def subscribe(self, type_url: str, names: Collection[str]) -> list[Request]:
        """Set the full wanted set of a type; returns the request to send now (none while disconnected)."""
        wanted = validate_names(type_url, names)
        state = self.types.get(type_url)
        if state is None:
            state = self.types[type_url] = DeltaState(type_url) if self.delta else SotwState(type_url)
        elif state.wanted == wanted:
            return []
        if not self.connected:
            state.set_wanted(wanted)
            return []
        req = state.change(wanted)
        state.arm(self.clock(), self.initial_fetch_timeout)
        if self._in_handler:  # sent after the ACK/NACK of the response being handled (Envoy's order)
            self._deferred.extend(r for r in [req] if r is not None)
            return []
        return self._stamp([req])

    def stream_opened(self) -> list[Request]:
        """A new stream: the first requests, CDS and LDS first; the first one carries the node."""
        self.connected, self._node_due = True, True
        now = self.clock()
        reqs: list[Request | None] = []
        for state in self._ordered():
            reqs.append(state.open())
            state.arm(now, self.initial_fetch_timeout)
        return self._stamp(reqs)

    def stream_closed(self) -> None:
        """The stream ended: nonces and deadlines go, everything accepted stays."""
        self.connected = False
        for state in self.types.values():
            state.close()

    def on_response(self, resp: Response) -> list[Request]:
        """Validate, call the handler, and return the ACK or NACK to send."""
        state = self.types.get(resp.type_url)
        if state is None:
            return self._stamp([self._unsolicited(resp)])
        state.last_nonce = resp.nonce
        try:
            update = state.decode(resp)  # type: ignore[arg-type]
        except Rejected as exc:
            error = f"{_short(resp.type_url)} response {resp.nonce!r} rejected: {exc}"
            log.warning("xDS %s", error)
            state.settle(None, error, self.wall_clock())
            return self._stamp([state.nack(error)])
        error = None if update is None else self._call_handler(update)
        if update is not None:
            state.arrived(update.resources)
        state.settle(update, error, self.wall_clock())
        if error is not None:
            return self._stamp([state.nack(error), *self._take_deferred()])
        state.commit(update, resp)  # type: ignore[arg-type]
        if isinstance(state, DeltaState):
            for name in state.absent:
                state.deadlines.pop(name, None)
                if name not in state.missing:
                    state.missing.add(name)
                    self._report_missing(state.type_url, name)
        return self._stamp([state.ack(), *self._take_deferred()])

    def _take_deferred(self) -> list[Request]:
        out, self._deferred = self._deferred, []
        return out

    def _unsolicited(self, resp: Response) -> Request:
        error = f"response for type_url {resp.type_url!r}, which this client never subscribed"
        log.warning("xDS %s", error)
        if isinstance(resp, discovery_pb2.DeltaDiscoveryResponse):
            req: Request = discovery_pb2.DeltaDiscoveryRequest(type_url=resp.type_url, response_nonce=resp.nonce)
            if resp.type_url in FULL_STATE:  # an empty first request would subscribe the legacy wildcard
                req.resource_names_unsubscribe.append(WILDCARD)
        else:
            req = discovery_pb2.DiscoveryRequest(type_url=resp.type_url, response_nonce=resp.nonce)
        req.error_detail.CopyFrom(_status(error))
        return req

    def _call_handler(self, update: Update) -> str | None:
        self._in_handler = True
        try:
            result = self.on_update(update)
        except Exception as exc:  # noqa: BLE001 - a handler bug is a NACK, never fatal
            log.exception("xDS handler failed on %r", update)
            return f"handler raised {type(exc).__name__}: {exc}"
        finally:
            self._in_handler = False
        return None if result is None else str(result)

    def _report_missing(self, type_url: str, name: str) -> None:
        try:
            self.on_missing(type_url, name)
        except Exception:  # noqa: BLE001
            log.exception("xDS on_missing(%s, %s) failed", type_url, name)

    # ---------------------------------------------------------------------------------------- time
    def next_deadline(self) -> float | None:
        """When :meth:`expire` has something to do (``clock`` seconds), or None."""
        return min((t for s in self.types.values() for t in s.deadlines.values()), default=None)

    def expire(self) -> list[tuple[str, str]]:
        """Report (``on_missing``) and return the names whose does-not-exist deadline passed."""
        now = self.clock()
        due = [(s.type_url, name) for s in self._ordered() for name in s.expire(now)]
        for type_url, name in due:
            self._report_missing(type_url, name)
        return due

    # -------------------------------------------------------------------------------------- queries
    def accepted_version(self, type_url: str) -> str:
        state = self.types.get(type_url)
        return state.accepted_version if state else ""

    def status(self) -> dict[str, Any]:
        return {s.type_url: s.status() for s in self._ordered()}
