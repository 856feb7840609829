"""The RPC forwarding path (Dubbo2, SOFA Bolt) and protocol sniffing for ``auto`` listeners.

:class:`RpcDownstream` decodes the caller's frames; every request becomes an :class:`RpcExchange` (in
the common case first a lighter :class:`FastCall`; see RpcDownstream); heartbeats are answered here.
Requests on one connection are independent (multiplexed): each is routed, balanced and sent on its
own, and responses go back in whatever order providers answer.

Routing: the listener's route table (service, method, version, group, attachments); a request no route
matches goes to the cluster named after its interface (the RPC default of docs/configuration.md). Subset metadata: the
route's ``metadata_match`` plus what the request says — its ``version`` and ``group`` (Bolt: the
uniqueId) when the cluster's endpoints declare that key at all, and attachments/header-map entries
named in the listener's ``header_to_metadata``. Dubbo semantics hold: a call without a group reaches
only providers without a group, once any provider of the cluster declares one.

Deadline: the route timeout (or the listener's ``route_timeout``), shortened — never extended — by the
protocol's own deadline (Bolt timeout field, Dubbo ``timeout`` attachment). When it fires the slot on
the upstream connection is freed (a late response is dropped) and the caller gets the protocol's
timeout error. Every error meshd answers itself is in the caller's protocol (docs/protocols.md §5).

:class:`AutoDownstream` sniffs the first bytes of an ``auto`` connection and hands it to the HTTP/1.1
or the right RPC handler, replaying the bytes it read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from meshd import writebatch
from governance import BlockError
from meshd.codec.base import CLOSED, CodecError, FrameTooLarge, UnsupportedSerialization
from meshd.codec.outcome import Outcome, Result
from meshd.codec.sniff import BOLT, DUBBO, HTTP1, MATCH, NEED_MORE, sniff
from meshd.proxy.context import GovernedExchange, ListenerContext
from meshd.proxy.retry import RetryState
from meshd.proxy.rpc_protocols import ADAPTERS, RpcAdapter, RpcView
from meshd.upstream.mux import ID_LIMIT, MuxConnection, MuxPool

log = logging.getLogger("meshd.rpc")

class _Bodyless:
    """The routing view of a request whose body cannot be read: only a match-all route matches it."""

    service = method = version = group = ""

    @staticmethod
    def attachment(name: str) -> None:
        return None


_BODYLESS = _Bodyless()


class _Plan:
    """How requests whose head bytes are ``head`` (and fixed-header fields ``sig``) are forwarded when
    nothing but those bytes decides it: derived from the listener's cached routing decision. ``ok`` is
    False when such requests must take the general path (a retry policy, route metadata)."""

    __slots__ = ("head", "sig", "ok", "name", "route", "timeout", "rec", "ok_status", "resp_at", "resp_byte",
                 "exc_at", "exc_marks", "id_pack", "id_at")

    def __init__(self, head: bytes, sig: tuple, ok: bool, decision: tuple | None, adapter: RpcAdapter) -> None:
        self.head, self.sig, self.ok = head, sig, ok
        self.rec: Any = None                  # the listener's RequestStats for the cluster, once used
        self.route, self.name, _, _, self.timeout = decision if decision is not None else (None, "", {}, None, 0.0)
        # the adapter's response constants, where FastCall reads them fastest
        a = adapter
        self.ok_status, self.resp_at, self.resp_byte, self.exc_at, self.exc_marks, self.id_pack, self.id_at = \
            a.ok_status, a.resp_at, a.resp_byte, a.exc_at, a.exc_marks, a.id_pack, a.id_at


class RpcDownstream(asyncio.Protocol):
    """One caller connection speaking ``adapter``'s protocol.

    The common case takes a path without an exchange's method calls: a two-way request whose head bytes
    match a :class:`_Plan` (a cached decision with no retry policy and no route metadata) and that
    carries no deadline of its own in the body, while neither governance nor the access log is on, to a
    cluster whose hosts the request's own version/group do not select, with a host set built and a
    usable connection ready. :meth:`_events` picks, counts, arms and sends it as a :class:`FastCall`,
    which answers a plain success itself and turns into the :class:`RpcExchange` the general path
    would have made for anything else. Every other request takes :meth:`RpcExchange.start`, and the
    plan for its head is learnt from the decision it made.
    """

    def __init__(self, ctx: ListenerContext, adapter: RpcAdapter) -> None:
        self.ctx = ctx
        self.rt = ctx.runtime
        self.adapter = adapter
        self.decoder = adapter.decoder(ctx.config.max_frame_size)
        self.transport: asyncio.Transport | None = None
        self.active: set[RpcExchange] = set()
        self.closed = False
        self.last_activity = 0.0
        self.peer = ""
        self._plan: _Plan | None = None      # the plan the last request matched

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else ""
        self.last_activity = self.rt.loop.time()
        self.rt.connections.add(self)
        self.rt.stats.downstream_connection(self.ctx.name, 1)

    def data_received(self, data: bytes) -> None:
        now = self.last_activity = self.rt.loop.time()
        writebatch.begin()
        try:
            self.decoder.receive_data(data)
            self._events(now)
        except CodecError as exc:
            self._broken(exc)
        finally:
            writebatch.end()

    def _events(self, now: float) -> None:
        adapter, dec, rt, ctx = self.adapter, self.decoder, self.rt, self.ctx
        Request = adapter.Request
        gov = rt.governance
        fast = (gov is None or not gov.active) and not rt.access_log.enabled
        paths = ctx.rpc_paths                 # [common, other], meshd_rpc_requests_total{path}
        common = 0                            # common-path requests of this batch, added to paths[0] after it
        if fast:                              # what the common-case path needs, once per read
            at, sig_of, fast_key, plans = adapter.head_at, adapter.sig.unpack_from, adapter.fast_key, ctx.rpc_plans
            deadline_key, native_timeout = adapter.deadline_key, adapter.native_timeout
            id_at, id_pack, pname = adapter.id_at, adapter.id_pack, adapter.name
            clusters, active, pending = rt.clusters.clusters, self.active, writebatch._pending
            h2m = bool(ctx.config.header_to_metadata)
            epoch = writebatch.epoch
            slot: set = set()
            slot_timeout = -1.0
            # within one read: the last plan's cluster and host set, the last host's connection
            last_plan = last_host = last_cluster = balancer = last_conn = None
        while True:
            try:
                evs = dec.events()
            except FrameTooLarge as exc:
                reply = adapter.reject(exc.header, Outcome.BAD_REQUEST,
                                       f"frame of {exc.declared} bytes exceeds the {exc.limit}-byte limit")
                log.warning("listener %s: %s from %s; closing the connection", self.ctx.name, exc, self.peer)
                if reply:
                    self.write(reply)
                self.close()
                return
            if not evs:
                return
            for ev in evs:
                if type(ev) is not Request:
                    if ev is CLOSED:
                        paths[0] += common
                        return
                    self._other(ev)
                    continue
                learn = None
                if fast:
                    frame = ev.frame
                    plan = self._plan
                    if plan is None or not frame.startswith(plan.head, at):
                        # A full table stops the search: heads that never repeat (Bolt header maps with
                        # per-request trace ids) then cost nothing beyond the general path.
                        learn = fast_key(ev) if len(plans) < _PLAN_LIMIT else None
                        plan = plans.get(learn) if learn is not None else None
                        if plan is not None:
                            self._plan, learn = plan, None
                    conn = None
                    if plan is not None and plan.ok and sig_of(frame) == plan.sig:
                        timeout = plan.timeout
                        if deadline_key is not None:
                            if frame.find(deadline_key, at) >= 0:
                                timeout = 0.0         # the request carries its own deadline: general path
                        elif native_timeout:
                            ms = ev.timeout
                            if ms > 0 and ms / 1000.0 < timeout:
                                timeout = ms / 1000.0
                        host = None
                        if plan is last_plan:
                            cluster = last_cluster
                            if timeout > 0 and cluster.active_requests < cluster.max_requests:
                                host = balancer.pick()
                        else:
                            cluster = clusters.get(plan.name) if timeout > 0 else None
                            if cluster is not None and cluster.active_requests < cluster.max_requests and \
                                    not cluster.request_selects and not (h2m and cluster.request_metadata):
                                hs = cluster._sets.get(())
                                if hs is not None and cluster.clock() < cluster._health_epoch:
                                    last_plan, last_cluster, balancer = plan, cluster, hs.balancer
                                    host = balancer.pick()
                                else:
                                    host = cluster.pick(None)
                        if host is None:
                            pass
                        elif host is last_host:
                            conn = last_conn
                        else:
                            pool = host.pools.get(pname)
                            if pool is not None:
                                conn = pool._batch_conn
                                if pool._batch_epoch != epoch or conn.closed or conn.draining or conn.write_paused:
                                    conn = pool.batch_conn()
                                if conn is not None:
                                    last_host, last_conn = host, conn
                    if conn is not None:
                        call = _new_call(FastCall)
                        call.down, call.event, call.started, call.plan = self, ev, now, plan
                        call.cluster, call.host, call.conn = cluster, host, conn
                        call.callback, call.promoted = True, None
                        active.add(call)
                        rt.in_flight += 1
                        cluster.active_requests += 1
                        host.active_requests += 1
                        if timeout != slot_timeout:
                            slot, slot_timeout = rt.timers.slot(timeout), timeout
                        slot.add(call)
                        call.slot = slot
                        uid = call.uid = conn.next_id = conn.next_id + 1 if conn.next_id < ID_LIMIT else 1
                        id_pack(frame, id_at, uid)
                        conn.inflight[uid] = call
                        parts = pending.get(conn.transport)   # writebatch.write, inline: we are in the batch
                        if parts is None:
                            pending[conn.transport] = [frame]
                        else:
                            parts.append(frame)
                        common += 1
                        continue
                if fast:
                    last_plan = last_host = None      # the general path may change what they were picked from
                paths[1] += 1
                ex = RpcExchange(self, ev)
                try:
                    ex.start()
                except Exception:                    # a bug must cost one request, not the connection
                    log.exception("listener %s: internal error handling a %s request", self.ctx.name, adapter.name)
                    ex.reply(Outcome.INTERNAL, "internal error")
                if learn is not None:
                    self._plan = self._learn(learn, ex, sig_of(ev.frame))
            if common:
                paths[0] += common
                common = 0

    def _other(self, ev: Any) -> None:
        """A frame from a caller that is not a request: heartbeats are answered; responses, acks and events
        carry nothing to forward."""
        if type(ev) is self.adapter.Heartbeat and getattr(ev, "twoway", True) and not self.closed:
            self.write(self.adapter.heartbeat_ack(ev))

    def _learn(self, key: bytes, ex: "RpcExchange", sig: tuple) -> _Plan | None:
        """The plan for requests like ``ex``'s (head bytes ``key``), once the general path decided it."""
        view = ex.view
        if view is None or not self.adapter.fast_sig(sig):
            return None                       # unreadable, or a kind of frame that never takes the fast path
        decision = self.ctx.rpc_decisions.get((view.service, view.method, view.version))
        ok = decision is not None and decision[3] is None and not decision[2]
        plan = self.ctx.rpc_plans[key] = _Plan(key, sig, ok, decision, self.adapter)
        return plan

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.rt.connections.discard(self)
        self.rt.stats.downstream_connection(self.ctx.name, -1)
        for ex in list(self.active):
            ex.downstream_closed()

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        # The caller does not read its answers: stop reading its requests until it catches up.
        if not self.closed:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.closed:
            self.transport.resume_reading()

    # -- used by exchanges ---------------------------------------------------------------------------
    def write(self, data: bytes | bytearray) -> None:
        if not self.closed:
            writebatch.write(self.transport, data)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            writebatch.close(self.transport)

    @property
    def idle(self) -> bool:
        return not self.active

    def _broken(self, exc: CodecError) -> None:
        log.warning("listener %s: malformed %s stream from %s: %s; closing the connection", self.ctx.name,
                    self.adapter.name, self.peer, exc)
        self.close()


