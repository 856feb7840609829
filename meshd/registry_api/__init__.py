"""App-facing registry APIs: the HTTP calls an SDK-less app makes instead of a registry client.

Two APIs, each a :class:`~meshd.registry_api.api.RegistryApi` component of the daemon (``start()`` /
``stop()``), each bound to one discovery source that is a :class:`~discovery.registration.Registry`
(``registry_api.<api>.registry``), through which it publishes and subscribes:

- :class:`~meshd.registry_api.sofa.SofaMeshApi` — the SOFA mesh registry API of sofa-rpc's ``registry-mesh``
  client (default ``127.0.0.1:13330``), plus the Bolt listener that client sends its calls to
  (``bolt_address``, default ``127.0.0.1:12220``);
- :class:`~meshd.registry_api.dubbo.DubboPubSubApi` — MOSN's Dubbo ``/pub`` ``/sub`` ``/unpub`` ``/unsub``
  (default ``127.0.0.1:22222``); subscribed apps call meshd's dubbo/auto listener.

Configuration (``registry_api`` in the config; the key names of the canonical configuration are fixed)::

    registry_api:
      sofa:  {address: "127.0.0.1:13330", registry: zk, bolt_address: "127.0.0.1:12220",
              subscribe_timeout: "3s", app_address: "127.0.0.1:12200"}
      dubbo: {address: "127.0.0.1:22222", registry: zk, listener: rpc-egress,
              subscribe_timeout: "3s", app_address: "127.0.0.1:20880"}
      # each may take its own token (token / token_file): POSTs then need "Authorization: Bearer <token>",
      # which the SDK clients do not send; without one the API is open, and must bind to loopback

``app_address`` is where the app serves what it publishes: its host is written into provider and consumer
URLs (set it to the pod's IP when consumers run elsewhere), its port is the default when a publish names
none (SOFA: the body's ``port``; Dubbo: ``service.port``).

Subscribing creates the cluster named by the interface (the registry watches it); RPC's default route
sends a call that no route matches to that cluster, and subset routing selects by the call's version and
group/uniqueId. Bad bodies get 400 naming the field; a registry failure 503; nothing half-registered stays
behind. Every entry meshd wrote is removed when it stops (the registry's ``shutdown``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from discovery.model import ClusterModel
from discovery.registration import Registry
from meshd.config import RegistryApiConfig
from meshd.registry_api.api import AddListener, RegistryApi
from meshd.registry_api.dubbo import DubboPubSubApi
from meshd.registry_api.sofa import SofaMeshApi


def build_registry_apis(config: RegistryApiConfig, registries: Mapping[str, Registry], model: ClusterModel,
                        listeners: Sequence, add_listener: AddListener, *,
                        resolve_path: Callable[[str], Path] = Path) -> list[RegistryApi]:
    """The registry API components ``config`` asks for (not started), each bound to its named registry; their
    token files are read now (``resolve_path``: relative to the config file)."""
    apis: list[RegistryApi] = []
    for kind, cls in (("sofa", SofaMeshApi), ("dubbo", DubboPubSubApi)):
        section = getattr(config, kind)
        if section is None:
            continue
        registry = registries.get(section.registry)
        if registry is None:
            raise RuntimeError(f"registry_api.{kind}.registry: no running discovery source {section.registry!r} "
                               f"that registers (have {sorted(registries)})")
        apis.append(cls(section, registry, model, listeners, add_listener, resolve_path=resolve_path))
    return apis
