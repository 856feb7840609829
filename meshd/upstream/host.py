"""An upstream host: one endpoint of one cluster, with the state the data plane keeps about it.

A :class:`Host` outlives metadata changes of its endpoint (the model publishes a *changed* endpoint;
the host keeps its pools, counters and health). Health is the conjunction of what the registry says
(``endpoint.routable``), what active health checking says, and whether outlier detection ejected it.
"""

from __future__ import annotations

from typing import Any

from discovery.model import Endpoint


class Host:
    __slots__ = ("endpoint", "key", "address", "host", "port", "weight", "cluster", "active_requests", "hc_healthy",
                 "hc_failed", "ejected_until", "ejections", "pools", "requests", "errors", "consecutive", "draining")

    def __init__(self, endpoint: Endpoint, cluster: str) -> None:
        self.cluster = cluster
        self.endpoint = endpoint
        self.key = endpoint.key                # address, or address#instance (one of several at an address)
        self.address = endpoint.address
        self.host = endpoint.host
        self.port = endpoint.port
        self.weight = endpoint.weight
        self.active_requests = 0
        self.hc_healthy = True                # active health checking verdict (True until a checker says otherwise)
        self.hc_failed = ""                   # last health check failure reason
        self.ejected_until = 0.0              # outlier detection: monotonic time the ejection ends
        self.ejections = 0
        self.consecutive: dict[str, int] = {}  # outlier detection counters by kind
        self.pools: dict[str, Any] = {}        # protocol → pool
        self.requests = 0                      # finished attempts
        self.errors = 0                        # of which failed (Outcome.failed)
        self.draining = False                  # the provider said readonly on every connection (Dubbo)

    def update(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.weight = endpoint.weight

    @property
    def metadata(self):
        return self.endpoint.metadata

    @property
    def zone(self) -> str:
        return self.endpoint.zone

    def healthy(self, now: float) -> bool:
        return self.endpoint.routable and self.hc_healthy and self.ejected_until <= now and not self.draining

    def to_json(self, now: float) -> dict:
        data = self.endpoint.to_json()
        data.update({
            "healthy": self.healthy(now),
            "active_health": "healthy" if self.hc_healthy else f"unhealthy: {self.hc_failed}",
            "outlier": {"ejected": self.ejected_until > now, "ejections": self.ejections,
                        "ejected_for_s": round(max(0.0, self.ejected_until - now), 3)},
            "active_requests": self.active_requests,
            "draining": self.draining,
            "stats": {"requests": self.requests, "errors": self.errors},
            "connections": {proto: pool.describe() for proto, pool in self.pools.items()},
        })
        return data

    def __repr__(self) -> str:
        return f"<Host {self.cluster}/{self.address} w={self.weight} active={self.active_requests}>"