class RpcExchange(GovernedExchange):
    """One RPC request and its response; see the module docstring.

    Hot path: most fields are class-level defaults, so a request writes only what it uses; routing
    decisions are cached per listener by (service, method, version) when the route table cannot
    depend on anything else (no group or attachment matchers, no weighted clusters).
    """

    view: RpcView | None = None
    route: Any = None
    cluster: Any = None
    cluster_name = "-"
    metadata: dict[str, str] = {}
    retry: RetryState | None = None
    tried: list | None = None
    upstream_host: Any = None
    upstream: MuxConnection | None = None
    uid = 0
    pool: MuxPool | None = None
    timer: Any = None
    try_timer: Any = None
    finished = False
    status: int | str = "-"
    flags = ""
    outcome = Outcome.OK
    retrying = False
    oneway = False

    def __init__(self, down: RpcDownstream, event: Any) -> None:
        self.down = down
        self.rt = down.rt
        self.adapter = down.adapter
        self.event = event
        self.started = down.rt.loop.time()
        self.oneway = down.adapter.oneway(event)

    # -- routing -------------------------------------------------------------------------------------
    def start(self) -> None:
        down, rt, adapter = self.down, self.rt, self.adapter
        down.active.add(self)
        rt.in_flight += 1
        try:
            view = self.view = adapter.view(self.event)
        except UnsupportedSerialization as exc:
            return self._route_without_body(exc)
        except CodecError as exc:
            return self.reply(Outcome.BAD_REQUEST, f"undecodable request: {exc}")
        ctx = down.ctx
        decision = ctx.rpc_decisions.get((view.service, view.method, view.version))
        if decision is None:
            decision = self._decide(view, ctx)
            if decision is None:
                return
        self._forward(decision)

    def _decide(self, view: RpcView, ctx: ListenerContext) -> tuple | None:
        """Route ``view`` → (route, cluster, metadata, retry policy, timeout); remember it when nothing but
        (service, method, version) decided it."""
        routes = ctx.routes
        route = routes.match_rpc(view) if routes is not None else None
        if route is not None:
            if route.direct is not None:
                self.reply(Outcome.NO_ROUTE, f"route {route.name} has a direct response, which RPC cannot carry")
                return None
            name, md = route.pick_cluster(self.rt.rng)
        else:
            name, md = view.service, {}
        decision = _decision(route, name, md, ctx)
        if (routes is None or routes.rpc_cacheable) and (route is None or not route.weighted) and \
                len(ctx.rpc_decisions) < 4096:
            ctx.rpc_decisions[(view.service, view.method, view.version)] = decision
        return decision

    def _route_without_body(self, exc: UnsupportedSerialization) -> None:
        """A body meshd cannot parse is forwarded untouched when a catch-all route needs no body field."""
        routes = self.down.ctx.routes
        route = routes.match_rpc(_BODYLESS) if routes is not None else None
        if route is None or route.action is None:
            return self.reply(Outcome.BAD_REQUEST, f"serialization id {exc.serialization_id} is not supported "
                                                   f"and routing needs the service name from the body")
        name, md = route.pick_cluster(self.rt.rng)
        self._forward(_decision(route, name, md, self.down.ctx))

    def _forward(self, decision: tuple) -> None:
        route, name, route_md, policy, timeout = decision
        rt = self.rt
        self.route = route
        self.cluster_name = name
        cluster = rt.clusters.get(name)
        if cluster is None:
            what = f"interface {self.view.service!r}" if self.view else "this request"
            return self.reply(Outcome.NO_ROUTE, f"no route and no cluster for {what}")
        if cluster.active_requests >= cluster.max_requests:
            cluster.overflowed("max_requests")
            return self.reply(Outcome.OVERFLOW, f"cluster {name} max_requests reached")
        self.cluster = cluster
        cluster.active_requests += 1
        view = self.view
        if view is not None and cluster.request_metadata:
            declared = cluster.subsets.declared
            if declared["version"] or declared["group"] or self.down.ctx.config.header_to_metadata:
                route_md = self._metadata(declared, route_md)
        self.metadata = route_md
        if policy is not None:
            self.retry = RetryState(policy, rt.rng, http=False)
        if view is not None:
            native = self.adapter.timeout_ms(view)
            if native is not None and native / 1000.0 < timeout:
                timeout = native / 1000.0      # the caller's own deadline may shorten, never extend
        if timeout > 0 and not self.oneway:
            self.timer = rt.timers.call_later(timeout, self._timeout)
        if policy is None and (rt.governance is None or not rt.governance.active):
            self._send_attempt()
        else:
            self._attempt()

    def _metadata(self, declared: dict[str, int], route_md: dict[str, str]) -> dict[str, str]:
        view = self.view
        md: dict[str, str] = {}
        if declared.get("version") and view.version != "*":
            md["version"] = view.version
        if declared.get("group"):
            group = view.group
            if group != "*":
                md["group"] = group
        h2m = self.down.ctx.config.header_to_metadata
        if h2m:
            for name, key in h2m.items():
                value = view.attachment(name)
                if value is not None:
                    md[key] = value
        if not md:
            return route_md
        md.update(route_md)                    # the route's explicit selection wins
        return md

    # -- attempts ------------------------------------------------------------------------------------
    def _enter(self, gov: Any) -> Any:
        return gov.enter_rpc(self) if self.view is not None else None

    def _blocked(self, gov: Any, error: BlockError) -> None:
        self.reply(Outcome.BLOCKED, f"{error.kind} blocked: {gov.block_message(error)}")

    def _send_attempt(self) -> None:
        if self.finished:
            return
        cluster = self.cluster
        policy = self.retry.policy if self.retry is not None else None
        tried = self.tried
        exclude = tried if tried and (policy is None or policy.retry_host_predicate == "previous_hosts") else ()
        host = cluster.pick(self.metadata, exclude)
        if host is None:
            cluster.stats["no_healthy"] += 1
            self._exit_entry(Outcome.NO_HEALTHY_UPSTREAM)
            md = ", ".join(f"{k}={v!r}" for k, v in sorted(self.metadata.items()))
            return self.reply(Outcome.NO_HEALTHY_UPSTREAM,
                              f"no healthy provider in cluster {cluster.name}" + (f" for {md}" if md else ""))
        self.upstream_host = host
        if tried is None:
            self.tried = [host]
        else:
            tried.append(host)
        host.active_requests += 1
        if policy is not None and policy.per_try_timeout:
            self.try_timer = self.rt.timers.call_later(policy.per_try_timeout, self._per_try_timeout)
        pool = host.pools.get(self.adapter.name)
        if pool is None:
            pool = host.pools[self.adapter.name] = MuxPool(host, cluster, self.adapter, self.rt.stats,
                                                           self.down.ctx.config.max_frame_size)
        conns = pool.conns
        if len(conns) == 1 and conns[0].usable and pool.settings.connections_per_endpoint == 1:
            self.upstream_ready(conns[0])      # the common single-connection case, without the pool's choice
        else:
            self.pool = pool
            pool.acquire(self)

    def upstream_ready(self, conn: MuxConnection) -> None:
        if self.finished:
            return
        self.pool = None
        self.upstream = conn
        frame = self.event.frame
        if len(self.tried) > 1:
            frame = bytearray(frame)           # a retry never patches bytes an earlier write may still hold
        self.uid = conn.send(self, frame, self.oneway)
        if self.oneway:
            self._attempt_done(Result(Outcome.OK))
            self._finish()

    def upstream_failed(self, result: Result) -> None:
        self.pool = None
        self._attempt_failed(result)

    def upstream_response(self, conn: MuxConnection, event: Any) -> None:
        if conn is not self.upstream or self.finished:
            return
        self.upstream = None
        result = self.adapter.result(event)
        outcome = result.outcome
        if outcome is not Outcome.OK and self._retry(result):
            return
        if self.try_timer is not None:
            self.try_timer.cancel()
            self.try_timer = None
        frame = event.frame
        conn.patch(frame, self.event.request_id)
        self.down.write(frame)
        self.status = result.status
        self.outcome = outcome
        self._attempt_done(result)
        self._finish()

    def upstream_reset(self, conn: MuxConnection, reason: str) -> None:
        if conn is not self.upstream or self.finished:
            return
        self.upstream = None
        self._attempt_failed(Result(Outcome.RESET, detail=reason))

    # -- failures, retries, timeouts ---------------------------------------------------------------
    def _retry(self, result: Result) -> bool:
        """Schedule another attempt for ``result`` when the policy allows; True when scheduled."""
        retry = self.retry
        if retry is None or retry.remaining <= 0:
            return False
        if not self.cluster.retry_allowed():
            if retry.retriable(result):
                self.cluster.stats["retry_overflow"] += 1
                self.cluster.overflowed("retries")
            return False
        delay = retry.next_delay(result)
        if delay is None:
            return False
        self._cancel_try_timer()
        self._attempt_done(result)
        if not self.retrying:                   # a request in retry holds one slot until it finishes
            self.retrying = True
            self.cluster.active_retries += 1
        self.cluster.stats["retries"] += 1
        self.rt.loop.call_later(delay, self._retry_now)
        return True

    def _retry_now(self) -> None:
        if not self.finished:
            self._attempt()

    def _attempt_failed(self, result: Result) -> None:
        if self.finished:
            return
        if self._retry(result):
            return
        self._cancel_try_timer()
        self._attempt_done(result)
        detail = result.detail or result.outcome.value
        if result.outcome is Outcome.CONNECT_FAILURE:
            detail = f"cannot connect to provider {detail}"
        self.reply(result.outcome, detail)

    def _attempt_done(self, result: Result) -> None:
        if self.entry is not None:
            self._exit_entry(result.outcome)
        host = self.upstream_host
        if host is not None:
            self.upstream_host = None
            self.cluster.attempt_finished(host, result.outcome, result.status, False, len(self.tried) > 1)

    def _abandon_upstream(self) -> None:
        conn, self.upstream = self.upstream, None
        if conn is not None:
            conn.cancel(self.uid)              # the slot is freed; a late response is dropped
        elif self.pool is not None:
            self.pool.cancel(self)
        self.pool = None

    def _timeout(self) -> None:
        self.timer = None
        if self.finished:
            return
        self._abandon_upstream()
        self._cancel_try_timer()
        self._attempt_done(Result(Outcome.TIMEOUT))
        self.reply(Outcome.TIMEOUT, "upstream request timeout")

    def _per_try_timeout(self) -> None:
        self.try_timer = None
        if self.finished or self.upstream_host is None:
            return
        self._abandon_upstream()
        self._attempt_failed(Result(Outcome.TIMEOUT, detail="per-try timeout"))

    def _cancel_try_timer(self) -> None:
        if self.try_timer is not None:
            self.try_timer.cancel()
            self.try_timer = None

    # -- endings -------------------------------------------------------------------------------------
    def reply(self, outcome: Outcome, detail: str) -> None:
        """Answer the caller in its protocol for ``outcome`` (nothing for one-way requests)."""
        if self.finished:
            return
        self._abandon_upstream()
        data = self.adapter.reject(self.event, outcome, detail)
        if data is not None:
            self.down.write(data)
        self.outcome = outcome
        self.flags = outcome.response_flag
        self.status = outcome.value
        if outcome is Outcome.BAD_REQUEST:
            log.warning("listener %s: refused a %s request from %s: %s", self.down.ctx.name, self.adapter.name,
                        self.down.peer, detail)
        else:
            log.debug("listener %s: %s answered %s: %s", self.down.ctx.name, self.adapter.name, outcome.value,
                      detail)
        self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._cancel_try_timer()
        rt = self.rt
        rt.in_flight -= 1
        if self.cluster is not None:
            self.cluster.active_requests -= 1
            if self.retrying:
                self.cluster.active_retries -= 1
        if self.entry is not None:
            self._exit_entry(self.outcome)
        duration = rt.loop.time() - self.started
        down = self.down
        down.ctx.record(self.cluster_name, self.adapter.name).done(self.flags or self.outcome._value_, self.status,
                                                                   duration)
        if rt.access_log.enabled:
            view = self.view
            line = f"{self.adapter.name.upper()} {view.service}:{view.method} {view.version or '-'}" if view else \
                f"{self.adapter.name.upper()} -"
            upstream = self.tried[-1].address if self.tried else ""
            rt.access_log.write(time.time() - duration, line, self.status, self.flags, len(self.event.frame), 0,
                                duration, upstream, self.cluster_name, len(self.tried or ()))
        active = down.active
        active.discard(self)
        if rt.draining and not active:
            down.close()

    def downstream_closed(self) -> None:
        if self.finished:
            return
        self._abandon_upstream()
        self._attempt_done(Result(Outcome.RESET, detail="caller closed the connection"))
        self.flags = "DC"
        self._finish()

    def __repr__(self) -> str:
        v = self.view
        return f"<RpcExchange {self.adapter.name} {v.service if v else '?'}:{v.method if v else '?'}>"


