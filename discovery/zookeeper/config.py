"""The ``discovery: - type: zookeeper`` config section and the factory that builds the source from it.

Key names are a contract (docs/configuration.md): add keys, rename none.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from configkit import DigestAuth, Duration, Model, Name
from discovery.source import SourceContext, SourceType
from discovery.zookeeper.source import ZooKeeperSource


class ZooKeeperSourceConfig(Model):
    type: Literal["zookeeper"]
    name: Name = "zookeeper"
    servers: str = Field(min_length=1)
    chroot: str = ""
    session_timeout: Duration = 30.0
    auth: DigestAuth | None = None            # redacted in /config_dump
    layout: Literal["dubbo", "sofarpc"] = "dubbo"
    services: list[str] | Literal["all"] = "all"
    root: str | None = None                  # default /dubbo (dubbo layout) or /sofa-rpc (sofarpc)
    snapshot_path: str | None = None         # default .meshd/<name>-snapshot.json next to the config
    sync_timeout: Duration = 5.0             # /ready waits this long for the first sync


def build(spec: ZooKeeperSourceConfig, ctx: SourceContext) -> ZooKeeperSource:
    auth = spec.auth.token() if spec.auth else None
    snapshot = spec.snapshot_path or f".meshd/{spec.name}-snapshot.json"
    return ZooKeeperSource(
        spec.name, spec.servers, chroot=spec.chroot, session_timeout=spec.session_timeout, auth=auth,
        layout=spec.layout, services=spec.services, root=spec.root, snapshot_path=ctx.resolve_path(snapshot),
        sync_timeout=spec.sync_timeout)


SOURCE = SourceType(ZooKeeperSourceConfig, ZooKeeperSource, build)
