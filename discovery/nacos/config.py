"""The ``discovery: - type: nacos`` config section and the factory that builds the source from it.

Key names are a contract (docs/configuration.md): add keys, rename none. ``server_addresses`` is the HTTP
port as users write it; the gRPC client connects to it + 1000, as the official clients do.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from configkit import Duration, Model, Name
from discovery.nacos.source import NacosSource
from discovery.source import SourceContext, SourceType


class NacosAuth(Model):
    username: str | None = None
    password: SecretStr | None = None        # redacted in /config_dump
    access_key: str | None = None
    secret_key: SecretStr | None = None      # redacted in /config_dump


class NacosSourceConfig(Model):
    type: Literal["nacos"]
    name: Name = "nacos"
    server_addresses: str = Field(min_length=1)
    namespace: str = "public"                # Nacos 3's default namespace id
    group: str = "DEFAULT_GROUP"
    services: list[str] | Literal["all"] = "all"
    naming: Literal["dubbo", "plain"] = "dubbo"
    clusters: list[str] = []                 # Nacos cluster names to take; all when empty
    auth: NacosAuth | None = None
    snapshot_path: str | None = None         # default .meshd/<name>-snapshot.json next to the config
    sync_timeout: Duration = 5.0             # /ready waits this long for the first sync
    list_interval: Duration = 10.0           # how often the service list is re-read (new services/versions)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def build(spec: NacosSourceConfig, ctx: SourceContext) -> NacosSource:
    auth = spec.auth or NacosAuth()
    snapshot = ctx.resolve_path(spec.snapshot_path or f".meshd/{spec.name}-snapshot.json")
    return NacosSource(
        spec.name, spec.server_addresses, namespace=spec.namespace, group=spec.group, services=spec.services,
        naming=spec.naming, clusters=spec.clusters, username=auth.username, password=_secret(auth.password),
        access_key=auth.access_key, secret_key=_secret(auth.secret_key), snapshot_path=snapshot,
        sync_timeout=spec.sync_timeout, list_interval=spec.list_interval)


SOURCE = SourceType(NacosSourceConfig, NacosSource, build)
