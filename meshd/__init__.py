"""meshd: a service-governance sidecar for Dubbo, SOFA Bolt and HTTP services."""

__version__ = "0.1.0"
