"""anthunder (PyPI, Ant's Python sofa-bolt library written for MOSN) against meshd's SOFA mesh API.

A second client nobody here wrote, next to sofa-rpc-node: an anthunder provider publishes through
``registry_api.sofa`` with its real request (``providerMetaInfo.protocol: "1"``, SOFA's code for bolt) into a
real ZooKeeper in the SOFARPC layout; an anthunder consumer subscribes through the API and sends its calls,
protobuf bodies with Java-shaped SOFA headers, to meshd's Bolt port. anthunder hard-codes the mesh's
addresses (HTTP 127.0.0.1:13330, Bolt 127.0.0.1:12220), so this test uses the fixed ports and fails at once,
naming the port, when something else holds one.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.request
from typing import Any, Callable
from urllib.parse import unquote_plus

import pytest
from kazoo.exceptions import NoNodeError
from prometheus_client.parser import text_string_to_metric_families

from integration import peers
from integration.ports import free_port
from integration.process import MeshdProcess
from integration.zookeeper import ZooKeeperServer, fresh_chroot

pytestmark = [pytest.mark.peers, pytest.mark.zookeeper]

MESH_HTTP, MESH_BOLT = 13330, 12220          # sofa-rpc MeshConstants; anthunder's MeshClient / _BaseClient
GREETER = "com.example.pb.GreeterPb"         # integration/peers/anthunder_pb.py
SERVICE = f"{GREETER}:1.0"
PROVIDERS = f"/sofa-rpc/{GREETER}/providers"


@pytest.fixture(scope="module")
def zk_server():
    reason = ZooKeeperServer.available()
    if reason:
        pytest.skip(reason)
    with ZooKeeperServer(tick_time_ms=500) as server:
        yield server


@pytest.fixture
def zk(zk_server, request):
    """(chroot, a kazoo client inside it)."""
    with fresh_chroot(zk_server, request.node.name) as chroot:
        client = zk_server.kazoo_client(chroot)
        try:
            yield chroot, client
        finally:
            client.stop()
            client.close()


@pytest.fixture(scope="module")
def anthunder() -> None:
    """The anthunder virtualenv (``make peers`` installs it; a no-op when the stamp matches)."""
    peers.install(npm=False, log=lambda msg: print(msg, file=sys.stderr))


def require_free(port: int) -> None:
    """Fail now, naming the port, when a listener holds it (anthunder cannot be pointed elsewhere)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # a TIME_WAIT left by a last run is fine
        try:
            probe.bind(("127.0.0.1", port))
            return
        except OSError as exc:
            reason = exc.strerror
    pytest.fail(f"fixed mesh port 127.0.0.1:{port} is in use ({reason}): anthunder only talks to {MESH_HTTP} "
                f"(HTTP) and {MESH_BOLT} (Bolt); stop what holds it (`ss -ltnp 'sport = :{port}'`) and rerun",
                pytrace=False)


@pytest.fixture
def mesh(meshd_run: Callable[..., MeshdProcess], zk_server, zk) -> MeshdProcess:
    for port in (MESH_HTTP, MESH_BOLT):
        require_free(port)
    source = {"type": "zookeeper", "name": "zk", "servers": zk_server.address, "chroot": zk[0], "layout": "sofarpc",
              "services": [], "sync_timeout": "5s"}
    m = meshd_run({"listeners": [], "discovery": [source], "access_log": {"path": None},
                   "registry_api": {"sofa": {"address": f"127.0.0.1:{MESH_HTTP}", "registry": "zk",
                                             "bolt_address": f"127.0.0.1:{MESH_BOLT}"}}})
    assert m.port("sofa-mesh-bolt") == MESH_BOLT
    return m


