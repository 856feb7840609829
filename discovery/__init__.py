"""Service discovery: one cluster model (:mod:`discovery.model`) fed by adapters (file, ZooKeeper, ...).

This package is a leaf: it imports nothing else of meshd's, so the model can be reused alone.
"""

from discovery.model import ClusterDiff, ClusterModel, Endpoint, EndpointSpec, Health

__all__ = ["ClusterDiff", "ClusterModel", "Endpoint", "EndpointSpec", "Health"]
