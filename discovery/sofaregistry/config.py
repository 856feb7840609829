"""The ``discovery: - type: sofaregistry`` config section and the factory that builds the source from it.

Key names are a contract (docs/configuration.md): add keys, rename none. Defaults are the Java client's
(``DefaultRegistryClientConfigBuilder``: zone ``DEFAULT_ZONE``, data center ``DefaultDataCenter``, instance id
``DEFAULT_INSTANCE_ID``; session servers on 9600).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from configkit import Duration, Model, Name
from discovery.sofaregistry.data import DataError, Service
from discovery.sofaregistry.model import DEFAULT_DATA_CENTER, DEFAULT_INSTANCE_ID, DEFAULT_ZONE
from discovery.sofaregistry.source import SofaRegistrySource
from discovery.source import SourceContext, SourceType


class SofaRegistrySourceConfig(Model):
    type: Literal["sofaregistry"]
    name: Name = "sofaregistry"
    servers: str = Field(min_length=1)        # session servers "host:9600,host2:9600": one connection, failover
    app: str = Field(min_length=1)
    zone: str = DEFAULT_ZONE                  # the local zone: its providers are preferred
    data_center: str = DEFAULT_DATA_CENTER
    scope: Literal["zone", "dataCenter", "global"] = "zone"
    services: list[str] = []                  # SOFARPC unique names iface:version[:uniqueId]
    instance_id: str = DEFAULT_INSTANCE_ID
    snapshot_path: str | None = None          # default .meshd/<name>-snapshot.json next to the config
    sync_timeout: Duration = 5.0              # /ready waits this long for the first sync
    invoke_timeout: Duration = 3.0            # a register's answer
    connect_timeout: Duration = 3.0
    reconnect_delay: Duration = 1.0           # after every server of the list failed once
    heartbeat_interval: Duration = 15.0       # Bolt's idle heartbeat
    max_frame_size: int = Field(default=8 << 20, ge=1024)

    @field_validator("services")
    @classmethod
    def _services(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                Service.parse(name)
            except DataError as exc:
                raise ValueError(str(exc)) from None
        return value


def build(spec: SofaRegistrySourceConfig, ctx: SourceContext) -> SofaRegistrySource:
    if ctx.bolt is None:
        raise ValueError(f"discovery source {spec.name}: sofaregistry needs the daemon's Bolt codecs "
                         f"(SourceContext.bolt), and none were given")
    snapshot = ctx.resolve_path(spec.snapshot_path or f".meshd/{spec.name}-snapshot.json")
    return SofaRegistrySource(
        spec.name, spec.servers, ctx.bolt, app=spec.app, zone=spec.zone, data_center=spec.data_center,
        scope=spec.scope, services=spec.services, instance_id=spec.instance_id, snapshot_path=snapshot,
        sync_timeout=spec.sync_timeout, invoke_timeout=spec.invoke_timeout, connect_timeout=spec.connect_timeout,
        reconnect_delay=spec.reconnect_delay, heartbeat_interval=spec.heartbeat_interval,
        max_frame_size=spec.max_frame_size)


SOURCE = SourceType(SofaRegistrySourceConfig, SofaRegistrySource, build)
