"""The command center's HTTP shell (aiohttp; never on the forwarding path). Binds 127.0.0.1:8719 unless configured.

Every ``GET`` or ``POST`` on any path is handed, raw, to :meth:`CommandCenter.handle_http`: the path and
query string undecoded (Sentinel takes the command name from the raw target), the headers, the body.
The answer's status, content type and body are written as they are. Nothing here interprets a command,
so the whole protocol is tested without sockets (``tests/unit/meshd/test_sentinel_commands.py``) and this
module only by the HTTP round trips of ``tests/integration/test_sentinel_dashboard_http.py``.

Like simple-http, the server reads at most ``max_body`` bytes of a POST body (the dashboard's largest
documents are rule lists; 8 MiB by default) and closes idle keep-alive connections quickly.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from aiohttp import web

from configkit import split_host_port
from meshd.sentinel_dashboard.commands import CommandCenter, Push
from meshd.sentinel_dashboard.heartbeat import HeartbeatSender

if TYPE_CHECKING:
    from governance import Sentinel
    from meshd.sentinel_dashboard.config import SentinelDashboardConfig

log = logging.getLogger("meshd.sentinel_dashboard")

DEFAULT_ADDRESS = "127.0.0.1:8719"     # J TransportConfig default port 8719 (csp.sentinel.api.port)
DEFAULT_MAX_BODY = 8 * 1024 * 1024


class CommandCenterServer:
    """Serves ``center`` on ``address`` (``host:port``; port 0 picks a free port, see :attr:`bound`)."""

    def __init__(self, center: CommandCenter, address: str = DEFAULT_ADDRESS, *,
                 max_body: int = DEFAULT_MAX_BODY) -> None:
        self.center = center
        self.address = address
        self.web = web.Application(client_max_size=max_body)
        self.web.router.add_route("GET", "/{tail:.*}", self._serve)
        self.web.router.add_route("POST", "/{tail:.*}", self._serve)
        self.runner: web.AppRunner | None = None
        self.bound = ""

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start`): what the heartbeat reports."""
        return split_host_port(self.bound)[1] if self.bound else 0

    async def start(self) -> None:
        host, port = split_host_port(self.address)
        self.runner = web.AppRunner(self.web, access_log=None, keepalive_timeout=5.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self.runner.cleanup()
            self.runner = None
            raise
        sock = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.bound = f"{host}:{sock[1]}"
        log.info("Sentinel command center listening on %s", self.bound)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _serve(self, request: web.Request) -> web.Response:
        body = await request.read() if request.method == "POST" else b""
        answer = self.center.handle_http(request.method, request.raw_path, request.headers, body)
        return web.Response(status=answer.status, body=answer.body,
                            headers={"Content-Type": answer.content_type})

    def __repr__(self) -> str:
        return f"CommandCenterServer({self.bound or self.address!r}, {self.center!r})"


class DashboardComponent:
    """The command center and, with a dashboard configured, its heartbeat: one daemon component.

    ``push`` receives the dashboard's rule pushes (see :class:`CommandCenter`); ``on_switch`` is told of
    every ``setSwitch``.
    """

    def __init__(self, config: "SentinelDashboardConfig", sentinel: "Sentinel", push: "Push",
                 on_switch: Callable[[bool], None]) -> None:
        self.config = config
        self.server = CommandCenterServer(CommandCenter(sentinel, push, ip=config.ip, on_switch=on_switch),
                                          config.address)
        self.heartbeat: HeartbeatSender | None = None
        if config.dashboard is not None:
            self.heartbeat = HeartbeatSender(config.dashboard.address, app=config.app, ip=config.ip,
                                             port=lambda: self.server.port, interval=config.heartbeat_interval)

    async def start(self) -> None:
        await self.server.start()
        if self.heartbeat is not None:
            self.heartbeat.start()

    async def stop(self) -> None:
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        await self.server.stop()
