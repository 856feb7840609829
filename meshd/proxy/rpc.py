"""The RPC forwarding path (Dubbo2, SOFA Bolt) and protocol sniffing for ``auto`` listeners.

:class:`RpcDownstream` decodes the caller's frames; every request becomes an :class:`RpcExchange`;
heartbeats are answered here. Requests on one connection are independent (multiplexed): each is routed,
balanced and sent on its own, and responses go back in whatever order providers answer.

One path: a request is forwarded by a :class:`_Plan`, which the first request with its routing key
(path, version, group and method for Dubbo; the ``service``, method and named header-map entries for
Bolt) leaves behind when it is routed; the requests after it are neither decoded nor routed again.
Their caller's deadline, governance entry and exit, subset pick, retries and access log line all
happen on the same exchange; only a request whose key is new, or whose route reads more than the key
(attachment matchers, weighted clusters, Dubbo ``header_to_metadata``), is decoded and routed on its
own (``meshd_rpc_requests_total{path="other"}``).

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
from typing import Any, Callable

from meshd import writebatch
from meshd.accesslog import rpc_request
from governance import BlockError
from meshd.codec.base import CLOSED, CodecError, FrameTooLarge, UnsupportedSerialization
from meshd.codec.outcome import Outcome, Result
from meshd.codec.sniff import BOLT, DUBBO, HTTP1, MATCH, NEED_MORE, sniff
from meshd.proxy.context import ListenerContext, admit, attempt, exit_entry
from meshd.proxy.retry import RetryState
from meshd.proxy.rpc_protocols import ADAPTERS, RpcAdapter, RpcView
from meshd.routing.subset import Selection
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
    """How requests with one routing key are forwarded: what routing decided for the first of them.

    Made by the request that routes a key first (the general path: decode, match the route table) and
    kept per listener and protocol when nothing but the key decided it (``cacheable``); every later
    request with that key is forwarded by it without a decode. It keeps, besides the route's decision,
    the subset selection its version, group and ``header_to_metadata`` values make in the cluster
    (recomputed when the cluster's hosts change: ``epoch``), the governance resources it enters (per rule
    generation) and its stats record.
    """

    __slots__ = ("service", "method", "version", "group", "extra", "oneway", "route", "name", "route_md", "policy",
                 "timeout", "cacheable", "epoch", "md", "md_key", "gov_gen", "gov", "rec", "log")

    def __init__(self, service: str, method: str, version: str, group: str, extra: dict[str, str], oneway: bool,
                 decision: tuple, cacheable: bool) -> None:
        self.service, self.method, self.version, self.group, self.extra = service, method, version, group, extra
        self.oneway = oneway
        self.route, self.name, route_md, self.policy, self.timeout = decision
        self.route_md = route_md if type(route_md) is Selection else Selection(route_md)
        self.cacheable = cacheable
        self.epoch = -1
        self.md: Selection = self.route_md
        self.md_key: tuple = self.route_md.key
        self.gov_gen = -1
        self.gov: tuple = ()
        self.rec: Any = None
        self.log: str | None = None           # its access-log request line (made on first use)

    def select(self, cluster: Any) -> None:
        """The subset metadata for ``cluster`` as it is now (Dubbo's rules: a request's version and group
        select only once some endpoint of the cluster declares that key; the route's selection wins)."""
        md: dict[str, str] = {}
        if cluster.request_metadata:
            declared = cluster.subsets.declared
            if declared["version"] and self.version != "*":
                md["version"] = self.version
            if declared["group"] and self.group != "*":
                md["group"] = self.group
            md.update(self.extra)
        if md:
            md.update(self.route_md)
            self.md = Selection(md)
        else:
            self.md = self.route_md
        self.md_key = self.md.key
        self.epoch = cluster.epoch


class RpcDownstream:
    """One caller connection speaking ``adapter``'s protocol (an asyncio protocol: every method of one is here,
    so that the compiled hot path can make it an extension type, rpc.pxd).

    Every request becomes an :class:`RpcExchange` and is forwarded by a :class:`_Plan` in
    :meth:`_events`. One whose routing key (``adapter.route_key``) has a plan is forwarded by it
    (``path="common"`` in ``meshd_rpc_requests_total``); any other is decoded and routed first
    (``RpcExchange.route``, ``"other"``), and leaves the plan for its key when the key alone decided its
    route.
    """

    __slots__ = ("ctx", "rt", "adapter", "decoder", "transport", "active", "closed", "last_activity", "peer",
                 "identity")

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
        self.identity = ""                    # the verified TLS peer's SPIFFE id or name (caller origin)

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
        """Forward every request of this read as its plan says: cluster limits, deadline, governance, a
        host, a connection.

        Requests of one read mostly share a plan and a connection: what the last of them found (the
        cluster and its host set's balancer, the deadline's tick, the host's connection) is kept for the
        rest of the read, so each later one only checks it is the same; one balancer pick serves up to
        the cluster's ``requests_per_pick`` consecutive requests of a plan. Each is sent as
        ``RpcExchange._send_attempt``, ``upstream_ready`` and ``MuxConnection.send`` would send it. Anything
        else (a pool still connecting, a per-try timeout, a one-way call, a retry) takes
        ``_send_attempt``.
        """
        adapter, dec, rt, ctx = self.adapter, self.decoder, self.rt, self.ctx
        Request = adapter.Request
        route_key, names, deadline_ms = adapter.route_key, ctx.rpc_key_names, adapter.deadline_ms
        plans = ctx.rpc_plans[adapter.name]
        paths = ctx.rpc_paths                 # [common, other], meshd_rpc_requests_total{path}
        active, clusters, pname, timers = self.active, rt.clusters.clusters, adapter.name, rt.timers
        epoch = writebatch.epoch              # this read's write batch (data_received opened it)
        gov = rt.governance
        governed = gov is not None and gov.active
        grants: dict = {}                     # plan → the entries of its requests in this read (governed)
        # what the last request of this read found
        last_plan = last_cluster = balancer = last_host = last_conn = last_slot = run_host = None
        last_epoch, last_timeout, run_left = -1, -1.0, 0
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
            common = 0
            keys = [route_key(ev, names) if type(ev) is Request else None for ev in evs]
            if governed:                      # how many requests of this read each key has
                counts: dict = {}
                for key in keys:
                    if key is not None:
                        counts[key] = counts.get(key, 0) + 1
            for ev, key in zip(evs, keys):
                if type(ev) is not Request:
                    if ev is CLOSED:
                        break
                    self._other(ev)
                    continue
                ex = RpcExchange(self, ev, now)
                active.add(ex)
                rt.in_flight += 1
                plan = plans.get(key) if key is not None else None
                try:
                    if plan is not None:
                        common += 1
                    else:
                        paths[1] += 1
                        plan = ex.route()
                        if plan is None:
                            continue                 # answered
                        if key is not None and plan.cacheable and len(plans) < _PLAN_LIMIT:
                            plans[key] = plan
                    ex.plan = plan
                    if plan is last_plan and last_cluster.epoch == last_epoch:
                        cluster = last_cluster
                    else:
                        cluster = clusters.get(plan.name)
                        if cluster is None:
                            what = f"interface {plan.service!r}" if plan.service else "this request"
                            ex.reply(Outcome.NO_ROUTE, f"no route and no cluster for {what}")
                            continue
                        if plan.epoch != cluster.epoch:
                            plan.select(cluster)
                        run_left = 0
                        hs = cluster._sets.get(plan.md_key)   # the plan's host set, built and still current
                        if hs is not None and cluster.clock() < cluster._health_epoch:
                            last_plan, last_cluster, last_epoch, balancer = plan, cluster, cluster.epoch, hs.balancer
                        else:
                            last_plan = balancer = None
                    if cluster.active_requests >= cluster.max_requests:
                        cluster.overflowed("max_requests")
                        ex.reply(Outcome.OVERFLOW, f"cluster {plan.name} max_requests reached")
                        continue
                    ex.cluster = cluster
                    cluster.active_requests += 1
                    oneway = ex.oneway = plan.oneway
                    if not oneway:
                        timeout = plan.timeout
                        ms = deadline_ms(ev)
                        if ms and ms / 1000.0 < timeout:
                            timeout = ms / 1000.0     # the caller's own deadline may shorten, never extend
                        if timeout > 0:
                            if timeout != last_timeout:
                                last_slot, last_timeout = timers.slot_at(now + timeout), timeout
                            ex.slot = last_slot
                            last_slot.add(ex)
                            ex.callback = True
                    if governed:
                        grant = grants.get(plan, _UNTRIED)
                        if grant is _UNTRIED:
                            # the requests of this read with the plan's key enter as one when the engine
                            # can say that is the same (no request of the read can meet max_requests)
                            n = counts.get(key, 0) if plans.get(key) is plan else 0
                            grant = grants[plan] = gov.enter_rpc_batch(plan, n) if n > 1 and \
                                cluster.max_requests - cluster.active_requests >= len(evs) else None
                        if grant:
                            ex.entry = grant.pop()
                        elif not admit(ex, gov):
                            continue
                    if plan is not last_plan:
                        host = None
                    elif run_left:                    # one pick serves a run of the read's requests
                        run_left -= 1                 # (requests_per_pick): they leave in one write
                        host = run_host
                    else:
                        host = run_host = balancer.pick()
                        run_left = balancer.run - 1
                    if host is None or oneway or (plan.policy is not None and plan.policy.per_try_timeout):
                        ex._send_attempt(host)
                        continue
                    if host is not last_host:         # the connection this read already uses to the host
                        pool = host.pools.get(pname)
                        conn = pool._batch_conn if pool is not None and pool._batch_epoch == epoch else None
                        if conn is None or conn.closed or conn.draining or conn.write_paused:
                            ex._send_attempt(host)
                            if ex.upstream is not None:
                                last_host, last_conn = host, ex.upstream
                            continue
                        last_host, last_conn = host, conn
                    conn = last_conn
                    ex.upstream_host = host
                    ex.tried = [host]
                    host.active_requests += 1
                    ex.upstream = conn
                    frame = ev.frame
                    uid = ex.uid = conn.next_id = conn.next_id + 1 if conn.next_id < ID_LIMIT else 1
                    conn.patch(frame, uid)
                    conn.inflight[uid] = ex
                    parts = _pending.get(conn.transport)   # writebatch.write, inline (this read's batch)
                    if parts is None:
                        _pending[conn.transport] = [frame]
                    else:
                        parts.append(frame)
                except Exception:                    # a bug must cost one request, not the connection
                    log.exception("listener %s: internal error handling a %s request", self.ctx.name, adapter.name)
                    ex.reply(Outcome.INTERNAL, "internal error")
            paths[0] += common
            if grants:
                for grant in grants.values():
                    for entry in grant or ():  # only when a request failed on a bug: it counts as failed
                        entry.exit(error=Outcome.INTERNAL)
                grants.clear()
            if evs[-1] is CLOSED:
                return

    def _other(self, ev: Any) -> None:
        """A frame from a caller that is not a request: heartbeats are answered; responses, acks and events
        carry nothing to forward."""
        if type(ev) is self.adapter.Heartbeat and getattr(ev, "twoway", True) and not self.closed:
            self.write(self.adapter.heartbeat_ack(ev))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.open -= 1
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

    def idle_expired(self, now: float) -> bool:
        """The sweep's question: nothing in flight, and nothing from the caller for ``idle_timeout``?"""
        return not self.active and now - self.last_activity > self.ctx.config.idle_timeout

    def _broken(self, exc: CodecError) -> None:
        log.warning("listener %s: malformed %s stream from %s: %s; closing the connection", self.ctx.name,
                    self.adapter.name, self.peer, exc)
        self.close()


class RpcExchange:
    """One RPC request and its response; see the module docstring.

    Made by :meth:`RpcDownstream._events`, which counts it active and forwards it by a plan;
    :meth:`route` routes it first when its key has none. It is its own deadline entry in the timer wheel
    (``callback`` is True while armed, ``slot`` its tick's set).
    """

    __slots__ = ("down", "rt", "adapter", "event", "started", "view", "plan", "cluster", "retry", "tried",
                 "upstream_host", "upstream", "uid", "pool", "callback", "slot", "try_timer", "finished", "status",
                 "flags", "outcome", "retrying", "oneway", "entry")

    def __init__(self, down: RpcDownstream, event: Any, now: float) -> None:
        self.down, self.rt, self.adapter, self.event, self.started = down, down.rt, down.adapter, event, now
        self.view = self.plan = self.cluster = self.retry = self.tried = self.upstream_host = self.upstream = None
        self.pool = self.callback = self.slot = self.try_timer = self.entry = None
        self.uid = 0
        self.finished = self.retrying = self.oneway = False
        self.status = "-"
        self.flags = ""
        self.outcome = Outcome.OK

    # -- routing -------------------------------------------------------------------------------------
    def route(self) -> _Plan | None:
        """Decode the request's routing view and route it: the plan to forward it by, or None when it was
        answered here (undecodable, no route)."""
        try:
            view = self.view = self.adapter.view(self.event)
        except UnsupportedSerialization as exc:
            return self._route_without_body(exc)
        except CodecError as exc:
            self.reply(Outcome.BAD_REQUEST, f"undecodable request: {exc}")
            return None
        ctx = self.down.ctx
        decision = ctx.rpc_decisions.get((view.service, view.method, view.version))
        cacheable = decision is not None
        if decision is None:
            decision, cacheable = self._decide(view, ctx)
            if decision is None:
                return None
        extra: dict[str, str] = {}
        h2m = ctx.config.header_to_metadata
        if h2m:
            for name, md_key in h2m.items():
                value = view.attachment(name)
                if value is not None:
                    extra[md_key] = value
            # Bolt keys hold these header-map entries; a Dubbo key does not hold attachments
            cacheable = cacheable and self.adapter.name == "bolt"
        return _Plan(view.service, view.method, view.version, view.group, extra, self.adapter.oneway(self.event),
                     decision, cacheable)

    def _decide(self, view: RpcView, ctx: ListenerContext) -> tuple[tuple | None, bool]:
        """Route ``view`` → ((route, cluster, metadata, retry policy, timeout), cacheable); the decision is
        remembered when nothing but (service, method, version) decided it."""
        routes = ctx.routes
        route = routes.match_rpc(view) if routes is not None else None
        if route is not None:
            if route.direct is not None:
                self.reply(Outcome.NO_ROUTE, f"route {route.name} has a direct response, which RPC cannot carry")
                return None, False
            name, md = route.pick_cluster(self.rt.rng)
        else:
            name, md = view.service, _NO_SELECTION
        decision = _decision(route, name, md, ctx)
        cacheable = (routes is None or routes.rpc_cacheable) and (route is None or not route.weighted)
        if cacheable and len(ctx.rpc_decisions) < 4096:
            ctx.rpc_decisions[(view.service, view.method, view.version)] = decision
        return decision, cacheable

    def _route_without_body(self, exc: UnsupportedSerialization) -> _Plan | None:
        """A body meshd cannot parse is forwarded untouched when a catch-all route needs no body field."""
        routes = self.down.ctx.routes
        route = routes.match_rpc(_BODYLESS) if routes is not None else None
        if route is None or route.action is None:
            self.reply(Outcome.BAD_REQUEST, f"serialization id {exc.serialization_id} is not supported "
                                            f"and routing needs the service name from the body")
            return None
        name, md = route.pick_cluster(self.rt.rng)
        decision = _decision(route, name, md, self.down.ctx)
        return _Plan("", "", "", "", {}, self.adapter.oneway(self.event), decision, False)

    # -- attempts ------------------------------------------------------------------------------------
    def _enter(self, gov: Any) -> Any:
        return gov.enter_rpc(self) if self.plan.service else None   # a body unread names no resource

    def _blocked(self, gov: Any, error: BlockError) -> None:
        self.reply(Outcome.BLOCKED, f"{error.kind} blocked: {gov.block_message(error)}")

    def routing_view(self) -> RpcView | None:
        """The decoded routing view (made on first use: governance's hotspot rules, logs)."""
        if self.view is None:
            try:
                self.view = self.adapter.view(self.event)
            except CodecError:
                return None
        return self.view

    def _send_attempt(self, host: Any = None) -> None:
        """Send one attempt to ``host``, else to the host the cluster picks (avoiding those tried)."""
        if self.finished:
            return
        cluster = self.cluster
        tried = self.tried
        if host is None:
            plan = self.plan
            policy = plan.policy
            exclude = tried if tried and (policy is None or policy.retry_host_predicate == "previous_hosts") else ()
            host = cluster.pick(plan.md, exclude)
            if host is None:
                cluster.stats["no_healthy"] += 1
                exit_entry(self, Outcome.NO_HEALTHY_UPSTREAM)
                md = ", ".join(f"{k}={v!r}" for k, v in sorted(plan.md.items()))
                return self.reply(Outcome.NO_HEALTHY_UPSTREAM,
                                  f"no healthy provider in cluster {cluster.name}" + (f" for {md}" if md else ""))
        self.upstream_host = host
        if tried is None:
            self.tried = [host]
        else:
            tried.append(host)
        host.active_requests += 1
        policy = self.plan.policy
        if policy is not None and policy.per_try_timeout:
            self.try_timer = self.rt.timers.call_later(policy.per_try_timeout, self._per_try_timeout)
        adapter = self.adapter
        pool = host.pools.get(adapter.name)
        if pool is None:
            gov = self.rt.governance
            pool = host.pools[adapter.name] = MuxPool(host, cluster, adapter, self.rt.stats,
                                                      self.down.ctx.config.max_frame_size,
                                                      gov.sentinel.flush_held if gov is not None else None)
        conn = pool.batch_conn()
        if conn is not None:
            self.upstream_ready(conn)
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
            self._attempt_done(self.adapter.ok_result)
            self._finish()

    def upstream_failed(self, result: Result) -> None:
        self.pool = None
        self._attempt_failed(result)

    def upstream_response(self, conn: MuxConnection, event: Any) -> None:
        if conn is not self.upstream or self.finished:
            return
        self.upstream = None
        adapter = self.adapter
        frame = event.frame
        status = event.status
        ok_status, resp_at, resp_byte, exc_at, exc_marks = adapter.plain_success
        if status == ok_status and frame[resp_at] == resp_byte and \
                not (len(frame) > exc_at and frame[exc_at] in exc_marks):
            # a plain success, known without decoding the result: the answer, then _attempt_done inline
            if self.try_timer is not None:
                self._cancel_try_timer()
            conn.patch(frame, self.event.request_id)
            down = self.down
            if not down.closed:
                parts = _pending.get(down.transport)   # writebatch.write, inline: responses arrive in a batch
                if parts is None:
                    _pending[down.transport] = [frame]
                else:
                    parts.append(frame)
            self.status = status
            entry = self.entry
            if entry is not None:
                self.entry = None
                entry.exit_held()              # recorded with this read's other successes (after_read)
            # ClusterRuntime.attempt_finished for a success, inline: the call costs the benchmark shape 3.5%
            host = self.upstream_host
            self.upstream_host = None
            host.active_requests -= 1
            host.requests += 1
            cluster = self.cluster
            if cluster.outlier is not None:
                cluster.record(host, Outcome.OK, status, False)
            counts = cluster.attempts if len(self.tried) == 1 else cluster.retry_attempts
            counts[_OK] = counts.get(_OK, 0) + 1
            return self._finish()
        result = adapter.result(event)
        if result.outcome is not Outcome.OK and self._retry(result):
            return
        self._cancel_try_timer()
        conn.patch(frame, self.event.request_id)
        self.down.write(frame)
        self.status = result.status
        self.outcome = result.outcome
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
        if retry is None:
            policy = self.plan.policy
            if policy is None:
                return False
            retry = self.retry = RetryState(policy, self.rt.rng, http=False)
        if retry.remaining <= 0:
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
            attempt(self)

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
            exit_entry(self, result.outcome)
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

    def fire(self) -> None:
        """The deadline (from the timer wheel)."""
        self.callback = None
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
        if self.callback is not None:
            self.callback = None
            self.slot.discard(self)
        if self.try_timer is not None:
            self._cancel_try_timer()
        rt = self.rt
        rt.in_flight -= 1
        cluster = self.cluster
        if cluster is not None:
            cluster.active_requests -= 1
            if self.retrying:
                cluster.active_retries -= 1
        if self.entry is not None:
            exit_entry(self, self.outcome)
        duration = rt.loop.time() - self.started
        down = self.down
        plan = self.plan
        if plan is not None:
            rec = plan.rec
            if rec is None:
                if plan.name in rt.clusters.clusters:
                    rec = plan.rec = down.ctx.record(plan.name, self.adapter.name)
                else:                          # a name the caller's bytes made up (the default route is the
                    rec = down.ctx.record("-", self.adapter.name)   # interface): no record, no series of its own
        else:                                  # refused before it was routed
            rec = down.ctx.record("-", self.adapter.name)
        rec.done(self.flags or self.outcome._value_, self.status, duration)
        access_log = rt.access_log
        if access_log.enabled:
            tried = self.tried
            if plan is None:
                what = self.view or _BODYLESS
                request = rpc_request(self.adapter.label, what.service, what.method, what.version)
            else:
                request = plan.log
                if request is None:
                    request = plan.log = rpc_request(self.adapter.label, plan.service, plan.method, plan.version)
            access_log.rpc(self.started, request, self.status, self.flags, len(self.event.frame), duration,
                           tried[-1].address if tried else "", plan.name if plan is not None else "-",
                           len(tried) if tried else 0)
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
        what = self.plan or self.view
        return f"<RpcExchange {self.adapter.name} {what.service if what else '?'}:{what.method if what else '?'}>"


_PLAN_LIMIT = 4096                            # plans per listener and protocol
_OK = Outcome.OK._value_
_UNTRIED: list = []
_pending = writebatch._pending
_NO_SELECTION = Selection()


def _decision(route: Any, name: str, md: dict[str, str], ctx: ListenerContext) -> tuple:
    """(route, cluster name, route metadata, retry policy, timeout): everything a route decides."""
    action = route.action if route is not None else None
    policy = action.retry_policy if action is not None else None
    timeout = action.timeout if action is not None and action.timeout is not None else ctx.config.route_timeout
    return route, name, md, policy, timeout


class AutoDownstream(asyncio.Protocol):
    """Sniffs the first bytes, then becomes the HTTP/1.1, Dubbo or Bolt handler for the connection."""

    identity = ""

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

    def idle_expired(self, now: float) -> bool:
        return now - self.last_activity > self.ctx.config.idle_timeout

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
        handler.identity = self.identity
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
        self.ctx.open -= 1                    # not handed on (the handler it hands on to uncounts itself)
        self.rt.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()


def rpc_protocol_factory(ctx: ListenerContext) -> Callable[[], asyncio.Protocol]:
    if ctx.protocol == "auto":
        return lambda: AutoDownstream(ctx)
    adapter = ADAPTERS[ctx.protocol]
    return lambda: RpcDownstream(ctx, adapter)
