"""Nacos discovery and registration (nacos-sdk-python 3.x ``v2.nacos``, gRPC).

Layers, from pure to I/O:

- :mod:`.naming` — Dubbo service names, instance → ``EndpointSpec``, the push rules (lastRefTime, empty push);
- :mod:`.source` — the ``Source`` + ``Registry``: subscriptions, reconnect handling (and the client's redo gap),
  stale marking, snapshot, registrations, status;
- :mod:`.config` — its config section and factory (``SOURCE``, listed in :mod:`discovery.catalog`).

Like the rest of :mod:`discovery`, this package imports nothing of meshd (``configkit`` only); the client is
imported lazily, when a source starts.
"""

from discovery.nacos.config import SOURCE, NacosSourceConfig
from discovery.nacos.source import NacosSource

__all__ = ["NacosSource", "NacosSourceConfig", "SOURCE"]
