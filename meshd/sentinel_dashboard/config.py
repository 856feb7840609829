"""Configuration of the Sentinel dashboard command center and its heartbeat.

```yaml
sentinel_dashboard:
  address: "127.0.0.1:8719"        # the command center; port 0 picks a free port
  dashboard: {address: "10.0.0.9:8080"}
  app: order-mesh
  heartbeat_interval: "10s"
  ip: "10.0.0.5"
```

The section is optional: without it meshd serves no command center. Every default is Sentinel's: port 8719 (``csp.sentinel.api.port``), heartbeat every 10 s
(``csp.sentinel.heartbeat.interval.ms``). The command center binds loopback by default because it can
change every rule without authentication (Sentinel's binds every interface); a dashboard on another host
needs ``address: "0.0.0.0:8719"`` and ``ip`` set to an address the dashboard can reach, which is what the
heartbeat reports and where the dashboard then connects.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from configkit import Duration, EndpointAddress, ListenAddress, Model


class DashboardEndpoint(Model):
    """Where the dashboard runs: heartbeats go to ``http://{address}/registry/machine``."""

    address: EndpointAddress


class SentinelDashboardConfig(Model):
    address: ListenAddress = "127.0.0.1:8719"   # Sentinel's command-center port, on loopback (see above)
    dashboard: DashboardEndpoint | None = None  # no dashboard: the command center serves, no heartbeat
    app: str = Field(default="meshd", min_length=1, max_length=256)  # the dashboard refuses longer names
    heartbeat_interval: Duration = 10.0         # Sentinel's default; the dashboard drops a machine after 60 s
    ip: str = "127.0.0.1"                       # reported in the heartbeat: where the dashboard connects

    @field_validator("ip")
    @classmethod
    def _check_ip(cls, value: str) -> str:
        # the dashboard's MachineRegistryController refuses anything but an IPv4/IPv6 literal
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (the dashboard accepts only IPv4/IPv6 literals)") from None
        return value

    @field_validator("heartbeat_interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("heartbeat_interval must be > 0")
        return value
