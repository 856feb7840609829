"""``meshd demo``: meshd plus two demo providers on loopback, no external server.

Two HTTP providers (``version: v1`` and ``version: v2``, :mod:`meshd.demo.backend`) run in the same
process; a ``file`` discovery source feeds them to meshd from a clusters file in a temporary directory (edit it while the demo runs:
changes apply within a second). The demo prints the exact ``curl`` lines to try and runs until Ctrl-C.

Default ports are the canonical ones (proxy 15001, admin 15000, providers 18081/18082); any that is
taken is replaced by a free port, and the printed lines say which.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import yaml

from meshd.app import Meshd, setup_logging
from meshd.config import build_config
from meshd.demo.backend import DemoBackend

CLUSTERS = """\
# meshd demo: endpoints of the cluster 'backend'. Edit and save: meshd applies it within a second.
# Try setting the v2 weight to 0, or removing an endpoint, then watch /clusters.
clusters:
  - name: backend
    lb_policy: weighted_round_robin
    endpoints:
      - {{address: "127.0.0.1:{v1}", weight: 100, metadata: {{version: v1}}}}
      - {{address: "127.0.0.1:{v2}", weight: 100, metadata: {{version: v2}}}}
"""


def _port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def demo_config(workdir: Path, proxy: int, admin: int) -> dict:
    return {
        "admin": {"address": f"127.0.0.1:{admin}"},
        "listeners": [{"name": "http-egress", "address": f"127.0.0.1:{proxy}", "protocol": "http",
                       "route_config": "main"}],
        "route_configs": [{"name": "main", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/v1/"}, "route": {"cluster": "backend", "metadata_match": {"version": "v1"}}},
            {"match": {"prefix": "/v2/"}, "route": {"cluster": "backend", "metadata_match": {"version": "v2"},
                                                    "timeout": "2s"},
             "response_headers_to_add": [{"header": {"key": "x-meshd-subset", "value": "v2"}}]},
            {"match": {"prefix": "/"}, "route": {
                "cluster": "backend",
                "retry_policy": {"retry_on": "connect-failure,reset,5xx", "num_retries": 2,
                                 "per_try_timeout": "500ms"}}},
        ]}]}],
        "discovery": [{"type": "file", "name": "demo-file", "path": str(workdir / "clusters.yaml")}],
        "access_log": {"path": "-"},
    }


async def _demo() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="meshd-demo-"))
    v1 = await DemoBackend("demo-provider-v1", port=_port(18081)).start()
    v2 = await DemoBackend("demo-provider-v2", port=_port(18082)).start()
    (workdir / "clusters.yaml").write_text(CLUSTERS.format(v1=v1.port, v2=v2.port))
    proxy, admin = _port(15001), _port(15000)
    config = build_config(demo_config(workdir, proxy, admin), base_dir=workdir)
    (workdir / "meshd.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    app = Meshd(config)
    await app.start()
    p, a = f"http://127.0.0.1:{proxy}", f"http://127.0.0.1:{admin}"
    print(f"""
meshd demo is running: proxy {p}, admin {a}, providers v1 :{v1.port} and v2 :{v2.port}.

  curl -s {p}/hello                       # weighted round robin over v1 and v2 (see "server")
  curl -s {p}/v2/hello -i                 # subset routing: only version=v2, x-meshd-subset header added
  curl -s {p}/hello -H 'x-backend-status: 503'   # a 5xx is retried on the other provider, then returned
  curl -s {a}/clusters                    # endpoints, metadata, health, sources
  curl -s {a}/routes
  curl -s {a}/stats/prometheus | grep meshd_requests
  curl -s {a}/config_dump

Edit {workdir / 'clusters.yaml'} to change endpoints live (config: {workdir / 'meshd.yaml'}).
Press Ctrl-C to stop.
""", flush=True)
    try:
        await app.run_until_signal()
    finally:
        await v1.stop()
        await v2.stop()
    print("meshd demo stopped.")
    return 0


def demo_command(log_level: str = "info") -> int:
    setup_logging(log_level)
    import uvloop
    return uvloop.run(_demo())
