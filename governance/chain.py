"""The slot chain and the entry/exit hot path.

A request enters one or more resources; for each resource the chain runs, in sentinel-golang's order
(``api/slot_chain.go``), and the first block wins:

====== ============================================ ============================================
order  check (rule check slot)                       stat side (on pass / on exit)
====== ============================================ ============================================
1000   system -- inbound entries only                global inbound node
2000   flow                                          standalone windows of flow rules
3000   isolation                                     --
4000   hotspot                                       per-value concurrency up / down
5000   circuit breaker                               breaker windows and state (exit)
====== ============================================ ============================================

The resource node (pass / block / complete / error / RT / concurrency) is written for every entry.

Each resource has a precompiled :class:`ResourcePlan` (its node and the controller tuples of every
kind), so ``entry`` does one dict lookup and runs only the slots that have rules: no regex, no rule
scanning, no per-request allocation beyond the :class:`Entry`. Rule reloads drop the plans; the next
entry of each resource recompiles its plan, while in-flight entries finish on the plan (and thus the
controllers and breakers) they entered with.

``entry_many`` checks several resources (the proxy's ``service`` and ``service:method``) as one chain:
all checks first, in resource order; if any blocks, nothing is recorded as passed, the block is recorded
on the resource that blocked, and half-open probes taken by earlier breakers are rolled back (a probe
blocked by a later slot goes back to Open, as G's exit hook does).

The engine is not thread-safe: drive it from one thread (the proxy's event loop).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from governance.base import BlockError
from governance.circuitbreaker.breaker import CLOSED
from governance.circuitbreaker.slot import check_breakers, rollback
from governance.flow.controller import JavaController
from governance.flow.rule import LIMIT_APP_DEFAULT
from governance.flow.slot import standalone_counters
from governance.hotspot.slot import acquire, check_hotspot, release
from governance.isolation.slot import check_isolation
from governance.stat.node import ResourceNode
from governance.stat.window import COMPLETE, ERROR, MAX_CONCURRENCY, MIN_RT, PASS, RT
from governance.system.slot import check_system


class ResourcePlan:
    """Everything ``entry`` needs for one resource, compiled once per rule generation."""

    __slots__ = ("resource", "node", "flow", "isolation", "hotspot", "breakers", "standalone",
                 "origin_stats", "checked", "solo")

    def __init__(self, resource: str, node: ResourceNode, flow: tuple = (), isolation: tuple = (),
                 hotspot: tuple = (), breakers: tuple = ()) -> None:
        self.resource = resource
        self.node = node
        self.flow = flow
        self.isolation = isolation
        self.hotspot = hotspot
        self.breakers = breakers
        self.standalone = standalone_counters(flow)
        self.origin_stats = any(isinstance(c, JavaController) and c.rule.limit_app != LIMIT_APP_DEFAULT
                                for c in flow)
        self.checked = bool(flow or isolation or hotspot or breakers)
        self.solo = (self,)  # the plans tuple of a single-resource Entry, built once

    def __repr__(self) -> str:
        return (f"ResourcePlan({self.resource!r}, flow={len(self.flow)}, isolation={len(self.isolation)}, "
                f"hotspot={len(self.hotspot)}, breakers={len(self.breakers)})")


def is_error(error: Any) -> bool:
    """``exit(error=...)``: None/False mean success; objects with ``is_error`` (meshd's ``Outcome``) decide
    for themselves; anything else (an exception, True, a message) is an error."""
    if error is None or error is False:
        return False
    return getattr(error, "is_error", True) is not False


class Entry:
    """A passed entry. Call :meth:`exit` exactly once when the request completes (a second call is a
    no-op). ``wait_ms`` is how long the caller must wait before sending (throttling); 0 means now.

    :meth:`Chain.entry_batch` gives its ``n`` requests one shared entry (``n`` times in its list): it takes
    ``n`` exits, each recorded as one request's, and counts as exited after the last of them."""

    __slots__ = ("_engine", "_plans", "_start", "batch", "wait_ms", "_extra", "_left")

    def __init__(self, engine: Chain, plans: tuple, start_ms: int, batch: int, wait_ms: float,
                 extra: tuple | None, left: int = 1) -> None:
        self._engine = engine
        self._plans = plans
        self._start = start_ms
        self.batch = batch
        self.wait_ms = wait_ms
        self._extra = extra  # (held hotspot values, inbound?, origin nodes) when any is in use
        self._left = left    # exits still to come (more than one: a batch's shared entry)

    @property
    def resource(self) -> str:
        return self.resources[0]

    @property
    def resources(self) -> tuple[str, ...]:
        plans = self._plans if self._plans is not None else self._extra
        return tuple(plan.resource for plan in plans)

    @property
    def exited(self) -> bool:
        return self._plans is None

    def exit(self, error: Any = None, rt_ms: float | None = None) -> None:
        """Record completion: RT is the clock time since entry (ms) unless ``rt_ms`` overrides it."""
        plans = self._plans
        if plans is None:  # exited already: a second exit is harmless
            return
        if self._engine._held is not None:
            self._engine.flush_held()  # completions held before this one are recorded first
        if self._left > 1:             # a batch's shared entry: one of its requests completed
            self._left -= 1
        else:
            self._plans = None
        now = self._engine._now_ns() // 1_000_000
        rt = now - self._start if rt_ms is None else int(rt_ms)
        if rt < 0:
            rt = 0
        err = False if error is None else is_error(error)
        batch = self.batch
        for plan in plans:
            # ResourceNode.record_complete, inlined on the hot path
            node = plan.node
            node.concurrency -= 1
            node.complete_total += batch
            array = node.array
            bucket = array.cur if array.cur_start <= now < array.cur_end else array.current(now)
            if bucket is not None:
                bucket[COMPLETE] += batch
                bucket[RT] += rt
                if rt < bucket[MIN_RT]:
                    bucket[MIN_RT] = rt
                if err:
                    bucket[ERROR] += batch
            if err:
                node.error_total += batch
            for breaker in plan.breakers:
                breaker.on_complete(now, rt, err)
        if self._plans is not None:
            return           # a batch's shared entry, exits still to come (it holds no extra state)
        extra = self._extra
        self._extra = plans  # keeps ``resources`` answerable after exit
        if extra is not None:
            held, inbound, origins = extra
            if held:
                release(held)
            if origins:
                for node in origins:
                    node.record_complete(now, batch, rt, err)
            if inbound:
                self._engine._inbound.record_complete(now, batch, rt, err)

    def exit_held(self) -> None:
        """:meth:`exit` for a request that succeeded together with others (one read of responses): see
        :meth:`Chain.exit_held`."""
        plans = self._plans
        if plans is None:
            return
        if self._extra is not None or self.batch != 1:
            self.exit()
            return
        if self._left > 1:                     # a batch's shared entry: one of its requests
            self._left -= 1
        else:
            self._plans = None
            self._extra = plans                # as exit leaves it: ``resources`` stays answerable
        engine = self._engine
        held = engine._held
        if held is not None:
            if held[1] == self._start and held[0] == plans:
                held[3] += 1
                return
            engine.flush_held()
        engine._held = [plans, self._start, engine._now_ns() // 1_000_000, 1]

    def __enter__(self) -> Entry:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.exit(error=exc)
        return False

    def __repr__(self) -> str:
        state = "exited" if self._plans is None else "open"
        return f"Entry({', '.join(self.resources)}, wait_ms={self.wait_ms:g}, {state})"


class Chain:
    """The entry/exit engine; :class:`governance.Sentinel` adds rule loading and metrics on top.

    ``entry`` inlines the trivial loops of the flow, isolation and breaker slots (calling each
    controller directly, and a breaker's full check only when it is not Closed); the semantics live in
    the slot modules, which it falls back to for everything else.
    """

    _now_ns: Any
    _held: list | None = None      # successes waiting to be recorded together: [plans, start, now, count]
    _plans: dict[str, ResourcePlan]
    _inbound: ResourceNode
    _system: Any
    system_metrics: Any
    origin_limit: int

    def entry(self, resource: str, origin: str = "", args: Sequence[Any] = (),
              attachments: Mapping[Any, Any] | None = None, batch: int = 1, inbound: bool = False) -> Entry:
        """Enter ``resource`` or raise :class:`BlockError`; see :class:`Entry` for the result.

        ``origin``: the caller's application (Java ``limitApp`` rules select by it). ``args``: the call's
        arguments (hotspot ``paramIndex``). ``attachments``: request metadata such as headers or Dubbo
        attachments (hotspot ``paramKey``). ``batch``: tokens this request takes (default 1).
        ``inbound``: traffic entering the application; only inbound entries are subject to system rules
        and counted on the ``__total_inbound_traffic__`` node.
        """
        if self._held is not None:
            self.flush_held()
        plan = self._plans.get(resource) or self._compile(resource)
        now_ns = self._now_ns()
        now = now_ns // 1_000_000
        wait = 0
        held = None
        if plan.checked or inbound:
            try:
                if inbound and self._system.rules:
                    check_system(self._system, self._inbound, self.system_metrics, resource, now, batch)
                for ctrl in plan.flow:
                    result = ctrl.check(now, now_ns + wait, batch, origin)
                    if result:
                        if result < 0:
                            raise BlockError("flow", resource, ctrl.rule, ctrl.block_msg, ctrl.snapshot)
                        wait += result
                for ctrl in plan.isolation:
                    if plan.node.concurrency + batch > ctrl.threshold:
                        check_isolation(plan.isolation, resource, plan.node.concurrency, batch)
                if plan.hotspot:
                    extra, held = check_hotspot(plan.hotspot, resource, args, attachments, batch, now)
                    wait += extra
                for breaker in plan.breakers:
                    if breaker.state is not CLOSED:
                        check_breakers(plan.breakers, resource, now)
                        break
            except BlockError as err:
                self._record_block(plan, err, now, batch, inbound, origin)
                raise
        # ResourceNode.record_pass, inlined on the hot path
        node = plan.node
        concurrency = node.concurrency + 1
        node.concurrency = concurrency
        node.pass_total += batch
        array = node.array
        bucket = array.cur if array.cur_start <= now < array.cur_end else array.current(now)
        if bucket is not None:
            bucket[PASS] += batch
            if concurrency > bucket[MAX_CONCURRENCY]:
                bucket[MAX_CONCURRENCY] = concurrency
        if plan.standalone:
            for counter in plan.standalone:
                counter.add_pass(now, batch)
        if wait:
            node.wait_total += batch
        if held or inbound or (plan.origin_stats and origin):
            return self._admit_extra(plan.solo, now, batch, wait, held, inbound, origin)
        return Entry(self, plan.solo, now, batch, wait / 1_000_000 if wait else 0.0, None)

    def entry_many(self, resources: Sequence[str], origin: str = "", args: Sequence[Any] = (),
                   attachments: Mapping[Any, Any] | None = None, batch: int = 1, inbound: bool = False) -> Entry:
        """Enter several resources as one request (e.g. ``service`` and ``service:method``).

        All resources are checked in order before anything is recorded; the first block wins, is
        recorded on the resource that blocked, and rolls back the half-open probes of earlier resources.
        System rules and the inbound node see the request once.
        """
        if self._held is not None:
            self.flush_held()
        plans = tuple([self._plans.get(r) or self._compile(r) for r in resources])
        if not plans:
            raise ValueError("entry_many needs at least one resource")
        now_ns = self._now_ns()
        now = now_ns // 1_000_000
        wait = 0
        held: list | None = None
        probes: list = []
        plan = plans[0]
        try:
            if inbound and self._system.rules:
                check_system(self._system, self._inbound, self.system_metrics, plan.resource, now, batch)
            for plan in plans:
                if not plan.checked:
                    continue
                for ctrl in plan.flow:
                    result = ctrl.check(now, now_ns + wait, batch, origin)
                    if result:
                        if result < 0:
                            raise BlockError("flow", plan.resource, ctrl.rule, ctrl.block_msg, ctrl.snapshot)
                        wait += result
                for ctrl in plan.isolation:
                    if plan.node.concurrency + batch > ctrl.threshold:
                        check_isolation(plan.isolation, plan.resource, plan.node.concurrency, batch)
                if plan.hotspot:
                    extra, more = check_hotspot(plan.hotspot, plan.resource, args, attachments, batch, now)
                    wait += extra
                    if more:
                        held = more if held is None else held + more
                for breaker in plan.breakers:
                    if breaker.state is not CLOSED:
                        taken = check_breakers(plan.breakers, plan.resource, now)
                        if taken:
                            probes.extend(taken)
                        break
        except BlockError as err:
            rollback(probes)
            self._record_block(plan, err, now, batch, inbound, origin)
            raise
        for plan in plans:
            plan.node.record_pass(now, batch)
            if plan.standalone:
                for counter in plan.standalone:
                    counter.add_pass(now, batch)
            if wait:
                plan.node.wait_total += batch
        if held or inbound or origin:
            return self._admit_extra(plans, now, batch, wait, held, inbound, origin)
        return Entry(self, plans, now, batch, wait / 1_000_000 if wait else 0.0, None)

    def entry_batch(self, resources: Sequence[str], n: int) -> list[Entry] | None:
        """Enter ``n`` requests that arrived together (one read) into the same resources, with no caller
        origin, as ``n`` sequential :meth:`entry_many` calls at this instant would: ``n`` entries, each
        exited on its own (the list holds one shared entry ``n`` times: see :class:`Entry`). Only where the
        answer is plainly the same: every flow check is a pure count
        (``batchable``: current + n within the threshold), isolation leaves room for ``n``, every breaker is
        closed, no hotspot or system rule applies. Anything else (one of them would block, wait or probe)
        returns None with nothing recorded, and the caller enters the requests one by one. Each entry must
        be exited (its request answered) like any other.
        """
        if self._system.rules:
            return None
        if self._held is not None:
            self.flush_held()
        plans = tuple([self._plans.get(r) or self._compile(r) for r in resources])
        now_ns = self._now_ns()
        now = now_ns // 1_000_000
        for plan in plans:
            if not plan.checked:
                continue
            if plan.hotspot:
                return None
            for ctrl in plan.flow:
                if not ctrl.batchable or ctrl.check(now, now_ns, n, "") != 0:
                    return None
            for ctrl in plan.isolation:
                if plan.node.concurrency + n > ctrl.threshold:
                    return None
            for breaker in plan.breakers:
                if breaker.state is not CLOSED:
                    return None
        for plan in plans:
            plan.node.record_pass(now, n, n)
            for counter in plan.standalone:
                counter.add_pass(now, n)
        return [Entry(self, plans, now, 1, 0.0, None, n)] * n

    def exit_held(self, entry: Entry) -> None:
        """Exit ``entry`` as a success, held with the successes right before it that entered the same
        resources at the same millisecond: they are recorded together, as that many exits at this instant
        would record them (``CircuitBreaker.on_successes``), when another entry or exit comes or at
        :meth:`flush_held`, which the caller calls when the batch of completions (a read) ends. An entry
        with origin, hotspot or inbound state, or a batch of more than one, exits at once."""
        entry.exit_held()

    def flush_held(self) -> None:
        """Record the held successes (see :meth:`exit_held`)."""
        held, self._held = self._held, None
        if held is None:
            return
        plans, start, now, k = held
        rt = now - start if now > start else 0
        for plan in plans:
            node = plan.node
            node.concurrency -= k
            node.complete_total += k
            array = node.array
            bucket = array.cur if array.cur_start <= now < array.cur_end else array.current(now)
            if bucket is not None:
                bucket[COMPLETE] += k
                bucket[RT] += rt * k
                if rt < bucket[MIN_RT]:
                    bucket[MIN_RT] = rt
            for breaker in plan.breakers:
                breaker.on_successes(now, rt, k)

    def _admit_extra(self, plans: tuple, now: int, batch: int, wait: int, held: list | None, inbound: bool,
                     origin: str) -> Entry:
        """The rarer stat side: hotspot concurrency, caller-origin nodes, the inbound node."""
        origins = None
        if origin:
            for plan in plans:
                if plan.origin_stats:
                    origin_node = plan.node.origin_node(origin, True, self.origin_limit)
                    if origin_node is not None:
                        origin_node.record_pass(now, batch)
                        origins = [origin_node] if origins is None else origins + [origin_node]
        if held:
            held = acquire(held)
        if inbound:
            self._inbound.record_pass(now, batch)
        extra = (held, inbound, origins) if (held or inbound or origins) else None
        return Entry(self, plans, now, batch, wait / 1_000_000 if wait else 0.0, extra)

    def _record_block(self, plan: ResourcePlan, err: BlockError, now: int, batch: int, inbound: bool,
                      origin: str) -> None:
        block_type = err.block_type
        plan.node.record_block(now, batch, block_type)
        if plan.origin_stats and origin:
            origin_node = plan.node.origin_node(origin, True, self.origin_limit)
            if origin_node is not None:
                origin_node.record_block(now, batch, block_type)
        if inbound:
            self._inbound.record_block(now, batch, block_type)

    def _compile(self, resource: str) -> ResourcePlan:
        raise NotImplementedError
