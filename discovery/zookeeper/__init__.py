"""ZooKeeper discovery and registration for Dubbo and SOFARPC trees.

:class:`ZooKeeperSource` feeds the cluster model from ``/dubbo/{iface}/providers`` (plus Dubbo
``configurators``) or ``/sofa-rpc/{iface}/providers`` (plus the SOFARPC online byte), and writes provider /
consumer nodes for the local application exactly as the SDKs do.

Layers, from pure to I/O:

- :mod:`.urls` — URL decoding/encoding (Java ``URLEncoder``), Dubbo ``toFullString`` and SOFARPC renderings;
- :mod:`.overrides` — Dubbo configurator rules;
- :mod:`.layouts` — the two trees: paths, provider-node validation, warm-up weights, node → ``EndpointSpec``;
- :mod:`.service` — the raw registry view of one interface and the endpoints it yields at a given time;
- :mod:`.registration` — the nodes meshd writes (``NodeRegistration``, the ZooKeeper form of
  :class:`discovery.registration.Registration`);
- :mod:`.snapshot` — the on-disk cache of the last known view (atomic writes);
- :mod:`.bridge` — the only code kazoo threads run: it posts everything onto the event loop;
- :mod:`.watches`, :mod:`.registrar` — watches with re-arming and sync rounds; remembered ephemeral nodes;
- :mod:`.source` — the ``Source`` that ties them together (faults, stale marking, snapshot, status);
- :mod:`.config` — its config section and factory (``SOURCE``, listed in :mod:`discovery.catalog`).

Like the rest of :mod:`discovery`, this package imports nothing of meshd or governance (``configkit`` only).
"""

from discovery.registration import Registration, RegistrationError, ServiceInfo
from discovery.zookeeper.registration import NodeRegistration
from discovery.zookeeper.source import ZooKeeperSource
from discovery.zookeeper.config import SOURCE, ZooKeeperSourceConfig

__all__ = ["NodeRegistration", "Registration", "RegistrationError", "SOURCE", "ServiceInfo", "ZooKeeperSource",
           "ZooKeeperSourceConfig"]
