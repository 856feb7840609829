"""Children and data watches on ZooKeeper paths, kept on the event loop.

kazoo's ``ChildrenWatch`` recipe stops for good when its node does not exist and reads synchronously in the
calling thread; meshd needs to watch directories that appear later (a service's ``providers/`` before its
first provider) and to read thousands of them at once. So a :class:`Watch` here is one path plus a stable
kazoo watcher; :class:`Watches` sends pipelined async reads through the :class:`KazooBridge` and:

- re-reads a path (re-arming its watch) every time its watch fires;
- for a children watch on a missing node, reports ``None`` and arms an ``exists`` watch so that the node's
  creation triggers a new read;
- ignores watch events without a type (kazoo fires those when the connection drops: it does not restore
  watches itself) and re-reads **every** active path on :meth:`resync`, which the source calls on each
  (re)connection;
- retries a read that failed for a connection reason while the connection is still up, and otherwise leaves
  it to the next resync;
- applies a read only if it is newer than the last one applied for that path.

A *sync round* starts with :meth:`resync`; it completes (``handler.on_synced()``) once every path active in
the round — including paths added while it runs — has answered. Results go to
``handler.on_result(watch, value)``: a list of child names (``None``: no such node) or the node data (``None``:
no such node). Errors that are not about the connection go to ``handler.on_error(watch, exc)``.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import EventType

from discovery.zookeeper.bridge import KazooBridge, is_connection_error

RETRY_DELAY = 0.2
log = logging.getLogger("discovery.zookeeper")


class Kind(enum.Enum):
    ROOT = "root"                # children = interfaces (services: all)
    PROVIDERS = "providers"      # children = provider URLs
    RULES = "configurators"      # children = override URLs (Dubbo)
    DATA = "data"                # data of one provider node (SOFARPC online flag)

    @property
    def children(self) -> bool:
        return self is not Kind.DATA


@dataclass(eq=False)
class Watch:
    """One watched path. ``interface``/``name`` say which service and provider node it belongs to."""

    kind: Kind
    path: str
    interface: str = ""
    name: str = ""
    active: bool = True
    sent: int = 0          # sequence number of the last read sent
    applied: int = 0       # sequence number of the last read applied
    watcher: Callable = field(default=None, repr=False)


class Handler(Protocol):
    def on_result(self, watch: Watch, value: Any) -> None: ...
    def on_error(self, watch: Watch, exc: BaseException) -> None: ...
    def on_synced(self) -> None: ...


class Watches:
    """The active watches of one source; see the module docstring."""

    def __init__(self, bridge: KazooBridge, handler: Handler) -> None:
        self._bridge = bridge
        self._handler = handler
        self._watches: dict[tuple[Kind, str], Watch] = {}
        self._pending: set[Watch] = set()
        self.syncing = False
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._watches)

    def get(self, kind: Kind, path: str) -> Watch | None:
        return self._watches.get((kind, path))

    def add(self, kind: Kind, path: str, interface: str = "", name: str = "") -> Watch:
        """Watch ``path`` (idempotent); it is read now if connected, else at the next resync."""
        watch = self._watches.get((kind, path))
        if watch is None:
            watch = Watch(kind, path, interface, name)
            watch.watcher = self._bridge.watcher(self._on_event, watch)
            self._watches[(kind, path)] = watch
            if self._bridge.connected:
                self._read(watch)
        return watch

    def remove(self, watch: Watch) -> None:
        watch.active = False
        self._watches.pop((watch.kind, watch.path), None)
        self._settle(watch)

    def resync(self) -> None:
        """Start a sync round: re-read (and re-arm) every active watch."""
        self.epoch += 1
        self.syncing = True
        for watch in list(self._watches.values()):
            self._read(watch)
        if not self._watches:
            self._settle(None)

    # -- reads --------------------------------------------------------------------------------------
    def _read(self, watch: Watch) -> None:
        if not watch.active:
            return
        watch.sent += 1
        if self.syncing:
            self._pending.add(watch)
        method = "get_children_async" if watch.kind.children else "get_async"
        done = lambda value, exc, w=watch, seq=watch.sent, epoch=self.epoch: self._on_read(w, seq, epoch, value, exc)
        self._bridge.request(method, (watch.path,), {"watch": watch.watcher}, done)

    def _on_read(self, watch: Watch, seq: int, epoch: int, value: Any, exc: BaseException | None) -> None:
        if not watch.active or seq <= watch.applied:
            return
        if exc is not None and is_connection_error(exc):
            if epoch == self.epoch and self._bridge.connected:
                self._bridge.loop.call_later(RETRY_DELAY, self._retry, watch, epoch)
            return  # otherwise the resync after the reconnection reads it again
        watch.applied = seq
        try:
            if isinstance(exc, NoNodeError):
                if watch.kind.children:
                    self._arm_exists(watch)
                self._handler.on_result(watch, None)
            elif exc is not None:
                self._handler.on_error(watch, exc)
            else:
                self._handler.on_result(watch, value if watch.kind.children else value[0])
        except Exception:  # noqa: BLE001 - e.g. a model subscriber's bug: log it, keep the watches going
            log.exception("handling %s of %s failed", watch.kind.value, watch.path)
        finally:
            if seq == watch.sent:
                self._settle(watch)

    def _retry(self, watch: Watch, epoch: int) -> None:
        if watch.active and epoch == self.epoch and self._bridge.connected:
            self._read(watch)

    def _arm_exists(self, watch: Watch) -> None:
        """The node is missing: have its creation fire the watch (re-reading if it appeared meanwhile)."""
        def done(stat, exc):
            if watch.active and exc is None and stat is not None:
                self._read(watch)
        self._bridge.request("exists_async", (watch.path,), {"watch": watch.watcher}, done)

    def _on_event(self, watch: Watch, event) -> None:
        if watch.active and event.type != EventType.NONE:
            self._read(watch)

    def _settle(self, watch: Watch | None) -> None:
        if not self.syncing:
            return
        self._pending.discard(watch)
        if not self._pending:
            self.syncing = False
            self._handler.on_synced()
