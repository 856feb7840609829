"""Faults for container-backed tests: stop/start, pause/unpause, ZooKeeper session expiry, meshd restart.

Each fault is real and observable from outside, never simulated:

``stop`` / ``start``
    ``docker stop`` (SIGTERM, then SIGKILL after ``grace``) keeps the container and its file system;
    ``start`` runs it again on the same ports (host networking) and waits until it is ready.
``pause`` / ``unpause`` (and the ``paused`` context manager)
    The cgroup freezer: the process holds its sockets but answers nothing, as in a long GC pause or a
    hung host. Connections stay open, requests queue; after ``unpause`` they are served.
``expire_session``
    The standard ZooKeeper trick: a second client attaches to the same session id and password and
    closes it, so the *server* ends the session; the first client sees ``LOST`` and kazoo reconnects
    with a new session (ephemeral nodes of the old one are gone).
``restart_meshd``
    ``docker restart`` of a :class:`~integration.containers.MeshdContainer`, then ``/healthz`` and
    ``/ready`` again.

Functions take the container objects of :mod:`integration.containers` (anything with
``get_wrapped_container()`` and ``wait_ready()``) and block until the fault has taken effect.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator


class FaultError(RuntimeError):
    """A fault could not be injected or did not take effect in time; the message says which."""


def _wrapped(container: Any):
    if getattr(container, "_container", None) is None:
        raise FaultError(f"{container!r} is not started")
    return container.get_wrapped_container()


def _wait_status(container: Any, wanted: str, timeout: float) -> None:
    wrapped = _wrapped(container)
    deadline = time.monotonic() + timeout
    while True:
        wrapped.reload()
        if wrapped.status == wanted:
            return
        if time.monotonic() > deadline:
            raise FaultError(f"{container!r} is {wrapped.status!r}, not {wanted!r}, after {timeout:.0f}s")
        time.sleep(0.05)


def stop(container: Any, grace: float = 10.0) -> None:
    """``docker stop``: SIGTERM, SIGKILL after ``grace`` seconds; the container stays (see ``start``)."""
    _wrapped(container).stop(timeout=int(grace))
    _wait_status(container, "exited", grace + 10)


def kill(container: Any, signal: str = "SIGKILL") -> None:
    """Send ``signal`` to the main process (SIGKILL: a crash, nothing is flushed or closed cleanly)."""
    _wrapped(container).kill(signal=signal)
    if signal == "SIGKILL":
        _wait_status(container, "exited", 20)


def start(container: Any, timeout: float | None = None) -> None:
    """Start a stopped container again and wait until it is ready (same ports, same file system)."""
    _wrapped(container).start()
    container.wait_ready(timeout)


def pause(container: Any) -> None:
    """Freeze every process of the container (``docker pause``)."""
    _wrapped(container).pause()
    _wait_status(container, "paused", 10)


def unpause(container: Any) -> None:
    """Thaw a paused container; it carries on where it stopped (no restart, no readiness wait needed)."""
    _wrapped(container).unpause()
    _wait_status(container, "running", 10)


@contextmanager
def paused(container: Any) -> Iterator[None]:
    """``with paused(zk): ...`` — frozen inside the block, thawed afterwards even if the block raises."""
    pause(container)
    try:
        yield
    finally:
        unpause(container)


def restart_meshd(container: Any, grace: float = 20.0, timeout: float | None = None) -> None:
    """``docker restart`` meshd (SIGTERM: it drains and exits) and wait for ``/healthz`` and ``/ready``.

    ``grace`` is how long docker waits before SIGKILL: longer than meshd's default ``drain_timeout``
    (10 s), so a busy meshd finishes its drain instead of being killed as it ends."""
    _wrapped(container).restart(timeout=int(grace))
    container.wait_ready(timeout)


def expire_session(client: Any, zookeeper: Any, timeout: float = 30.0, wait_reconnect: bool = True) -> int:
    """Make ZooKeeper expire ``client``'s session; return the expired session id.

    ``zookeeper`` is a :class:`~integration.containers.ZooKeeperContainer` (or anything with
    ``address``). Waits until ``client`` saw ``LOST`` and, with ``wait_reconnect``, until it is
    ``CONNECTED`` again with a new session.
    """
    from kazoo.protocol.states import KazooState

    if client.client_id is None:
        raise FaultError("cannot expire the session of a client that is not connected")
    session_id, password = client.client_id
    lost, back = threading.Event(), threading.Event()

    def listener(state):
        if state == KazooState.LOST:
            lost.set()
        elif state == KazooState.CONNECTED and lost.is_set():
            back.set()
            return True              # kazoo drops a listener that returns True
        return None

    client.add_listener(listener)
    deadline = time.monotonic() + timeout
    while not lost.is_set() and time.monotonic() < deadline:
        _close_session(zookeeper.address, session_id, password)
        _nudge(client)
        lost.wait(2.0)
    if not lost.is_set():
        client.remove_listener(listener)
        raise FaultError(f"session {session_id:#x} did not expire within {timeout:.0f}s")
    if wait_reconnect and not back.wait(max(0.0, deadline - time.monotonic())):
        raise FaultError(f"the client did not reconnect within {timeout:.0f}s after session {session_id:#x} expired")
    if not wait_reconnect:
        client.remove_listener(listener)
    return session_id


def _close_session(address: str, session_id: int, password: bytes) -> None:
    """Attach a second client to the session and close it: the server ends the session for both."""
    from kazoo.client import KazooClient
    twin = KazooClient(hosts=address, client_id=(session_id, password), timeout=4.0)
    try:
        twin.start(timeout=5)
        twin.stop()
    except Exception:    # noqa: BLE001 - the session may already be gone; the caller checks the effect
        pass
    finally:
        twin.close()


def _nudge(client: Any) -> None:
    """Make the client talk to the server now, so it learns of the expiry before its next ping."""
    try:
        client.exists_async("/")
    except Exception:    # noqa: BLE001 - only a nudge
        pass
