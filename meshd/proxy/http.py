"""The HTTP/1.1 forwarding path: a downstream ``asyncio.Protocol`` and one exchange per request.

:class:`HttpDownstream` parses requests with httptools and answers them strictly in order (pipelined
requests queue behind the active one, with reading paused). Each request is an :class:`HttpExchange`
that routes, picks a host, borrows a keep-alive connection from the host's pool, streams the body up
and the response down (never buffering a body whole), and retries failed attempts per the route's
retry policy while the request body is still replayable.

Flow control both ways: a downstream that reads slowly pauses the upstream socket, an upstream that
accepts slowly pauses the downstream socket. Deadlines live on the runtime's timer wheel.

Hot-path shape: a head that arrived whole at the start of one read, carries no header meshd must take
out (hop-by-hop, ``Expect``, deadlines) and whose route edits at most by appending, is forwarded as the
bytes received, both ways; anything else is rebuilt line by line from the parsed headers. ``on_header``
only keeps the header and notes the few names meshd acts on. Route answers are kept per raw
(Host, target) when no route reads headers. Writes go through :mod:`meshd.writebatch`: in a running
meshd they wait for the end of the loop iteration, so a response head and its body are one write.

Local answers (Envoy's response flags): 404 NR no route, 503 UH no healthy endpoint, 503 UO overflow,
502 UF connect failure, 502 UR reset, 504 UT timeout.

Limits on what a client sends (docs/configuration.md, "Limits"), each answered with ``connection: close`` and
a body naming the limit, then the connection closed: 400 for an HTTP/1.1 request without ``Host`` or any
request with two (RFC 9112 §3.2), 431 over ``max_request_headers_size`` or ``max_request_headers_count``, 414
over ``max_request_line_size``, 408 when a head takes longer than ``request_headers_timeout`` from its first
byte. They cost the common request next to nothing: the target's length is checked where the header block's
size is; the count is ``len(raw)``, which the raw head needs anyway; a missing Host is a key the route cache
never holds, so it is found on the cache-miss path; the head timer is armed only when a read ends inside a head.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import httptools

from configkit import format_duration
from governance import BlockError
from meshd import writebatch
from meshd.codec import http1
from meshd.codec.outcome import Outcome, Result, http_outcome
from meshd.proxy.context import ListenerContext, admit, attempt, exit_entry
from meshd.proxy.retry import IDEMPOTENT_METHODS, RetryState
from meshd.upstream.http import HttpPool, UpstreamHttpConnection

log = logging.getLogger("meshd.http")

REPLAY_LIMIT = 1 << 20          # request bodies up to 1 MiB are kept for retries (Envoy's buffer limit)
PENDING_LIMIT = 1 << 18         # bytes buffered before an upstream is attached, then reading pauses

_LOCAL = {
    Outcome.NO_ROUTE: 404, Outcome.NO_HEALTHY_UPSTREAM: 503, Outcome.OVERFLOW: 503, Outcome.CONNECT_FAILURE: 502,
    Outcome.RESET: 502, Outcome.TIMEOUT: 504, Outcome.BAD_REQUEST: 400, Outcome.INTERNAL: 500,
    Outcome.BLOCKED: 429,
}
_DROP = http1.REQUEST_DROP | http1.DEADLINE_HEADERS
_SPECIAL = _DROP | {b"host"}          # the request headers on_header acts on
_NO_DEADLINES: dict[bytes, float | None] = {}


class _Headers:
    """Request headers as a lazily built ``{lower-case str: str}`` mapping (only header matchers need it)."""

    __slots__ = ("raw", "_d")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        self._d: dict[str, str] | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        if self._d is None:
            self._d = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in self.raw}
        return self._d.get(name, default)


class _Refusal(Exception):
    """Raised in a parser callback: the request breaks a limit; answer ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


#: a request line's bytes around its target, at most: a method (llhttp's longest, UNSUBSCRIBE, has 11 letters;
#: room for more), two spaces and "HTTP/1.1"
_LINE_AROUND = 32 + 10


