"""sentinel_dashboard: Sentinel's command center (port 8719) and heartbeat, so a stock Sentinel dashboard manages meshd.

Architecture (sans-IO core, thin shells, as the codecs)::

    dashboard --HTTP--> server.CommandCenterServer --raw request--> commands.CommandCenter --> governance.Sentinel
                                                                           |  setRules / setParamFlowRules
                                                                           +--> push(kind, rules, "java")  (the daemon)
    heartbeat.HeartbeatSender --POST /registry/machine every 10 s--> dashboard

* :mod:`~meshd.sentinel_dashboard.wire` -- what Java's simple-http does to bytes (request target and
  parameter parsing, ``URLDecoder``/``URLEncoder``, ``HashMap`` order);
* :mod:`~meshd.sentinel_dashboard.commands` -- :class:`CommandCenter`: every command the dashboard uses,
  answered (status, content type, body) as ``sentinel-transport-simple-http`` answers, rules shown in
  the Java schema (:mod:`governance.java_json`) whatever their dialect; pure, no I/O;
* :mod:`~meshd.sentinel_dashboard.server` -- :class:`CommandCenterServer`, the aiohttp shell, and
  :class:`DashboardComponent` (server + heartbeat, what the daemon starts for ``sentinel_dashboard:``);
* :mod:`~meshd.sentinel_dashboard.heartbeat` -- :class:`HeartbeatSender`;
* :mod:`~meshd.sentinel_dashboard.config` -- :class:`SentinelDashboardConfig`.

Contract with the daemon:

* Rule pushes from the dashboard never touch the engine directly: ``push(kind, rules, dialect)`` gets
  meshd's kind (``flow``, ``circuit_breaker``, ``system``, ``hotspot``), the decoded, already validated
  JSON array and ``"java"``, and returns None when the rules are in force or a message for the
  dashboard. It runs on the event loop, synchronously, inside the HTTP request.
* :attr:`CommandCenter.enabled` is Sentinel's global switch (``setSwitch``); ``on_switch(enabled)`` is
  told of every change. Honouring it (bypassing governance while it is off) is the daemon's job.
* Authority rules are not supported: they read as ``[]``; a non-empty push is refused.
* The command center has no authentication, like Sentinel's: it binds loopback unless configured.
"""

from meshd.sentinel_dashboard.commands import SENTINEL_VERSION, CommandCenter, Push, Response
from meshd.sentinel_dashboard.config import DashboardEndpoint, SentinelDashboardConfig
from meshd.sentinel_dashboard.heartbeat import HeartbeatSender, heartbeat_fields
from meshd.sentinel_dashboard.server import CommandCenterServer, DashboardComponent

__all__ = [
    "SENTINEL_VERSION", "CommandCenter", "CommandCenterServer", "DashboardComponent", "DashboardEndpoint",
    "HeartbeatSender", "Push",
    "Response", "SentinelDashboardConfig", "heartbeat_fields",
]
