"""The ADS client transport: one ``grpc.aio`` stream to an xDS control plane, reconnecting for ever.

:class:`AdsClient` is the I/O shell around :class:`~discovery.xds.ads_state.AdsState` (the protocol, no I/O):
it opens ``StreamAggregatedResources`` (SotW) or ``DeltaAggregatedResources`` (``delta=True``), hands every
response to the state, writes the requests the state returns in order, and drives the does-not-exist
deadlines with ``loop.call_later``. Protocol rules (ACK/NACK, versions, nonces, wildcard, reconnect, ordering)
are documented in :mod:`discovery.xds.ads_state`.

Contract:

- Everything runs on one asyncio event loop: the one that calls :meth:`AdsClient.start`. ``subscribe`` may
  be called before ``start`` and at any time on that loop; it is synchronous and queues the request.
- ``on_update`` (the handler) is called synchronously on the loop, once per response that changes what was
  accepted, before the ACK/NACK is queued; while it runs no other response is read. Its return value or
  exception decides ACK (``None``) or NACK (the string / the exception named). ``on_missing(type_url, name)``
  and ``on_connection(connected)`` are called on the loop too; exceptions in them are logged and ignored.
- Connection: ``server`` is ``"host:port"`` or ``"unix:///path"``; plaintext unless ``credentials`` is given.
  Each attempt uses a fresh channel (its own subchannel pool, so only this back-off paces reconnects):
  wait until it is READY (at most :data:`CONNECT_TIMEOUT` s), open the stream, send the first requests (CDS
  and LDS, then EDS and RDS, then SDS) and report ``on_connection(True)``. When the stream ends or fails:
  ``on_connection(False)``, the accepted state is kept (nothing is emptied, the handler is not called), and
  the next attempt waits a jittered exponential back-off (``backoff_initial`` doubling to ``backoff_max``,
  times 0.8–1.2 from ``rng``, never above ``backoff_max``); the back-off restarts from ``backoff_initial``
  after a stream that received a response or lived longer than ``backoff_max``.
- Requests queued for a stream that ended are dropped: the first requests of the next stream restate
  everything (SotW the last accepted versions and full names, Delta the names and ``initial_resource_versions``).
- Bounds: responses up to 64 MiB (``grpc.max_receive_message_length``), :data:`MAX_NAMES` names per type,
  :data:`MAX_QUEUED` requests waiting for a server that does not read (then the stream is dropped).
- :meth:`AdsClient.stop` cancels the stream and the reconnect loop; ``start`` may be called again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any, Callable, Collection

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc

from discovery.xds.ads_state import (CLUSTER, ENDPOINT, LISTENER, MAX_NAMES, ROUTE, SECRET, WILDCARD, AdsState,
                                     Handler, Request, Update)

__all__ = ["CLUSTER", "ENDPOINT", "ROUTE", "LISTENER", "SECRET", "WILDCARD", "MAX_NAMES", "Update", "Handler",
           "AdsClient", "backoff_delay"]

log = logging.getLogger(__name__)

MAX_RECEIVE = 64 * 1024 * 1024
#: Requests queued for a server that does not read them; past this the stream is dropped and restated.
MAX_QUEUED = 10_000
#: How long one attempt waits for the channel to become READY before it counts as failed.
CONNECT_TIMEOUT = 10.0
_FAILED = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)


def backoff_delay(attempt: int, initial: float, maximum: float, u: float) -> float:
    """The wait before reconnect ``attempt`` (0 = the first after a good stream): ``initial * 2**attempt``
    capped at ``maximum``, times ``0.8 + 0.4*u`` (``u`` uniform in [0, 1)), never above ``maximum``."""
    base = min(maximum, initial * 2 ** min(attempt, 32))
    return min(maximum, base * (0.8 + 0.4 * u))


class AdsClient:
    """An asyncio ADS client (SotW or Delta); see the module docstring."""

    def __init__(self, server: str, node: Any, *, on_update: Handler,
                 on_missing: Callable[[str, str], None] = lambda type_url, name: None,
                 on_connection: Callable[[bool], None] = lambda connected: None,
                 delta: bool = False, credentials: "grpc.ChannelCredentials | None" = None,
                 initial_fetch_timeout: float = 15.0, backoff_initial: float = 0.1, backoff_max: float = 5.0,
                 rng: Callable[[], float] = random.random) -> None:
        if not server or any(c.isspace() for c in server):
            raise ValueError(f"xDS server must be 'host:port' or 'unix:///path', not {server!r}")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError(f"need 0 < backoff_initial <= backoff_max, got {backoff_initial}, {backoff_max}")
        self.server = server
        self.delta = delta
        self._credentials = credentials
        self._on_connection = on_connection
        self._backoff = (backoff_initial, backoff_max)
        self._rng = rng
        self._state = AdsState(node, on_update=on_update, on_missing=on_missing, delta=delta,
                               initial_fetch_timeout=initial_fetch_timeout, clock=time.monotonic)
        self._task: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[Request] | None = None
        self._call: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._connected = False
        self.streams_opened = 0
        self.attempts = 0  # consecutive failed attempts (the back-off exponent)

    def __repr__(self) -> str:
        state = "connected" if self._connected else ("connecting" if self._task else "stopped")
        types = " ".join(repr(s) for s in self._state._ordered())
        return (f"<AdsClient {'delta' if self.delta else 'sotw'} {self.server} {state} "
                f"streams={self.streams_opened} {types}>")

    # -------------------------------------------------------------------------------------- commands
    def subscribe(self, type_url: str, names: Collection[str]) -> None:
        """Set the FULL set of names wanted for ``type_url`` (``WILDCARD`` for CDS/LDS); sends a request
        when the set changed and a stream is open (otherwise the next stream's first request carries it)."""
        self._send(self._state.subscribe(type_url, names))

    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ads-client {self.server}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --------------------------------------------------------------------------------------- queries
    @property
    def connected(self) -> bool:
        return self._connected

    def accepted_version(self, type_url: str) -> str:
        return self._state.accepted_version(type_url)

    def status(self) -> dict[str, Any]:
        """A JSON-able summary: server, connection, streams opened, and per type URL its subscription,
        accepted version, last nonce, updates accepted/rejected, last NACK and resources known."""
        return {"server": self.server, "variant": "delta" if self.delta else "sotw",
                "connected": self._connected, "streams_opened": self.streams_opened,
                "types": self._state.status()}

    # ---------------------------------------------------------------------------------------- shell
    def _send(self, reqs: list[Request]) -> None:
        if self._outbox is not None:
            for req in reqs:
                self._outbox.put_nowait(req)
            if self._outbox.qsize() > MAX_QUEUED and self._call is not None:
                log.error("xDS %s: %d requests not written: dropping the stream", self.server, self._outbox.qsize())
                self._call.cancel()
        self._rearm()

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._state.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self._state.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._state.expire()
        self._rearm()

    def _set_connected(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        try:
            self._on_connection(connected)
        except Exception:  # noqa: BLE001
            log.exception("xDS on_connection(%s) failed", connected)

    async def _run(self) -> None:
        try:
            while True:
                good = await self._attempt()
                self.attempts = 0 if good else self.attempts + 1
                delay = backoff_delay(self.attempts, *self._backoff, self._rng())
                log.info("xDS %s: reconnecting in %.2fs (attempt %d)", self.server, delay, self.attempts + 1)
                await asyncio.sleep(delay)
        finally:
            self._closed()

    def _channel(self) -> grpc.aio.Channel:
        options = [("grpc.max_receive_message_length", MAX_RECEIVE), ("grpc.use_local_subchannel_pool", 1)]
        if self._credentials is not None:
            return grpc.aio.secure_channel(self.server, self._credentials, options=options)
        return grpc.aio.insecure_channel(self.server, options=options)

    @staticmethod
    async def _ready(channel: grpc.aio.Channel) -> None:
        state = channel.get_state(try_to_connect=True)
        while state is not grpc.ChannelConnectivity.READY:
            if state in _FAILED:
                raise ConnectionError(f"channel {state.name}")
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)

    async def _attempt(self) -> bool:
        """One connection and stream; True if it was good (a response came, or it lived long)."""
        channel = self._channel()
        call: Any = None
        received, opened_at = False, None
        try:
            await asyncio.wait_for(self._ready(channel), CONNECT_TIMEOUT)
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            call = stub.DeltaAggregatedResources() if self.delta else stub.StreamAggregatedResources()
            self._call, self._outbox = call, asyncio.Queue()
            self.streams_opened += 1
            opened_at = time.monotonic()
            self._send(self._state.stream_opened())
            self._set_connected(True)
            writer = asyncio.ensure_future(self._write(call, self._outbox))
            try:
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        log.warning("xDS %s: the server ended the stream", self.server)
                        break
                    received = True
                    self._send(self._state.on_response(resp))
            finally:
                writer.cancel()
        except grpc.aio.AioRpcError as exc:
            log.warning("xDS %s: stream failed: %s %s", self.server, exc.code().name, exc.details())
        except (ConnectionError, asyncio.TimeoutError) as exc:
            log.warning("xDS %s: cannot connect: %s", self.server, exc or type(exc).__name__)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():  # stop()
                raise
            log.warning("xDS %s: stream cancelled (dropped)", self.server)  # a locally cancelled call
        except Exception:  # noqa: BLE001 - a bug must not end the reconnect loop
            log.exception("xDS %s: stream failed", self.server)
        finally:
            self._closed()
            if call is not None:
                call.cancel()
            await asyncio.shield(channel.close())
        lived = opened_at is not None and time.monotonic() - opened_at > self._backoff[1]
        return received or lived

    def _closed(self) -> None:
        self._call = None
        if self._outbox is not None:
            self._outbox = None
            self._state.stream_closed()
        self._rearm()
        self._set_connected(False)

    async def _write(self, call: Any, outbox: asyncio.Queue[Request]) -> None:
        try:
            while True:
                await call.write(await outbox.get())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the read side sees the stream end and reconnects
            log.warning("xDS %s: write failed: %s", self.server, exc or type(exc).__name__)