class HttpDownstream(asyncio.Protocol):
    identity = ""                             # the verified TLS peer's SPIFFE id or name (caller origin)
    """One client connection."""

    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.rt = ctx.runtime
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.active: HttpExchange | None = None
        self.parsing: HttpExchange | None = None
        self.queue: deque[HttpExchange] = deque()
        config = ctx.config
        self.max_header_bytes = config.max_request_headers_size
        self.max_headers = config.max_request_headers_count
        # on_url's one check: a target this long may break max_request_line_size or max_request_headers_size
        self.max_target = min(config.max_request_line_size - _LINE_AROUND, self.max_header_bytes)
        self.head_raw: list | None = None     # the head the request_headers_timeout is armed for (its raw)
        self.closed = False
        self.last_activity = 0.0
        self._paused: set[str] = set()
        self.in_message = False               # from a message's target to its end
        self.head_src: bytes | None = None    # the read a message began in: its head, when whole
        self.records = ctx.records.setdefault("http", {})  # cluster → stats record (ListenerContext.record)
        self._reset_head()

    def _reset_head(self) -> None:
        self.url = b""
        self.raw: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.host: bytes | None = None        # None: no Host header
        self.special = False                  # a header the forwarded head must not carry as received
        self.chunked = False
        self.expect = False
        self.conn_tokens = b""
        self.deadlines = _NO_DEADLINES

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.last_activity = self.rt.loop.time()
        self.rt.connections.add(self)
        self.rt.stats.downstream_connection(self.ctx.name, 1)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.rt.loop.time()
        # a message that begins in this read with none in progress begins at its start
        self.head_src = None if self.in_message else data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._protocol_error(501, "meshd: protocol upgrade is not supported\n")
        except httptools.HttpParserCallbackError as exc:
            refusal = exc.__context__
            if isinstance(refusal, _Refusal):
                self._protocol_error(refusal.status, refusal.message)
            else:
                log.exception("listener %s: internal error handling a request", self.ctx.name)
                self._protocol_error(500, "meshd: internal error\n")
        except httptools.HttpParserError as exc:
            self._protocol_error(400, f"meshd: malformed request: {exc}\n")
        else:
            # the read ended inside a head: one that began in it, or a target whose head is not complete
            if self.head_src is not None or self.in_message and self.parsing is None:
                self._head_pending()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ctx.open -= 1
        self.rt.connections.discard(self)
        self.rt.stats.downstream_connection(self.ctx.name, -1)
        exchanges = ([self.active] if self.active else []) + list(self.queue)
        if self.parsing is not None and self.parsing not in exchanges:
            exchanges.append(self.parsing)
        self.active = None
        self.queue.clear()
        for ex in exchanges:
            ex.downstream_closed()

    def pause_writing(self) -> None:
        if self.active is not None:
            self.active.downstream_write_paused(True)

    def resume_writing(self) -> None:
        if self.active is not None:
            self.active.downstream_write_paused(False)

    # -- httptools callbacks -------------------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        if self.in_message:
            self.url += url                   # the rest of a target split across reads
        else:
            self.in_message = True            # the first callback of a message (on_message_begin's job)
            self.url = url
        self.header_bytes += len(url)
        if self.header_bytes > self.max_target:
            self._long_target()

    def _long_target(self) -> None:
        """A target near a limit (on_url's check is a bound): refuse it if its line or head is over one."""
        config = self.ctx.config
        line = len(self.parser.get_method()) + len(self.url) + 10   # METHOD SP target SP HTTP/1.1
        if line > config.max_request_line_size:
            raise _Refusal(414, f"meshd: request line exceeds max_request_line_size {config.max_request_line_size}\n")
        if self.header_bytes > self.max_header_bytes:
            raise _Refusal(431, f"meshd: request headers exceed max_request_headers_size {self.max_header_bytes}\n")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.max_header_bytes:
            raise _Refusal(431, f"meshd: request headers exceed max_request_headers_size {self.max_header_bytes}\n")
        self.raw.append((name, value))
        low = name.lower()
        if low in _SPECIAL:
            if low == b"host":
                if self.host is not None:
                    raise _Refusal(400, "meshd: more than one Host header (RFC 9112 section 3.2)\n")
                self.host = value
                return
            self.special = True
            if low == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()
            elif low == b"expect":
                self.expect = value.lower() == b"100-continue"
            elif low == b"connection":
                self.conn_tokens += b"," + value.lower()
            elif low in http1.DEADLINE_HEADERS:
                if self.deadlines is _NO_DEADLINES:
                    self.deadlines = {}
                self.deadlines[low] = _ms(value)

    def on_headers_complete(self) -> None:
        p = self.parser
        method = p.get_method()
        headers = len(self.raw)
        if headers > self.max_headers:
            raise _Refusal(431, f"meshd: request headers exceed max_request_headers_count {self.max_headers}\n")
        ex = HttpExchange(self, method, p.get_http_version(), p.should_keep_alive())
        src = self.head_src
        if src is not None:
            self.head_src = None              # a second message of the read does not start it
            if not self.special and ex.version == "1.1":
                # the request line is "METHOD SP target SP HTTP/1.1"
                ex.head = http1.whole_head(src, headers, method, len(method) + len(self.url) + 10)
        self._reset_head()
        self.parsing = ex
        if self.active is None:
            self.active = ex
            ex.start()
        else:
            self.queue.append(ex)
            self.pause_reading("pipeline")

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.request_body(body)

    def on_message_complete(self) -> None:
        self.in_message = False
        ex, self.parsing = self.parsing, None
        if ex is not None:
            ex.request_complete()

    # -- used by exchanges ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not self.closed:
            writebatch.write(self.transport, data)

    def pause_reading(self, reason: str) -> None:
        if not self._paused and not self.closed:
            self.transport.pause_reading()  # type: ignore[union-attr]
        self._paused.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason in self._paused:
            self._paused.discard(reason)
            if not self._paused and not self.closed:
                self.transport.resume_reading()  # type: ignore[union-attr]

    def exchange_done(self, ex: "HttpExchange", close: bool) -> None:
        if self.active is not ex:
            return
        self.active = None
        self.last_activity = self.rt.loop.time()
        if close or self.closed:
            self.close()
            return
        if self.queue:
            self.active = self.queue.popleft()
            if not self.queue:
                self.resume_reading("pipeline")
            self.active.start()
        elif self.rt.draining:
            self.close()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            # a request still to be parsed from the read under way (pipelined behind the one that closed)
            # is refused at its head by the count check, never started
            self.max_headers = -1
            writebatch.close(self.transport)

    @property
    def idle(self) -> bool:
        return self.active is None and self.parsing is None

    def _protocol_error(self, status: int, message: str) -> None:
        """The request stream is unusable: answer once if nothing is being answered, then close."""
        if self.active is None or not self.active.response_started:
            self.write(http1.local_reply(status, message.encode(), close=True))
        self.close()

    # -- idleness and slow clients (the runtime's sweep, the timer wheel) ----------------------------
    def idle_expired(self, now: float) -> bool:
        """The sweep's question: has this connection waited on its client longer than ``idle_timeout``?
        Between requests, or in a request body the client stopped sending (reading not paused by meshd)."""
        if now - self.last_activity <= self.ctx.config.idle_timeout:
            return False
        if self.active is None:
            return self.parsing is None       # between requests (a head under way has its own timer too)
        return self.parsing is not None and not self._paused

    def _head_pending(self) -> None:
        """A read ended inside a request head: the head has ``request_headers_timeout`` from its first byte
        (this read, unless a timer was armed for the same head by an earlier one)."""
        raw = self.raw                        # the head's own list: a completed head replaces it
        timeout = self.ctx.config.request_headers_timeout
        if self.head_raw is raw or timeout <= 0 or self.closed:
            return
        self.head_raw = raw
        self.rt.timers.call_later(timeout, lambda: self._head_timeout(raw))

    def _head_timeout(self, raw: list) -> None:
        if self.closed or raw is not self.raw:
            return                            # closed, or the head completed in time
        timeout = self.ctx.config.request_headers_timeout
        if self.active is not None or self._paused:
            # behind a request still being answered (meshd may not even be reading): wait for another period
            self.rt.timers.call_later(timeout, lambda: self._head_timeout(raw))
            return
        self._protocol_error(408, "meshd: request headers not complete within request_headers_timeout "
                                  f"{format_duration(timeout)}\n")


