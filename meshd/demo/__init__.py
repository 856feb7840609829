"""``meshd demo``: meshd plus two demo providers on loopback, no external server.

Two HTTP providers (``version: v1`` and ``version: v2``, :mod:`meshd.demo.backend`) run in the same
process; a ``file`` discovery source feeds them to meshd from a clusters file in a temporary directory (edit
it while the demo runs: changes apply within a second). Dual mode: one Dubbo interface has a provider in
that file and one served by a small in-process xDS control plane (:mod:`meshd.demo.ads`, endpoints from
``xds-endpoints.yaml``: edit it for an EDS push); ``meshd call`` reaches both. The demo prints the exact
lines to try and runs until Ctrl-C.

Default ports are the canonical ones (proxy 15001, admin 15000, providers 18081/18082); any that is
taken is replaced by a free port, and the printed lines say which.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from pathlib import Path

import yaml

from meshd.app import Meshd, setup_logging
from meshd.config import build_config
from meshd.demo.ads import DemoControlPlane
from meshd.demo.backend import DemoBackend, DemoDubboProvider

INTERFACE = "org.example.DemoService"
#: The interface as an Istio ServiceEntry host names it (lower case): dual mode merges it into the interface.
XDS_CLUSTER = f"outbound|20880||{INTERFACE.lower()}"

CLUSTERS = """\
# meshd demo: endpoints of the cluster 'backend'. Edit and save: meshd applies it within a second.
# Try setting the v2 weight to 0, or removing an endpoint, then watch /clusters.
clusters:
  - name: backend
    lb_policy: weighted_round_robin
    endpoints:
      - {{address: "127.0.0.1:{v1}", weight: 100, metadata: {{version: v1}}}}
      - {{address: "127.0.0.1:{v2}", weight: 100, metadata: {{version: v2}}}}
  - name: org.example.DemoService       # a Dubbo interface, as a registry would name it
    endpoints:
      - {{address: "127.0.0.1:{dubbo}", metadata: {{version: 1.0.0}}}}
"""

XDS_ENDPOINTS = """\
# meshd demo: what the demo's xDS control plane serves for {cluster}.
# meshd merges it into the interface org.example.DemoService (dual mode). Edit and save: an EDS push.
endpoints:
  - "127.0.0.1:{port}"
"""


def _port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def demo_config(workdir: Path, proxy: int, admin: int, rpc: int, xds: str) -> dict:
    return {
        "admin": {"address": f"127.0.0.1:{admin}"},
        "listeners": [{"name": "http-egress", "address": f"127.0.0.1:{proxy}", "protocol": "http",
                       "route_config": "main"},
                      {"name": "rpc-egress", "address": f"127.0.0.1:{rpc}", "protocol": "auto"}],
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
        "discovery": [{"type": "file", "name": "demo-file", "path": str(workdir / "clusters.yaml")},
                      {"type": "xds", "name": "demo-xds", "server": xds, "merge": "service",
                       "initial_fetch_timeout": "5s", "node": {"id": "sidecar~127.0.0.1~demo.default~default.svc"
                                                                     ".cluster.local", "cluster": "demo"}}],
        "access_log": {"path": "-"},
    }


async def _demo() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="meshd-demo-"))
    v1 = await DemoBackend("demo-provider-v1", port=_port(18081)).start()
    v2 = await DemoBackend("demo-provider-v2", port=_port(18082)).start()
    from_file = await DemoDubboProvider("dubbo-provider-from-file", port=_port(20881)).start()
    from_xds = await DemoDubboProvider("dubbo-provider-from-xds", port=_port(20882)).start()
    spare = await DemoDubboProvider("dubbo-provider-from-xds-2", port=_port(20883)).start()
    (workdir / "clusters.yaml").write_text(CLUSTERS.format(v1=v1.port, v2=v2.port, dubbo=from_file.port))
    (workdir / "xds-endpoints.yaml").write_text(XDS_ENDPOINTS.format(cluster=XDS_CLUSTER, port=from_xds.port))
    control_plane = await DemoControlPlane(XDS_CLUSTER, workdir / "xds-endpoints.yaml").start()
    proxy, admin, rpc = _port(15001), _port(15000), _port(20880)
    config = build_config(demo_config(workdir, proxy, admin, rpc, control_plane.address), base_dir=workdir)
    (workdir / "meshd.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    app = Meshd(config)
    await app.start()
    p, a = f"http://127.0.0.1:{proxy}", f"http://127.0.0.1:{admin}"
    meshd = shutil.which("meshd") or f"{sys.executable} -m meshd"
    print(f"""
meshd demo is running: proxy {p}, admin {a}, providers v1 :{v1.port} and v2 :{v2.port}; Dubbo on :{rpc} for
{INTERFACE}, its providers found in a file (:{from_file.port}) and through xDS (:{from_xds.port}).

  curl -s {p}/hello                       # weighted round robin over v1 and v2 (see "server")
  curl -s {p}/v2/hello -i                 # subset routing: only version=v2, x-meshd-subset header added
  curl -s {p}/hello -H 'x-backend-status: 503'   # a 5xx is retried on the other provider, then returned
  curl -s {a}/clusters                    # endpoints, metadata, health, sources
  curl -s {a}/routes
  curl -s {a}/stats/prometheus | grep meshd_requests
  curl -s {a}/config_dump

  for i in 1 2 3 4; do {meshd} call dubbo://127.0.0.1:{rpc} {INTERFACE} sayHello '"meshd"' --version 1.0.0; done
                                          # dual mode: the file's provider and the xDS one answer in turn

Edit {workdir / 'clusters.yaml'} to change endpoints live (config: {workdir / 'meshd.yaml'}).
Edit {workdir / 'xds-endpoints.yaml'} (try port {spare.port}) to push an EDS change from the control plane.
Press Ctrl-C to stop.
""", flush=True)
    try:
        await app.run_until_signal()
    finally:
        for server in (v1, v2, from_file, from_xds, spare, control_plane):
            await server.stop()
    print("meshd demo stopped.")
    return 0


def demo_command(log_level: str = "info") -> int:
    setup_logging(log_level)
    import uvloop
    return uvloop.run(_demo())
