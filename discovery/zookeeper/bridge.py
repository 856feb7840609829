"""The thread boundary between kazoo and the asyncio loop.

kazoo runs its connection and callbacks on its own threads. Everything meshd does with ZooKeeper state (the
cluster model, the service states, the registrations) lives on the event loop and is not thread-safe, so
this module is the only place where kazoo threads run our code, and all they do is
``loop.call_soon_threadsafe(...)``:

- connection-state changes (CONNECTED / SUSPENDED / LOST) → ``on_state(state)`` on the loop;
- a watch firing → the watcher's loop callback (``watcher(fn, key)``);
- an async request completing → ``request(...)`` callbacks or awaitable :class:`asyncio.Future` values.

Ordering: kazoo completes the requests of one session in the order they were sent and delivers completions
and watch events from a single callback thread, so the loop sees them in that order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

log = logging.getLogger("discovery.zookeeper")

#: kazoo errors after which a request may be re-sent once the connection is back.
CONNECTION_ERRORS = ("ConnectionLoss", "ConnectionDropped", "SessionExpiredError", "ConnectionClosedError",
                     "OperationTimeoutError")


def is_connection_error(exc: BaseException | None) -> bool:
    return exc is not None and type(exc).__name__ in CONNECTION_ERRORS


class KazooBridge:
    """One kazoo client whose callbacks are marshalled onto ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, hosts: str, *, session_timeout: float,
                 auth: str | None, reconnect_max_delay: float, on_state: Callable[[str], None]) -> None:
        self.loop = loop
        self._on_state = on_state
        self.client = KazooClient(
            hosts=hosts, timeout=session_timeout,
            auth_data=[("digest", auth)] if auth else None,
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=reconnect_max_delay),
            command_retry=KazooRetry(max_tries=3, delay=0.1, backoff=2, max_delay=reconnect_max_delay),
        )
        self.client.add_listener(self._listener)
        self.closed = False

    # -- kazoo threads → loop ---------------------------------------------------------------------------
    def post(self, fn: Callable, *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon; silently dropped once the loop is closed (shutdown)."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass

    def _listener(self, state) -> None:
        self.post(self._on_state, str(state))
        return None  # a listener returning True is removed by kazoo

    def watcher(self, fn: Callable, *key: Any) -> Callable:
        """A kazoo watch function that calls ``fn(*key, event)`` on the loop."""
        return lambda event: self.post(fn, *key, event)

    def request(self, method: str, args: tuple, kwargs: dict, done: Callable[[Any, BaseException | None], None]) -> None:
        """Send ``client.<method>(*args, **kwargs)`` (an ``*_async`` method); ``done(value, exception)`` runs on
        the loop."""
        try:
            result = getattr(self.client, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - kazoo raises synchronously on a closed client
            self.loop.call_soon(done, None, exc)
            return
        result.rawlink(lambda r: self.post(done, r.value, r.exception))

    def track(self, result) -> asyncio.Future:
        """An awaitable for any kazoo async result (a request, a transaction commit)."""
        future = self.loop.create_future()

        def done(value, exc):
            if not future.done():
                future.set_exception(exc) if exc is not None else future.set_result(value)

        result.rawlink(lambda r: self.post(done, r.value, r.exception))
        return future

    def call(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future:
        """``client.<method>(*args, **kwargs)`` as an awaitable future."""
        try:
            return self.track(getattr(self.client, method)(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - kazoo raises synchronously on a closed client
            future = self.loop.create_future()
            future.set_exception(exc)
            return future

    # -- lifecycle --------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def session_id(self) -> int | None:
        client_id = self.client.client_id
        return client_id[0] if client_id else None

    def start(self) -> None:
        """Begin connecting (never blocks; kazoo keeps retrying in the background)."""
        self.client.start_async()

    async def close(self) -> None:
        """Stop the client (closing the session) and release its threads, off the loop thread."""
        if self.closed:
            return
        self.closed = True
        await self.loop.run_in_executor(None, self._close_sync)

    def _close_sync(self) -> None:
        try:
            self.client.stop()
        finally:
            self.client.close()