class FastCall:
    """A request on the common-case path (see :class:`RpcDownstream`), in flight on ``conn`` as ``uid``.

    A plain success is answered here; anything else — another response, the connection or the caller
    going away, the deadline — first turns it into the :class:`RpcExchange` the general path would have
    made (:meth:`_promote`), which takes over. It is its own deadline timer in the wheel
    (``callback`` is True while armed, ``slot`` its tick's set) and stays the promoted exchange's timer.
    """

    __slots__ = ("down", "event", "started", "plan", "cluster", "host", "conn", "uid", "callback", "slot", "promoted")

    def upstream_response(self, conn: MuxConnection, event: Any) -> None:
        if self.callback is None:
            return
        plan = self.plan
        frame = event.frame
        status = event.status
        if status != plan.ok_status or frame[plan.resp_at] != plan.resp_byte or \
                (len(frame) > plan.exc_at and frame[plan.exc_at] in plan.exc_marks):
            return self._promote().upstream_response(conn, event)
        # what RpcExchange does for a plain success (upstream_response, _attempt_done, _finish), inline
        self.callback = None
        self.slot.discard(self)
        plan.id_pack(frame, plan.id_at, self.event.request_id)
        down = self.down
        if not down.closed:
            transport = down.transport
            if writebatch._depth:             # writebatch.write, inline
                parts = _pending.get(transport)
                if parts is None:
                    _pending[transport] = [frame]
                else:
                    parts.append(frame)
            else:
                transport.write(frame)
        host = self.host
        host.active_requests -= 1
        host.requests += 1
        cluster = self.cluster
        if cluster.outlier is not None:
            cluster.record(host, Outcome.OK, status, False)
        attempts = cluster.attempts
        attempts[_OK] = attempts.get(_OK, 0) + 1
        rt = down.rt
        rt.in_flight -= 1
        cluster.active_requests -= 1
        rec = plan.rec
        if rec is None:
            rec = plan.rec = down.ctx.record(plan.name, down.adapter.name)
        rec.done(_OK, status, rt.loop.time() - self.started)
        active = down.active
        active.discard(self)
        if rt.draining and not active:
            down.close()

    def upstream_reset(self, conn: MuxConnection, reason: str) -> None:
        if self.callback is not None:
            self._promote().upstream_reset(conn, reason)

    def downstream_closed(self) -> None:
        if self.callback is not None:
            self._promote().downstream_closed()

    def fire(self) -> None:
        """The deadline (from the timer wheel)."""
        self.callback = None
        self._promote()._timeout()

    def cancel(self) -> None:
        self.callback = None
        self.slot.discard(self)

    def _promote(self) -> "RpcExchange":
        """The RpcExchange in the state the general path would be in now; it replaces this call."""
        ex = self.promoted
        if ex is not None:
            return ex
        down, event, plan = self.down, self.event, self.plan
        ex = self.promoted = RpcExchange(down, event)
        ex.started = self.started
        try:
            ex.view = down.adapter.view(event)
        except CodecError:
            pass                              # the view only names the request in logs from here on
        ex.route, ex.cluster_name, ex.cluster = plan.route, plan.name, self.cluster
        ex.tried = [self.host]
        ex.upstream_host, ex.upstream, ex.uid = self.host, self.conn, self.uid
        ex.timer = self
        down.active.discard(self)
        down.active.add(ex)
        inflight = self.conn.inflight
        if inflight.get(self.uid) is self:
            inflight[self.uid] = ex
        return ex

    def __repr__(self) -> str:
        return f"<FastCall {self.down.adapter.name} {self.plan.name} uid={self.uid}>"


