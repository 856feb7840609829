"""The ``discovery: - type: xds`` config section and the factory that builds the source from it.

Key names are a contract (add keys, rename none)::

    discovery:
      - type: xds
        name: istio
        server: "127.0.0.1:15010"            # ADS over gRPC; also "unix:///path"
        tls: {ca: ca.pem, cert: cert.pem, key: key.pem}   # optional: plaintext when absent
        node:
          id: "sidecar~10.0.0.5~app-1.default~default.svc.cluster.local"
          cluster: app
          locality: {region: r1, zone: z1, sub_zone: s1}
          metadata: {ISTIO_VERSION: "1.24.0", NAMESPACE: default, CLUSTER_ID: Kubernetes}
        delta: false                          # true: DeltaAggregatedResources
        resources: [clusters, endpoints, routes]   # add listeners to take listeners from LDS
        merge: service                        # xDS clusters feed registry clusters of the same service; or none
        initial_fetch_timeout: "15s"
        secrets_dir: .meshd/istio-secrets    # where PEMs from SDS and inline TLS are written (0700): the default
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from configkit import Duration, Model, Name
from discovery.source import SourceContext, SourceType
from discovery.xds.source import XdsSource

_SERVER = re.compile(r"^(unix:///\S+|[^\s:/]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5})$")


class XdsTls(Model):
    ca: str                                   # the control plane's CA (PEM)
    cert: str | None = None                   # a client certificate and key, for mTLS
    key: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> "XdsTls":
        if (self.cert is None) != (self.key is None):
            raise ValueError("give cert and key together")
        return self


class XdsLocality(Model):
    region: str = ""
    zone: str = ""
    sub_zone: str = ""


class XdsNode(Model):
    """What meshd tells the control plane about itself (Istio: ``sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local``)."""

    id: str = Field(min_length=1)
    cluster: str = ""
    locality: XdsLocality = XdsLocality()
    metadata: dict[str, Any] = {}


class XdsSourceConfig(Model):
    type: Literal["xds"]
    name: Name = "xds"
    server: str
    tls: XdsTls | None = None
    node: XdsNode
    delta: bool = False
    resources: list[Literal["clusters", "endpoints", "routes", "listeners"]] = ["clusters", "endpoints", "routes"]
    merge: Literal["service", "none"] = "service"
    initial_fetch_timeout: Duration = 15.0    # a subscribed resource not served this long is taken as absent
    listener_addresses: Literal["loopback", "any"] = "loopback"   # where LDS listeners may bind
    # the private directory (0700, files 0600) where PEMs from SDS secrets and inline TLS are written for meshd's
    # TLS to load and watch; default .meshd/<name>-secrets next to the config
    secrets_dir: str | None = Field(default=None, min_length=1)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        if not _SERVER.match(value):
            raise ValueError(f"{value!r} is not host:port or unix:///path")
        return value

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: list[str]) -> list[str]:
        if "clusters" not in value:
            raise ValueError("resources must include clusters")
        return list(dict.fromkeys(value))


def _read(ctx: SourceContext, path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(ctx.resolve_path(path), "rb") as f:
        return f.read()


def build(spec: XdsSourceConfig, ctx: SourceContext) -> XdsSource:
    tls = None
    if spec.tls is not None:
        tls = (_read(ctx, spec.tls.ca), _read(ctx, spec.tls.key), _read(ctx, spec.tls.cert))
    node = spec.node
    return XdsSource(
        spec.name, spec.server, node_id=node.id, node_cluster=node.cluster,
        locality=(node.locality.region, node.locality.zone, node.locality.sub_zone), metadata=dict(node.metadata),
        delta=spec.delta, resources=tuple(spec.resources), merge=spec.merge,
        initial_fetch_timeout=spec.initial_fetch_timeout, tls=tls, route_names=ctx.route_names,
        publish_routes=ctx.publish_routes, publish_listeners=ctx.publish_listeners,
        listener_addresses=spec.listener_addresses,
        secrets_dir=str(ctx.resolve_path(spec.secrets_dir or f".meshd/{spec.name}-secrets")))


SOURCE = SourceType(XdsSourceConfig, XdsSource, build, routes=True)
