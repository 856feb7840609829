"""The heartbeat that registers meshd with a Sentinel dashboard (J ``SimpleHttpHeartbeatSender``).

Every ``interval`` (Sentinel's default 10 s; the dashboard marks a machine unhealthy after 60 s without
one) :class:`HeartbeatSender` POSTs ``http://{dashboard}/registry/machine`` with the form fields of J
``HeartbeatMessage.generateCurrentMessage``::

    hostname, ip, app, app_type, port, v (the Sentinel version), version (the current time in ms)

encoded by ``URLEncoder`` in the order of the Java ``HashMap`` that holds them, with
``Content-Type: application/x-www-form-urlencoded; charset=UTF-8``. ``v`` is what makes the dashboard
push rules with POST (``SentinelApiClient.isSupportPost``: ``v >= 1.6.0``), so it is
:data:`~meshd.sentinel_dashboard.commands.SENTINEL_VERSION`. ``port`` is read at each beat (the
command center's bound port, which may have been 0 in the config); no beat is sent while it is 0, as Java
sends none before its command center is listening.

Failures (connection errors, non-200 answers, a dashboard ``Result`` with ``success: false``) are logged
at most once per ``log_every`` seconds and the next beat simply tries again; the task never dies of them.
Unlike Java, the first beat goes out at :meth:`start` rather than 5 s later: meshd starts the sender only
once the command center is bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Callable

import aiohttp

from meshd.sentinel_dashboard.commands import SENTINEL_VERSION
from meshd.sentinel_dashboard.wire import form_body

log = logging.getLogger("meshd.sentinel_dashboard")

REGISTRY_PATH = "/registry/machine"   # J TransportConfig.HEARTBEAT_DEFAULT_PATH
DEFAULT_INTERVAL = 10.0               # J SimpleHttpHeartbeatSender.DEFAULT_INTERVAL (10 000 ms)
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=UTF-8"


def heartbeat_fields(*, app: str, ip: str, port: int, hostname: str, now_ms: int, app_type: int = 0,
                     version: str = SENTINEL_VERSION) -> dict[str, str]:
    """The heartbeat message, with Java's insertion order (``HashMap`` order is applied when encoding)."""
    return {"hostname": hostname, "ip": ip, "app": app, "app_type": str(app_type), "port": str(port),
            "v": version, "version": str(now_ms)}


class HeartbeatSender:
    """Sends heartbeats to ``dashboard`` (``host:port``) until :meth:`stop`.

    ``port()`` returns the command center's port (e.g. ``lambda: server.port``); ``clock()`` returns
    wall-clock milliseconds (the ``version`` field); ``timeout`` bounds one request (Java: 3 s).
    """

    def __init__(self, dashboard: str, *, app: str, ip: str, port: Callable[[], int],
                 interval: float = DEFAULT_INTERVAL, hostname: str | None = None, app_type: int = 0,
                 timeout: float = 3.0, log_every: float = 60.0,
                 clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be > 0, got {interval}")
        self.url = f"http://{dashboard}{REGISTRY_PATH}"
        self.app = app
        self.ip = ip
        self.port = port
        self.interval = interval
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.app_type = app_type
        self.timeout = timeout
        self.log_every = log_every
        self.clock = clock
        self.sent = 0
        self.failures = 0
        self._last_log = -1e18
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sentinel-heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the heartbeat task die
                log.exception("Sentinel heartbeat failed unexpectedly")
            await asyncio.sleep(self.interval)

    async def beat(self) -> bool:
        """Send one heartbeat now; True if the dashboard took it."""
        port = self.port()
        if port <= 0:
            return False
        fields = heartbeat_fields(app=self.app, ip=self.ip, port=port, hostname=self.hostname,
                                  now_ms=self.clock(), app_type=self.app_type)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(self.url, data=form_body(fields).encode("utf-8"),
                                          headers={"Content-Type": CONTENT_TYPE}) as response:
                text = await response.text(errors="replace")
                problem = _problem(response.status, text)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
            problem = f"{type(err).__name__}: {err}"
        if problem is None:
            self.sent += 1
            return True
        self.failures += 1
        now = time.monotonic()
        if now - self._last_log >= self.log_every:
            self._last_log = now
            log.warning("Failed to send heartbeat to %s (%d failure(s) so far): %s", self.url, self.failures, problem)
        return False

    def __repr__(self) -> str:
        return f"HeartbeatSender({self.url!r}, every {self.interval:g}s, sent={self.sent}, failures={self.failures})"


def _problem(status: int, text: str) -> str | None:
    """None if the dashboard registered the machine; otherwise what went wrong."""
    if status != 200:
        return f"http status code: {status}"
    try:
        result = json.loads(text)
    except ValueError:
        return None  # Java only looks at the status
    if isinstance(result, dict) and result.get("success") is False:
        return f"dashboard refused: {result.get('msg')!r}"
    return None