# ----------------------------------------------------------------------------------------- helpers
def api(path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{MESH_HTTP}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def endpoints(m: MeshdProcess) -> dict[str, dict] | None:
    """The Greeter cluster's endpoints by address; None when there is no such cluster."""
    found = next((c for c in m.admin_json("/clusters")["clusters"] if c["name"] == GREETER), None)
    return None if found is None else {e["address"]: e for e in found["endpoints"]}


def bolt_requests(m: MeshdProcess) -> dict[str, float]:
    """meshd's count of requests on the mesh Bolt listener to the Greeter cluster, by outcome."""
    text = m.admin("/stats/prometheus")[1]
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (sample.name == "meshd_requests_total" and labels.get("listener") == "sofa-mesh-bolt"
                    and labels.get("cluster") == GREETER):
                out[labels["outcome"]] = out.get(labels["outcome"], 0) + sample.value
    return out


def providers(client) -> list[str]:
    try:
        return [unquote_plus(name) for name in client.get_children(PROVIDERS)]
    except NoNodeError:
        return []


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


def expect(proc: peers.NodeProcess, event: str, timeout: float = 30) -> dict:
    line = proc.wait_json(lambda o: o.get("event") in (event, "error"), timeout)
    assert line["event"] == event, f"anthunder provider: {line}; stderr: {''.join(proc.stderr)[-1500:]}"
    return line


def consumer(*args: Any) -> list[dict]:
    """The anthunder consumer's JSON lines (it must get its application and subscription through)."""
    out = peers.run_python("anthunder", "anthunder_consumer", *args, timeout=120)
    lines = peers.json_lines(out.stdout)
    assert out.returncode == 0 and lines and lines[-1]["event"] == "summary", (out.stdout[-2000:], out.stderr[-2000:])
    return lines


# ------------------------------------------------------------------------------------------- test
def test_anthunder_provider_and_consumer_through_the_fixed_mesh_ports(anthunder, mesh, zk):
    port = free_port()
    provider = peers.start_python("anthunder", "anthunder_provider", "--port", port, "--server-id", "py-1",
                                  "--zone", "zone-a", "--data-center", "dc1")
    try:
        expect(provider, "listening")
        expect(provider, "published")            # its own request: protocol "1", port as a string, DEFAULT
        snapshot = api("/services")
        assert snapshot["application"] == {"appName": "anthunder-provider", "dataCenter": "dc1", "zone": "zone-a"}
        [published] = snapshot["published"]
        assert (published["serviceName"], published["address"]) == (SERVICE, f"127.0.0.1:{port}")
        [url] = providers(zk[1])
        assert url == published["url"] and url.startswith(f"bolt://127.0.0.1:{port}?version=1.0&uniqueId=&")
        query = url.partition("?")[2].split("&")
        for param in (f"interface={GREETER}", "protocol=bolt", "serialization=protobuf",
                      "appName=anthunder-provider", "v=4.0", "zone=zone-a"):
            assert param in query, (param, url)

        lines = consumer("--count", 10, "--name", "mesh")
        assert lines[0] == {"event": "subscribed", "interface": SERVICE, "address": ["127.0.0.1", MESH_BOLT]}
        results = [x for x in lines if x["event"] == "result"]
        assert [r.get("value") for r in results] == [
            {"result": f"hello mesh-{i}", "server": "py-1", "n": i} for i in range(10)], results[:3]
        assert bolt_requests(mesh) == {"ok": 10}, "every call crossed meshd's Bolt listener"
        [subscribed] = api("/services")["subscribed"]
        assert subscribed["serviceName"] == SERVICE
        ep = (endpoints(mesh) or {}).get(f"127.0.0.1:{port}")
        assert ep is not None, endpoints(mesh)
        assert (ep["version"], ep["group"], ep["zone"], ep["enabled"]) == ("1.0", "", "zone-a", True), ep
        for key, value in {"protocol": "bolt", "serialization": "protobuf", "appName": "anthunder-provider",
                           "v": "4.0"}.items():
            assert ep["metadata"].get(key) == value, (key, ep)

        provider.proc.stdin.write("unpublish\n")
        provider.proc.stdin.flush()
        expect(provider, "unpublished")
        wait_for(lambda: endpoints(mesh) == {}, 2.0, "meshd dropped the unpublished provider")
        assert providers(zk[1]) == [] and api("/services")["published"] == []

        lines = consumer("--count", 2, "--unsubscribe", "--timeout-ms", 2000)
        assert [r["ok"] for r in lines if r["event"] == "result"] == [False, False], "no provider is left"
        assert lines[-2]["event"] == "unsubscribed" and api("/services")["subscribed"] == []
        wait_for(lambda: endpoints(mesh) is None, 2.0, "cluster withdrawn after the last subscription")
    finally:
        provider.stop()


def test_anthunder_through_the_mesh_api_on_sofaregistry(anthunder, meshd_run, sofaregistry_server):
    """The same clients with ``registry: sofareg``: the publication is a PublisherRegister at the session server,
    and the consumer's calls reach the provider through meshd's subscription."""
    for mesh_port in (MESH_HTTP, MESH_BOLT):
        require_free(mesh_port)
    source = {"type": "sofaregistry", "name": "sofareg", "servers": sofaregistry_server.address, "app": "mesh",
              "zone": "zone-a", "sync_timeout": "3s"}
    mesh = meshd_run({"listeners": [], "discovery": [source], "access_log": {"path": None},
                      "registry_api": {"sofa": {"address": f"127.0.0.1:{MESH_HTTP}", "registry": "sofareg",
                                                "bolt_address": f"127.0.0.1:{MESH_BOLT}"}}})
    port = free_port()
    provider = peers.start_python("anthunder", "anthunder_provider", "--port", port, "--server-id", "py-2",
                                  "--zone", "zone-a", "--data-center", "dc1")
    try:
        expect(provider, "listening")
        expect(provider, "published")
        [pub] = sofaregistry_server.publishers(f"{SERVICE}@DEFAULT")
        assert pub.zone == "zone-a" and pub.app == "anthunder-provider"
        query = pub.data[0].partition("?")[2].split("&")
        assert pub.data[0].startswith(f"127.0.0.1:{port}?") and "p=1" in query and "_SERIALIZETYPE=protobuf" in query

        lines = consumer("--count", 5, "--name", "sofareg")
        results = [x for x in lines if x["event"] == "result"]
        assert [r.get("value") for r in results] == [
            {"result": f"hello sofareg-{i}", "server": "py-2", "n": i} for i in range(5)], results[:3]
        assert bolt_requests(mesh) == {"ok": 5}

        provider.proc.stdin.write("unpublish\n")
        provider.proc.stdin.flush()
        expect(provider, "unpublished")
        wait_for(lambda: not sofaregistry_server.publishers(f"{SERVICE}@DEFAULT"), 2.0, "withdrawn at the server")
        wait_for(lambda: not endpoints(mesh), 2.0, "meshd dropped the unpublished provider")
    finally:
        provider.stop()
