"""SOFARegistry discovery and registration: the session-server client protocol (Bolt + hessian2).

Layers, from pure to I/O:

- :mod:`.model` — the protocol's Java classes (field order as Java writes them), register answers, pushes;
- :mod:`.data` — SOFARPC data ids, provider strings, endpoints per zone (local zone first);
- :mod:`.connection` — one Bolt connection: calls, pushes, heartbeats;
- :mod:`.source` — the ``Source`` + ``Registry``: subscribers and publishers, versions per segment, failover,
  stale marking, snapshot, status;
- :mod:`.config` — its config section and factory (``SOURCE``, listed in :mod:`discovery.catalog`).

Like the rest of :mod:`discovery`, this package imports nothing of meshd: the Bolt and hessian2 codecs are the
daemon's, lent through :class:`discovery.wire.BoltWire` (``SourceContext.bolt``).
"""

from discovery.sofaregistry.config import SOURCE, SofaRegistrySourceConfig
from discovery.sofaregistry.source import SofaRegistrySource

__all__ = ["SOURCE", "SofaRegistrySource", "SofaRegistrySourceConfig"]
