"""Istio's naming conventions, read back from the resources istiod sends.

- Cluster names (``pilot/pkg/model/service.go`` BuildSubsetKey / ParseSubsetKey):
  ``direction|port|subset|hostname`` (``outbound|9080|v1|reviews.default.svc.cluster.local``, no subset:
  ``outbound|9080||reviews...``), and the DNS-SRV form used as mTLS SNI,
  ``outbound_.9080_.v1_.reviews.default.svc.cluster.local`` (no subset: ``outbound_.9080_._.reviews...``).
  :func:`parse_istio_cluster_name` returns ``{direction, port, subset, host}`` or None when the name is
  not Istio's. It is stricter than ParseSubsetKey, which never fails: the direction must be ``inbound``
  or ``outbound`` and the port a number, so an ordinary name containing ``|`` is not mistaken for one.
- Endpoint telemetry metadata (``pilot/pkg/networking/util/util.go`` AppendLbEndpointMetadata):
  ``filter_metadata["istio"]["workload"] = "<workload>;<ns>;<canonical-svc>;<canonical-rev>;<cluster-id>"``.
  :func:`parse_istio_workload` gives meshd's metadata keys for it: ``app`` (canonical service),
  ``version`` (canonical revision), ``istio.namespace``, ``istio.workload_name``, ``istio.cluster_id``;
  empty parts are left out, and a value with fewer than four parts gives nothing (it is telemetry, not a
  reason to NACK).
"""

from __future__ import annotations

_DIRECTIONS = ("inbound", "outbound")


def parse_istio_cluster_name(name: str) -> dict[str, str] | None:
    """``"outbound|9080|v1|reviews.default.svc.cluster.local"`` → ``{"direction": "outbound", "port": "9080",
    "subset": "v1", "host": "reviews.default.svc.cluster.local"}``; also the DNS-SRV form; None otherwise."""
    if name.startswith(("outbound_.", "inbound_.")):
        parts = name.split(".", 3)
        if len(parts) != 4 or not all(p.endswith("_") for p in parts[:3]):
            return None
        direction, port, subset = (p[:-1] for p in parts[:3])
        host = parts[3]
    else:
        parts = name.split("|")
        if len(parts) != 4:
            return None
        direction, port, subset, host = parts
    if direction not in _DIRECTIONS or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if not host and direction == "outbound":
        return None
    return {"direction": direction, "port": port, "subset": subset, "host": host}


def parse_istio_workload(workload: str) -> dict[str, str]:
    """``"reviews-v1;default;reviews;v1;Kubernetes"`` → ``{"app": "reviews", "version": "v1",
    "istio.namespace": "default", "istio.workload_name": "reviews-v1", "istio.cluster_id": "Kubernetes"}``."""
    parts = workload.split(";")
    if len(parts) < 4:
        return {}
    parts += [""] * (5 - len(parts))
    keys = ("istio.workload_name", "istio.namespace", "app", "version", "istio.cluster_id")
    return {key: value for key, value in zip(keys, parts) if value}
