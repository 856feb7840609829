"""Test your Dubbo and SOFA services against meshd in containers: copy this file into your suite.

Needs ``pip install 'meshd[test]'`` (its pytest plugin loads by itself) and a Docker engine. The demo
providers below stand in for your services: start yours instead, and call through meshd with your client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import quote_plus

import pytest

from integration import faults, peers

DUBBO_SERVICE = "org.example.DemoService"     # your Dubbo interface
SOFA_SERVICE = "com.example.Calc"             # your SOFA (Bolt) interface


def start_provider(script: str, *args: str):
    """Start one of your providers on a free loopback port; return (process, port)."""
    if not peers.installed():
        pytest.skip(peers.missing_reason() or "demo providers not installed: python -m integration.peers install")
    return peers.start_server(script, "--port", "0", *args)


@pytest.fixture
def dubbo_service(zk_client):
    """Your Dubbo provider, registered in ZooKeeper as a Dubbo SDK does (an ephemeral provider URL node)."""
    process, port = start_provider("dubbo_provider.js", "--version", "1.0.0")
    url = (f"dubbo://127.0.0.1:{port}/{DUBBO_SERVICE}?interface={DUBBO_SERVICE}&version=1.0.0"
           "&side=provider&dubbo=2.0.2&methods=sayHello,echo")
    zk_client.ensure_path(f"/dubbo/{DUBBO_SERVICE}/providers")
    zk_client.create(f"/dubbo/{DUBBO_SERVICE}/providers/{quote_plus(url, safe='')}", b"", ephemeral=True)
    yield f"127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def sofa_service(zk_client):
    """Your SOFA provider, registered in the SOFARPC layout (empty node data = online)."""
    process, port = start_provider("bolt_server.js", "--interface", SOFA_SERVICE, "--version", "1.0")
    url = f"bolt://127.0.0.1:{port}?version=1.0&uniqueId=&protocol=bolt&serialization=hessian2&weight=100"
    zk_client.ensure_path(f"/sofa-rpc/{SOFA_SERVICE}/providers")
    zk_client.create(f"/sofa-rpc/{SOFA_SERVICE}/providers/{quote_plus(url, safe='')}", b"", ephemeral=True)
    yield f"127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def sidecar(meshd, zookeeper, zk_chroot, dubbo_service, sofa_service):
    """meshd in a container, finding both services through ZooKeeper (under this test's chroot)."""
    zk = {"type": "zookeeper", "servers": zookeeper.address, "chroot": zk_chroot}
    return meshd({
        "listeners": [{"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo"},
                      {"name": "bolt", "address": "127.0.0.1:0", "protocol": "bolt"}],
        "discovery": [{**zk, "name": "zk-dubbo", "layout": "dubbo", "services": [DUBBO_SERVICE]},
                      {**zk, "name": "zk-sofa", "layout": "sofarpc", "services": [SOFA_SERVICE]}],
    })


def meshd_call(sidecar, protocol: str, service: str, method: str, *args, version: str) -> subprocess.CompletedProcess:
    """Call through meshd as your consumer app would; here with the ``meshd call`` client (JSON in, JSON out)."""
    target = f"{protocol}://{sidecar.listener_address(protocol)}"
    return subprocess.run([sys.executable, "-m", "meshd", "call", target, service, method,
                           *map(json.dumps, args), "--version", version], capture_output=True, text=True, timeout=30)


def test_meshd_discovers_my_services(sidecar, dubbo_service, sofa_service):
    clusters = {c["name"]: c for c in sidecar.admin_get("/clusters").json()["clusters"]}
    assert [e["address"] for e in clusters[DUBBO_SERVICE]["endpoints"]] == [dubbo_service]
    assert [e["address"] for e in clusters[SOFA_SERVICE]["endpoints"]] == [sofa_service]


def test_my_services_answer_through_meshd(sidecar):
    hello = meshd_call(sidecar, "dubbo", DUBBO_SERVICE, "sayHello", "team", 3, version="1.0.0")
    assert hello.returncode == 0, hello.stderr
    assert json.loads(hello.stdout) == "hello team x3"
    total = meshd_call(sidecar, "bolt", SOFA_SERVICE, "add", 2, 40, version="1.0")
    assert total.returncode == 0, total.stderr
    assert json.loads(total.stdout) == 42


def test_a_rule_pushed_at_runtime_protects_my_service(sidecar):
    rule = [{"resource": f"{DUBBO_SERVICE}:sayHello", "threshold": 0}]     # Sentinel flow rule, Go dialect
    assert sidecar.admin_put("/rules/flow?dialect=go", rule).status == 200
    blocked = meshd_call(sidecar, "dubbo", DUBBO_SERVICE, "sayHello", "team", 3, version="1.0.0")
    assert blocked.returncode == 1 and "flow reject check blocked" in blocked.stderr

    assert sidecar.admin_put("/rules/flow?dialect=go", []).status == 200
    allowed = meshd_call(sidecar, "dubbo", DUBBO_SERVICE, "sayHello", "team", 3, version="1.0.0")
    assert allowed.returncode == 0, allowed.stderr


def test_my_service_is_reachable_after_a_meshd_restart(sidecar):
    faults.restart_meshd(sidecar)         # docker restart, then waits until meshd is ready again
    again = meshd_call(sidecar, "dubbo", DUBBO_SERVICE, "sayHello", "again", 1, version="1.0.0")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == "hello again x1"
