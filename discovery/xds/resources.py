"""The xDS resource decoders, one per resource type: ``Any`` from the wire → frozen, typed value.

This facade is what the xDS source codes against; the decoders live by resource type:

==========================================  ============================  =========================================
type_url (``type.googleapis.com/…``)        decoder                       module
==========================================  ============================  =========================================
``envoy.config.cluster.v3.Cluster``         :func:`decode_cluster`        :mod:`discovery.xds.clusters`
``envoy.config.endpoint.v3.ClusterLoad…``   :func:`decode_assignment`     :mod:`discovery.xds.endpoints`
``envoy.config.route.v3.RouteConfiguration``  :func:`decode_route_configuration`  :mod:`discovery.xds.routes`
``envoy.config.listener.v3.Listener``       :func:`decode_listener`       :mod:`discovery.xds.listeners`
``envoy.extensions.transport_sockets.tls``  :func:`decode_secret`         :mod:`discovery.xds.tls`
``.v3.Secret`` (SDS)
==========================================  ============================  =========================================

Contract (decode → validate → freeze, grpc-go's ``xdsresource/unmarshal_*.go``): each decoder returns a
frozen dataclass whose mappings are read-only and whose lists are tuples, or raises :class:`ResourceError`
and nothing else — its message names the resource and the field, and is what goes into the NACK's
``error_detail``. Unknown fields are ignored; values meshd cannot honour are named. An ``Any`` with another
type_url, or bytes that do not decode, is a ResourceError too; an ``Any`` wrapped in
``envoy.service.discovery.v3.Resource`` is unwrapped. The config-shaped parts (``XdsCluster.settings``,
``XdsRoutes.config``, ``XdsListener.tls``) are what ``meshd.config.ClusterSettings`` / ``RouteConfiguration``
/ ``ListenerTls`` validate, which this package cannot import: the bounds meshd enforces are checked here
again, to name the xDS field. TLS settings name their files by :class:`~discovery.xds.tls.Pem` placeholders
(a path, inline bytes, an SDS secret) that the source turns into paths (:func:`~discovery.xds.tls.resolve`).
"""

from __future__ import annotations

from typing import Any, Callable

from discovery.xds.clusters import DISABLED, XdsCluster, decode_cluster
from discovery.xds.decoding import TYPE_PREFIX, ResourceError
from discovery.xds.endpoints import XdsAssignment, decode_assignment
from discovery.xds.istio import parse_istio_cluster_name, parse_istio_workload
from discovery.xds.listeners import XdsListener, decode_listener
from discovery.xds.routes import XdsRoutes, decode_route_configuration
from discovery.xds.tls import Pem, XdsSecret, decode_secret

CLUSTER_TYPE = TYPE_PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = TYPE_PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTE_TYPE = TYPE_PREFIX + "envoy.config.route.v3.RouteConfiguration"
LISTENER_TYPE = TYPE_PREFIX + "envoy.config.listener.v3.Listener"
SECRET_TYPE = TYPE_PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"

DECODERS: dict[str, Callable[[Any], Any]] = {
    CLUSTER_TYPE: decode_cluster,
    ENDPOINT_TYPE: decode_assignment,
    ROUTE_TYPE: decode_route_configuration,
    LISTENER_TYPE: decode_listener,
    SECRET_TYPE: decode_secret,
}
"""type_url → decoder, for a source that dispatches on the DiscoveryResponse's type_url."""

__all__ = [
    "CLUSTER_TYPE", "DECODERS", "DISABLED", "ENDPOINT_TYPE", "LISTENER_TYPE", "Pem", "ROUTE_TYPE", "ResourceError",
    "SECRET_TYPE", "XdsAssignment", "XdsCluster", "XdsListener", "XdsRoutes", "XdsSecret", "decode_assignment",
    "decode_cluster", "decode_listener", "decode_route_configuration", "decode_secret", "parse_istio_cluster_name",
    "parse_istio_workload",
]