_new_call = object.__new__
_PLAN_LIMIT = 4096                            # plans per listener
_pending = writebatch._pending
_OK = Outcome.OK._value_


def _decision(route: Any, name: str, md: dict[str, str], ctx: ListenerContext) -> tuple:
    """(route, cluster name, route metadata, retry policy, timeout): everything a route decides."""
    action = route.action if route is not None else None
    policy = action.retry_policy if action is not None else None
    timeout = action.timeout if action is not None and action.timeout is not None else ctx.config.route_timeout
    return route, name, md, policy, timeout


class AutoDownstream(asyncio.Protocol):
    """Sniffs the first bytes, then becomes the HTTP/1.1, Dubbo or Bolt handler for the connection."""

    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.rt = ctx.runtime
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.last_activity = 0.0

    @property
    def idle(self) -> bool:
        return True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.last_activity = self.rt.loop.time()
        self.rt.connections.add(self)
        self.timer = self.rt.loop.call_later(self.ctx.config.sniff_timeout, self._too_slow)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        result = sniff(self.buf)
        if result.status is NEED_MORE:
            return
        self.rt.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        if result.status is not MATCH or result.protocol not in (HTTP1, DUBBO, BOLT):
            log.warning("listener %s: unrecognised protocol (%s) from %s; first bytes %s; closing",
                        self.ctx.name, result.protocol or "no match", self.transport.get_extra_info("peername"),
                        self.buf[:16].hex())
            self.closed = True
            self.transport.close()
            return
        if result.protocol == HTTP1:
            from meshd.proxy.http import HttpDownstream
            handler: asyncio.Protocol = HttpDownstream(self.ctx)
        else:
            handler = RpcDownstream(self.ctx, ADAPTERS[result.protocol])
        self.transport.set_protocol(handler)
        handler.connection_made(self.transport)
        handler.data_received(self.buf)

    def _too_slow(self) -> None:
        if not self.closed:
            log.warning("listener %s: no recognisable protocol within %.1fs; closing", self.ctx.name,
                        self.ctx.config.sniff_timeout)
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.rt.connections.discard(self)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.rt.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()


def rpc_protocol_factory(ctx: ListenerContext) -> Callable[[], asyncio.Protocol]:
    if ctx.protocol == "auto":
        return lambda: AutoDownstream(ctx)
    adapter = ADAPTERS[ctx.protocol]
    return lambda: RpcDownstream(ctx, adapter)