class HttpExchange:
    """One request/response exchange; see the module docstring."""

    # Defaults for what most requests never change; a request writes only the fields it uses.
    pending: list[bytes] | None = None
    pending_size = 0
    replay: list[bytes] | None = None
    replay_size = 0
    request_done = False
    route: Any = None
    cluster: Any = None
    cluster_name = "-"
    metadata: dict[str, str] | None = None
    retry: RetryState | None = None
    entry: Any = None                     # the attempt's governance entry (meshd.proxy.context.admit)
    upstream_host: Any = None
    upstream: UpstreamHttpConnection | None = None
    pool: HttpPool | None = None
    response_started = False
    response_done = False
    local = False
    status = 0
    flags = ""
    detail = ""
    bytes_in = 0
    bytes_out = 0
    chunked = False                       # what the request's hop-by-hop headers said (see HttpDownstream)
    expect_continue = False
    conn_tokens = b""
    deadlines = _NO_DEADLINES
    chunked_out = False
    slot: set | None = None               # the route deadline: this exchange is its own timer-wheel entry
    callback: Any = None
    try_timer: Any = None
    head: bytes | None = None             # the request head as received, when it may be forwarded so
    close_delimited = False
    finished = False
    retrying = False

    def __init__(self, down: HttpDownstream, method: bytes, version: str, keep_alive: bool) -> None:
        self.down = down
        rt = self.rt = down.rt
        self.method = method
        self.url = down.url
        self.version = version
        self.keep_alive = keep_alive
        self.close_after = not keep_alive
        self.host = down.host
        self.raw = down.raw
        if down.special:
            self.chunked = down.chunked
            self.expect_continue = down.expect
            self.conn_tokens = down.conn_tokens
            self.deadlines = down.deadlines
        self.tried: list = []
        self.started = down.last_activity     # the time of the read that brought the request
        rt.in_flight += 1

    # -- request side --------------------------------------------------------------------------------
    def start(self) -> None:
        down, rt = self.down, self.rt
        if self.expect_continue and not self.request_done:
            down.write(http1.CONTINUE_100)     # answered here, like Envoy; the upstream never sees Expect
        routes = down.ctx.routes
        if routes is None:
            route = None
        elif routes.needs_headers:
            route = None if self.host is None else \
                routes.match_http(self.host.decode("latin-1"), self.url.decode("latin-1"), _Headers(self.raw))
        else:
            route = routes.match_http_raw(self.host, self.url)   # None without Host: never a cached key
        if route is None:
            if self.host is None:
                route = self._hostless(routes)
                if self.local:
                    return
            if route is None:
                target = (self.host + self.url).decode("latin-1")
                return self.reply_local(Result(Outcome.NO_ROUTE, detail=f"no route for {target}"))
        self.route = route
        if route.direct is not None:
            self.status = route.direct.status
            return self._send_local(route.direct.status, route.direct.body.encode())
        if route.weighted:
            name, self.metadata = route.pick_cluster(rt.rng)
        else:
            name, self.metadata = route.action.cluster or "", route.selection
        h2m = down.ctx.config.header_to_metadata
        if h2m:
            self.metadata = _request_metadata(self.raw, h2m, self.metadata)
        self.cluster_name = name
        cluster = rt.clusters.clusters.get(name)
        if cluster is None:
            return self.reply_local(Result(Outcome.NO_HEALTHY_UPSTREAM, detail=f"unknown cluster {name!r}"))
        if cluster.active_requests >= cluster.max_requests:
            cluster.stats["overflow"] += 1
            rt.stats.overflow.labels(cluster.name, "max_requests").inc()
            return self.reply_local(Result(Outcome.OVERFLOW, detail="cluster max_requests reached"))
        self.cluster = cluster
        cluster.active_requests += 1
        policy = route.action.retry_policy
        if policy is not None:
            # the retry state itself is made at the first failure; until then only the body is kept
            if policy.num_retries > 0 and (policy.retry_non_idempotent or self.method in IDEMPOTENT_METHODS):
                self.replay = []
        if self.request_done:
            self._arm_route_timer()
        gov = rt.governance                   # context.attempt, inline
        if gov is None or not gov.active or admit(self, gov):
            self._send_attempt()

    def _hostless(self, routes: Any) -> Any:
        """A request without Host (RFC 9112 §3.2): HTTP/1.1 is answered 400 and the connection closed;
        HTTP/1.0 is routed by an empty Host. The route, or None."""
        if self.version != "1.0":
            self.close_after = True
            self.reply_local(Result(Outcome.BAD_REQUEST, detail=f"HTTP/{self.version} request without a Host header "
                                                                 "(RFC 9112 section 3.2)"))
            self.down.close()                 # no need to read the rest of its body
            return None
        self.host = b""
        if routes is None:
            return None
        if routes.needs_headers:
            return routes.match_http("", self.url.decode("latin-1"), _Headers(self.raw))
        return routes.match_http_raw(b"", self.url)

    def request_body(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.local or self.response_done:
            return                            # answered already: the rest of the body is read and dropped
        replay = self.replay
        if replay is not None:
            self.replay_size += len(data)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None            # too large to keep: no retry once any of it was sent
            else:
                replay.append(data)
        framed = http1.chunk(data) if self.chunked else data
        if self.upstream is not None:
            self.upstream.write(framed)
        else:
            if self.pending is None:
                self.pending = []
            self.pending.append(framed)
            self.pending_size += len(framed)
            if self.pending_size > PENDING_LIMIT:
                self.down.pause_reading("buffer")

    def request_complete(self) -> None:
        self.request_done = True
        if self.local or self.response_done:
            return self._maybe_finish()
        if self.chunked:
            if self.upstream is not None:
                self.upstream.write(http1.LAST_CHUNK)
            else:
                if self.pending is None:
                    self.pending = []
                self.pending.append(http1.LAST_CHUNK)
        if self.cluster is not None:
            self._arm_route_timer()

    # -- attempts ------------------------------------------------------------------------------------
    def _enter(self, gov: Any) -> Any:
        return gov.enter_http(self)

    def _blocked(self, gov: Any, error: BlockError) -> None:
        self.flags = "RL"
        self.detail = gov.block_message(error)
        status = 503 if error.kind == "circuit_breaking" else gov.config.block_status
        self._send_local(status, gov.config.block_body.encode())

    def _send_attempt(self) -> None:
        if self.finished:
            return
        cluster = self.cluster
        policy = self.route.action.retry_policy
        exclude = self.tried if policy is None or policy.retry_host_predicate == "previous_hosts" else ()
        host = cluster.pick(self.metadata, exclude)
        if host is None:
            cluster.stats["no_healthy"] += 1
            exit_entry(self, Outcome.NO_HEALTHY_UPSTREAM)
            return self.reply_local(Result(Outcome.NO_HEALTHY_UPSTREAM,
                                           detail=f"no healthy endpoint in cluster {cluster.name}"))
        self.upstream_host = host
        self.tried.append(host)
        host.active_requests += 1
        per_try = policy.per_try_timeout if policy is not None else None
        if self.deadlines:
            asked = self.deadlines.get(http1.PER_TRY_TIMEOUT_HEADER)
            if asked is not None and (not per_try or asked < per_try):
                per_try = asked
        if per_try:
            self.try_timer = self.rt.timers.call_later(per_try, self._per_try_timeout)
        pool = host.pools.get("http")
        if pool is None:
            pool = host.pools["http"] = HttpPool(host, cluster, self.rt.stats)
        self.pool = pool
        pool.acquire(self)

    def upstream_ready(self, conn: UpstreamHttpConnection) -> None:
        if self.finished or self.pool is None:
            conn.pool.release(conn, True)     # we stopped waiting meanwhile
            return
        self.upstream = conn
        conn.exchange = self
        conn.requests += 1
        conn.head_request = self.method == b"HEAD"
        head = self.head
        edit = self.route.raw_request_edit
        if head is None or edit is None:
            head = self._request_head()
        elif edit:
            head = head[:-2] + edit + b"\r\n"       # the route's added lines, before the empty line
        if self.pending:
            head = head + b"".join(self.pending)
            self.pending = None
            self.pending_size = 0
            self.down.resume_reading("buffer")
        conn.write(head)

    def upstream_failed(self, result: Result) -> None:
        self.pool = None
        self._attempt_failed(result)

    def _request_head(self) -> bytes:
        """The request head rebuilt from the parsed headers, with the route's edits."""
        route = self.route
        action = route.action
        ops = route.request_ops
        url = self.url
        lines = [b"%b: %b\r\n" % kv for kv in self.raw if kv[0].lower() not in _DROP]
        if action.prefix_rewrite is not None and route.config.match.prefix is not None:
            url = action.prefix_rewrite.encode() + url[len(route.config.match.prefix.encode()):]
        if ops.remove or self.conn_tokens or action.host_rewrite:
            drop = set(ops.remove) | {t.strip() for t in self.conn_tokens.split(b",") if t.strip()}
            if action.host_rewrite:
                drop.add(b"host")
            lines = [line for line in lines if line.split(b":", 1)[0].lower() not in drop]
        if ops.add:
            replace = {name for name, _, append in ops.add if not append}
            if replace:
                lines = [line for line in lines if line.split(b":", 1)[0].lower() not in replace]
            lines = lines + [b"%b: %b\r\n" % (name, value) for name, value, _ in ops.add]
        extra = b""
        if action.host_rewrite:
            extra += b"host: %b\r\n" % action.host_rewrite.encode()
        if self.chunked:
            extra += b"transfer-encoding: chunked\r\n"
        return b"%b %b HTTP/1.1\r\n%b%b\r\n" % (self.method, url, b"".join(lines), extra)

    # -- response side -------------------------------------------------------------------------------
    def response_head(self, conn: UpstreamHttpConnection, status: int, head: bytes | None,
                      raw: list[tuple[bytes, bytes]], length: bool, chunked: bool) -> None:
        """The upstream's response head: ``head`` as received when it may be forwarded so, else None."""
        if conn is not self.upstream:
            return
        if self.replay is not None and (status >= 500 or status in (409, 429)
                                        or self.route.action.retry_policy.status_codes):
            result = Result(http_outcome(status), status)
            retry = self._retry_state()
            if retry.remaining > 0 and retry.retriable(result):
                if self.cluster.retry_allowed():
                    conn.exchange = None
                    conn.pool.release(conn, False)   # abandon this response: the connection cannot be reused
                    self.upstream = None
                    return self._attempt_failed(result)
                self.cluster.stats["retry_overflow"] += 1
                self.cluster.overflowed("retries")
        if self.try_timer is not None:
            self.try_timer.cancel()
            self.try_timer = None
        self.response_started = True
        self.status = status
        no_body = status in http1.NO_BODY_STATUS or self.method == b"HEAD"
        if head is not None and (length or no_body) and not self.close_after and self.version == "1.1" \
                and not self.rt.draining:
            edit = self.route.raw_response_edit
            if edit is not None:
                if edit:
                    head = head[:-2] + edit + b"\r\n"
                self.bytes_out += len(head)
                self.down.write(head)
                return
        lines = [b"%b: %b\r\n" % kv for kv in raw if kv[0].lower() not in http1.HOP_BY_HOP]
        ops = self.route.response_ops
        if not ops.empty:
            lines = _apply_ops(lines, ops)
        tail = b""
        if not no_body and not length:
            if self.version != "1.0":
                self.close_delimited = not chunked
                self.chunked_out = True
                tail = b"transfer-encoding: chunked\r\n"
            else:
                self.close_delimited = True
                self.close_after = True
        if self.rt.draining:
            self.close_after = True
        if self.close_after:
            tail += b"connection: close\r\n"
        elif self.version == "1.0":
            tail += b"connection: keep-alive\r\n"
        head = b"%b%b%b\r\n" % (http1.status_line(status), b"".join(lines), tail)
        self.bytes_out += len(head)
        self.down.write(head)

    def response_body(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.down.write(http1.chunk(data) if self.chunked_out else data)

    def response_complete(self, conn: UpstreamHttpConnection, keep_alive: bool) -> None:
        if conn is not self.upstream:
            return
        if self.chunked_out:
            self.down.write(http1.LAST_CHUNK)
        self.response_done = True
        self.upstream = None
        conn.pool.release(conn, keep_alive and self.request_done)
        self._attempt_done(http_outcome(self.status), self.status)
        if not self.request_done:
            self.close_after = True           # early response: the rest of the body is not worth reading
            self.request_done = True
        self._finish()

    def upstream_reset(self, conn: UpstreamHttpConnection, reason: str) -> None:
        if conn is not self.upstream:
            return
        self.upstream = None
        if self.response_started:
            if self.close_delimited:
                if self.chunked_out:
                    self.down.write(http1.LAST_CHUNK)
                self.response_done = True
                self._attempt_done(http_outcome(self.status), self.status)
                return self._maybe_finish()
            self.flags = "UR"
            self._attempt_done(Outcome.RESET)
            self.close_after = True
            self.down.close()                 # the client sees a truncated response, as it must
            return self._finish()
        self._attempt_failed(Result(Outcome.RESET, detail=reason))

    # -- failures, retries, timeouts ---------------------------------------------------------------
    def _retry_state(self) -> RetryState | None:
        """The request's retry state, made on first use; None when this request may not be retried."""
        if self.retry is None and self.replay is not None:
            self.retry = RetryState(self.route.action.retry_policy, self.rt.rng, http=True)
        return self.retry

    def _retry_possible(self) -> bool:
        retry = self._retry_state()
        return (retry is not None and retry.remaining > 0 and self.replay is not None
                and self.cluster.retry_allowed())

    def _attempt_failed(self, result: Result) -> None:
        if self.try_timer is not None:
            self.try_timer.cancel()
            self.try_timer = None
        self._attempt_done(result.outcome, result.status)
        if self.finished or self.local:
            return
        if self._retry_possible():
            delay = self.retry.next_delay(result)
            if delay is not None:
                if not self.retrying:           # a request in retry holds one slot until it finishes
                    self.retrying = True
                    self.cluster.active_retries += 1
                self.cluster.stats["retries"] += 1
                self.rt.loop.call_later(delay, self._retry_now)
                return
        elif self.retry is not None and self.retry.remaining > 0 and self.retry.retriable(result):
            self.cluster.stats["retry_overflow"] += 1
            self.cluster.overflowed("retries")
        if result.status is not None:
            self.flags = "URX"                # retries exhausted on an upstream error status
            return self._send_local(result.status, f"meshd: upstream answered {result.status}\n".encode())
        self.reply_local(result)

    def _retry_now(self) -> None:
        if self.finished or self.local:
            return
        self.pending = [http1.chunk(c) for c in self.replay] if self.chunked else list(self.replay)
        if self.chunked and self.request_done:
            self.pending.append(http1.LAST_CHUNK)
        self.pending_size = sum(map(len, self.pending))
        attempt(self)

    def _attempt_done(self, outcome: Outcome, status: int | None = None) -> None:
        exit_entry(self, outcome)
        host = self.upstream_host
        if host is not None:
            self.upstream_host = None
            self.cluster.attempt_finished(host, outcome, status, True, len(self.tried) > 1)

    def _arm_route_timer(self) -> None:
        if self.slot is None and not self.finished:
            timeout = self.route.action.timeout
            if timeout is None:
                timeout = self.down.ctx.config.route_timeout
            if self.deadlines:
                asked = self.deadlines.get(http1.TIMEOUT_HEADER)
                if asked is not None and (timeout <= 0 or asked < timeout):
                    timeout = asked            # the caller's deadline shortens, never extends
            if timeout > 0:
                # from now (the request's end, or its turn in a pipeline), as Envoy's route timeout
                slot = self.slot = self.rt.timers.slot_at(self.down.last_activity + timeout)
                self.callback = True          # the wheel fires entries whose callback is set
                slot.add(self)

    def fire(self) -> None:
        """The route deadline (from the timer wheel)."""
        self.callback = None
        if self.finished or self.response_done:
            return
        self._abandon_upstream()
        self._attempt_done(Outcome.TIMEOUT)
        if self.response_started:
            self.flags = "UT"
            self.close_after = True
            self.down.close()
            return self._finish()
        self.reply_local(Result(Outcome.TIMEOUT, detail="upstream request timeout"))

    def _per_try_timeout(self) -> None:
        self.try_timer = None
        if self.finished or self.response_started or self.upstream_host is None:
            return
        self._abandon_upstream()
        self._attempt_failed(Result(Outcome.TIMEOUT, detail="per-try timeout"))

    def _abandon_upstream(self) -> None:
        """Stop using the current upstream: close its connection (not reusable mid-exchange) or stop waiting."""
        conn, self.upstream = self.upstream, None
        if conn is not None:
            conn.exchange = None
            conn.pool.release(conn, False)
        elif self.pool is not None:
            self.pool.cancel(self)
        self.pool = None

    # -- endings -------------------------------------------------------------------------------------
    def reply_local(self, result: Result) -> None:
        """Answer with meshd's own response for ``result`` (status by outcome, flag, short reason)."""
        self.flags = result.outcome.response_flag
        self.detail = result.detail
        status = _LOCAL.get(result.outcome, 502)
        self._send_local(status, f"meshd: {result.detail or result.outcome.value}\n".encode())

    def _send_local(self, status: int, body: bytes) -> None:
        if self.response_started:
            return
        self.local = True
        self.response_started = True
        self.status = status
        self._abandon_upstream()
        if self.try_timer is not None:
            self.try_timer.cancel()
            self.try_timer = None
        data = http1.local_reply(status, body, self.close_after or self.rt.draining, head_only=self.method == b"HEAD")
        self.bytes_out += len(data)
        self.down.write(data)
        self.response_done = True
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self.request_done and self.response_done:
            self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.callback is not None:
            self.callback = None
            self.slot.discard(self)  # type: ignore[union-attr]
        if self.try_timer is not None:
            self.try_timer.cancel()
            self.try_timer = None
        rt = self.rt
        rt.in_flight -= 1
        down = self.down
        if down._paused:
            down.resume_reading("upstream")
            down.resume_reading("buffer")
        if self.cluster is not None:
            self.cluster.active_requests -= 1
            if self.retrying:
                self.cluster.active_retries -= 1
        if self.entry is not None:
            exit_entry(self, http_outcome(self.status) if self.status else Outcome.RESET)
        duration = rt.loop.time() - self.started
        rec = down.records.get(self.cluster_name)
        if rec is None:
            rec = down.ctx.record(self.cluster_name, "http")
        rec.done(self.flags or ("ok" if self.status < 500 else "5xx"), self.status, duration)
        if rt.access_log.enabled:
            upstream = self.tried[-1].address if self.tried else ""
            rt.access_log.http(self.started, self.method, self.url, self.version, self.status or "-", self.flags,
                               self.bytes_in, self.bytes_out, duration, upstream, self.cluster_name, len(self.tried))
        down.exchange_done(self, self.close_after or rt.draining)

    def downstream_closed(self) -> None:
        """The client went away: drop the upstream side, count the request with flag DC."""
        if self.finished:
            return
        if not self.response_done:
            self.flags = self.flags or "DC"
            self._abandon_upstream()
            self._attempt_done(Outcome.RESET)
        self.request_done = self.response_done = True
        self._finish()

    def downstream_write_paused(self, paused: bool) -> None:
        if self.upstream is not None:
            (self.upstream.pause_reading if paused else self.upstream.resume_reading)()

    def upstream_write_paused(self, paused: bool) -> None:
        (self.down.pause_reading if paused else self.down.resume_reading)("upstream")

    def __repr__(self) -> str:
        return f"<HttpExchange {self.method.decode()} {self.url.decode('latin-1')} status={self.status}>"


def _ms(value: bytes) -> float | None:
    """A deadline header's value in seconds; None when it is not a positive number of milliseconds."""
    try:
        ms = float(value)
    except ValueError:
        return None
    return ms / 1000.0 if ms > 0 else None


def _request_metadata(raw: list[tuple[bytes, bytes]], h2m: dict[str, str], route_md: dict[str, str]) -> dict[str, str]:
    """Subset metadata from request headers (``header_to_metadata``); the route's own keys win."""
    found = {}
    for name, value in raw:
        key = h2m.get(name.decode("latin-1").lower())
        if key is not None:
            found[key] = value.decode("latin-1")
    return {**found, **route_md} if found else route_md


def _apply_ops(lines: list[bytes], ops) -> list[bytes]:
    drop = set(ops.remove) | {name for name, _, append in ops.add if not append}
    if drop:
        lines = [line for line in lines if line.split(b":", 1)[0].lower() not in drop]
    return lines + [b"%b: %b\r\n" % (name, value) for name, value, _ in ops.add]
