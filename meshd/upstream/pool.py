"""Pure connection-pool logic (httpcore's split): decisions here, sockets in the shell.

:class:`PoolState` decides, for one endpoint's HTTP/1.1 keep-alive pool, whether a request reuses an
idle connection (most recently used first, so that idle ones age out), opens a new one, or waits. The
shell (:mod:`meshd.upstream.http`) performs the decisions and reports back: ``connected``,
``connect_failed``, ``release`` and ``discard`` (a connection closed, for whatever reason).
Connections and waiters are opaque objects here.

Invariants: a connection is in exactly one of ``idle`` / ``busy``; ``connecting + len(idle) + len(busy)``
never exceeds ``max_connections``; a waiter is either queued or has been handed exactly one decision.
"""

from __future__ import annotations

from collections import deque
from typing import Any

USE, CONNECT, WAIT, OVERFLOW = "use", "connect", "wait", "overflow"


class PoolState:
    __slots__ = ("max_connections", "max_pending", "idle", "busy", "connecting", "waiters")

    def __init__(self, max_connections: int, max_pending: int | None = None) -> None:
        self.max_connections = max_connections
        self.max_pending = max_pending
        self.idle: list[Any] = []
        self.busy: set[Any] = set()
        self.connecting = 0
        self.waiters: deque[Any] = deque()

    @property
    def total(self) -> int:
        return self.connecting + len(self.idle) + len(self.busy)

    def acquire(self, waiter: Any, may_connect: bool = True, may_wait: bool = True) -> tuple[str, Any]:
        """(USE, conn) now; (CONNECT, None): open one, ``waiter`` is queued; (WAIT, None); (OVERFLOW, None).

        ``may_connect`` / ``may_wait`` carry budgets kept outside this pool (the cluster's max_connections
        and max_pending_requests)."""
        if self.idle:
            conn = self.idle.pop()
            self.busy.add(conn)
            return USE, conn
        if self.total < self.max_connections and may_connect:
            self.connecting += 1
            self.waiters.append(waiter)
            return CONNECT, None
        if not may_wait or (self.max_pending is not None and len(self.waiters) - self.connecting >= self.max_pending):
            return OVERFLOW, None
        self.waiters.append(waiter)
        return WAIT, None

    def connected(self, conn: Any) -> Any:
        """A connection opened: the first waiter gets it (returned), else it goes idle (None returned)."""
        self.connecting -= 1
        if self.waiters:
            self.busy.add(conn)
            return self.waiters.popleft()
        self.idle.append(conn)
        return None

    def connect_failed(self) -> Any:
        """A connect attempt failed: the oldest waiter (returned) fails with it."""
        self.connecting -= 1
        return self.waiters.popleft() if self.waiters else None

    def release(self, conn: Any, reusable: bool) -> tuple[str, Any]:
        """A request finished on ``conn``. Returns (USE, waiter) to hand ``conn`` on, (CONNECT, None) when a
        waiter needs a fresh connection because ``conn`` is not reusable, or ("", None)."""
        self.busy.discard(conn)
        if reusable:
            if self.waiters:
                self.busy.add(conn)
                return USE, self.waiters.popleft()
            self.idle.append(conn)
            return "", None
        return self._refill()

    def discard(self, conn: Any) -> tuple[str, Any]:
        """``conn`` closed (idle timeout, peer close, error)."""
        if conn in self.busy:
            self.busy.discard(conn)
        elif conn in self.idle:
            self.idle.remove(conn)
        return self._refill()

    def refill(self) -> bool:
        """True (and counted as connecting) when queued waiters need one more connection opened."""
        return self._refill()[0] == CONNECT

    def cancel(self, waiter: Any) -> bool:
        try:
            self.waiters.remove(waiter)
        except ValueError:
            return False
        return True

    def _refill(self) -> tuple[str, Any]:
        if len(self.waiters) > self.connecting and self.total < self.max_connections:
            self.connecting += 1
            return CONNECT, None
        return "", None

    def __repr__(self) -> str:
        return (f"<PoolState idle={len(self.idle)} busy={len(self.busy)} connecting={self.connecting} "
                f"waiting={len(self.waiters)} max={self.max_connections}>")
