"""meshd: a service-governance sidecar for Dubbo, SOFA Bolt and HTTP services."""

from meshd import compiled as _compiled

__version__ = "0.1.0"

_compiled.install()                           # before any hot-path module is imported (meshd/compiled.py)
