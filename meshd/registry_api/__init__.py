"""App-facing registry APIs: the HTTP calls an SDK-less app makes instead of a registry client.

Two APIs, each a :class:`~meshd.registry_api.api.RegistryApi` component of :class:`~meshd.app.Meshd`
(``start(app)`` / ``stop()`` in ``Meshd.extras``), each bound to one ZooKeeper discovery source
(``registry_api.<api>.registry``) through which it publishes and subscribes:

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

``app_address`` is where the app serves what it publishes: its host is written into provider and consumer
URLs (set it to the pod's IP when consumers run elsewhere), its port is the default when a publish names
none (SOFA: the body's ``port``; Dubbo: ``service.port``).

Subscribing creates the cluster named by the interface (the discovery source watches it); RPC's default
route sends a call that no route matches to that cluster, and subset routing selects by the call's version
and group/uniqueId. Bad bodies get 400 naming the field; a registry failure 503; nothing half-registered
stays behind. Every node meshd wrote is removed when it stops (the source's ``stop``).
"""

from __future__ import annotations

from typing import Any


def build_registry_apis(config: Any) -> list[Any]:
    """The registry API components ``config.registry_api`` asks for (not started)."""
    apis: list[Any] = []
    if config.registry_api.sofa is not None:
        from meshd.registry_api.sofa import SofaMeshApi
        apis.append(SofaMeshApi(config.registry_api.sofa))
    if config.registry_api.dubbo is not None:
        from meshd.registry_api.dubbo import DubboPubSubApi
        apis.append(DubboPubSubApi(config.registry_api.dubbo))
    return apis
