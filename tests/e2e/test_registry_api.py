"""End to end: the app-facing registry APIs of ``meshd run`` against a real ZooKeeper.

The SOFA mesh registry API is driven with the requests sofa-rpc's ``MeshApiClient`` sends (JSON as
``text/plain``); the app's provider is a real sofa-rpc-node Bolt server and the app's calls come from a real
sofa-rpc-node client through meshd's Bolt listener (the 12220-style port, a free one here). The Dubbo pub/sub
API is driven with MOSN's bodies; the app's provider is a real Dubbo provider (sofa-rpc-node + dubbo-remoting),
an apache-dubbo-js consumer finds it in ZooKeeper, and the app's own calls go through meshd's dubbo listener.
Every step checks the ZooKeeper tree. Bad bodies and an unreachable registry leave nothing registered.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

import pytest

from integration import peers
from integration.process import free_port
from integration.zookeeper import ZooKeeperProxy
from tests.e2e.test_zookeeper_discovery import (  # noqa: F401 - fixtures shared with the discovery suite
    IFACE, api_get, api_post, children, clusters, endpoints, meshd_config, needs_peers, source_status, wait_for,
    zk_root, zk_server, zk_source, zk_writer,
)

pytestmark = pytest.mark.zookeeper
CALC = "com.example.Calc"
SOFA_PROVIDERS, SOFA_CONSUMERS = f"/sofa-rpc/{CALC}/providers", f"/sofa-rpc/{CALC}/consumers"
DUBBO_PROVIDERS, DUBBO_CONSUMERS = f"/dubbo/{IFACE}/providers", f"/dubbo/{IFACE}/consumers"


def sofa_api(source: dict, **extra: Any) -> tuple[dict, str]:
    api = f"127.0.0.1:{free_port()}"
    return meshd_config({**source, "services": []}, listeners=[],
                        registry_api={"sofa": {"address": api, "registry": "zk", "bolt_address": "127.0.0.1:0",
                                               **extra}}), api


def dubbo_api(source: dict) -> tuple[dict, str]:
    api = f"127.0.0.1:{free_port()}"
    return meshd_config({**source, "services": []},
                        registry_api={"dubbo": {"address": api, "registry": "zk"}}), api


def meshd_consumers(zk) -> list[str]:
    """Consumer nodes but apache-dubbo-js's own (it stays until that client's session times out)."""
    return [c for c in children(zk, DUBBO_CONSUMERS) if "application=meshd-it-consumer" not in c]


def node_results(out) -> list[dict]:
    results = [x for x in peers.json_lines(out.stdout) if x.get("event") == "result"]
    assert results, f"no results from the peer:\n{out.stdout[-1500:]}\n{out.stderr[-1500:]}"
    return results


def bolt_calls(port: int, *args: str) -> list[Any]:
    """Values of 5 calls made by a sofa-rpc-node client to meshd's Bolt listener (every call must succeed)."""
    out = peers.run_node("bolt_client.js", "--address", f"127.0.0.1:{port}", "--interface", CALC, "--count", "5",
                         *args)
    results = node_results(out)
    assert all(r["ok"] for r in results), results[:2]
    return [r["value"] for r in results]


def publish_body(service_name: str, port: int, **properties: str) -> dict:
    """What sofa-rpc's MeshRegistry.buildPublishServiceRequest sends, plus anthunder's ``port`` (SOFARPC sends
    none; the sofa-rpc-node server here listens on a free port)."""
    return {"serviceName": service_name, "port": str(port), "protocolType": "bolt", "onlyPublishInCloud": False,
            "providerMetaInfo": {"protocol": "bolt", "version": "4.0", "serializeType": "hessian2",
                                 "appName": "calc-app", "properties": properties}}


def sofa_ok(api: str, path: str, body: Any) -> dict:
    status, reply = api_post(api, path, body)
    assert (status, reply["success"], reply["errorMessage"]) == (200, True, ""), reply
    return reply


def dubbo_ok(api: str, path: str, body: Any) -> dict:
    status, reply = api_post(api, path, body)
    assert (status, reply["err_no"], reply["err_msg"]) == (200, 0, ""), reply
    return reply


# --------------------------------------------------------------------------------------------- SOFA
@needs_peers
def test_sofa_mesh_api_full_cycle(meshd_run, zk_server, zk_root, zk_writer):
    config, api = sofa_api(zk_source(zk_server.address, zk_root, layout="sofarpc"))
    m = meshd_run(config)
    bolt = m.port("sofa-mesh-bolt")
    app, app_port = peers.start_server("bolt_server.js", "--interface", CALC, "--server-id", "calc-app")
    try:
        sofa_ok(api, "/configs/application", {"appName": "calc-app", "zone": "zone-a", "dataCenter": "dc1",
                                              "antShareCloud": False, "accessKey": "ak", "secretKey": "sk"})
        application = api_get(api, "/configs/application")[1]["application"]
        assert application == {"appName": "calc-app", "zone": "zone-a", "dataCenter": "dc1",
                               "antShareCloud": "false", "accessKey": "(set)", "secretKey": "(set)"}

        for _ in range(2):                 # a repeat is idempotent: still one node
            reply = sofa_ok(api, "/services/publish", publish_body(f"{CALC}:1.0", app_port, timeout="3000",
                                                                   weight="50"))
        [url] = children(zk_writer, SOFA_PROVIDERS)
        assert url == reply["url"] and url.startswith(f"bolt://127.0.0.1:{app_port}?version=1.0&uniqueId=&")
        for param in (f"interface={CALC}", "appName=calc-app", "serialization=hessian2", "protocol=bolt",
                      "zone=zone-a", "v=4.0", "timeout=3000", "weight=50", "dynamic=true"):
            assert f"&{param}&" in f"&{url.partition('?')[2]}&", (param, url)
        assert zk_writer.get(f"{SOFA_PROVIDERS}/{quote_plus(url, safe='*')}")[0] == b"\x01"
        assert CALC not in clusters(m), "nothing watches the interface before a subscription"

        reply = sofa_ok(api, "/services/subscribe", {"serviceName": f"{CALC}:1.0", "targetAppAddress": "",
                                                     "vipEnforce": False, "properties": {"timeout": "3000"}})
        assert reply["serviceName"] == f"{CALC}:1.0" and reply["datas"] == [url]
        [consumer] = children(zk_writer, SOFA_CONSUMERS)
        assert consumer.startswith("bolt://127.0.0.1?version=1.0&uniqueId=&") and "appName=calc-app" in consumer
        ep = endpoints(m, CALC)[f"127.0.0.1:{app_port}"]
        assert (ep["weight"], ep["zone"], ep["version"], ep["enabled"]) == (50, "zone-a", "1.0", True)
        snapshot = api_get(api, "/services")[1]
        assert [p["serviceName"] for p in snapshot["published"]] == [f"{CALC}:1.0"]
        assert snapshot["subscribed"][0]["datas"] == reply["datas"] and snapshot["bolt"].endswith(f":{bolt}")
        assert api_get(api, f"/services/{CALC}:1.0")[1]["subscribed"]["url"] == consumer

        assert bolt_calls(bolt, "--method", "add", "--args", "[2,3]") == [5] * 5
        assert bolt_calls(bolt, "--method", "whoami", "--args", "[]") == ["calc-app"] * 5

        assert sofa_ok(api, "/services/unsubscribe", {"serviceName": f"{CALC}:1.0"})["removed"] is True
        assert children(zk_writer, SOFA_CONSUMERS) == []
        wait_for(lambda: CALC not in clusters(m), 2.0, "cluster withdrawn after the last subscription")
        assert sofa_ok(api, "/services/unpublish", {"serviceName": f"{CALC}:1.0"})["removed"] is True
        assert children(zk_writer, SOFA_PROVIDERS) == []
        assert sofa_ok(api, "/services/unpublish", {"serviceName": f"{CALC}:1.0"})["removed"] is False
        assert api_get(api, f"/services/{CALC}:1.0")[0] == 404

        sofa_ok(api, "/services/publish", publish_body(f"{CALC}:1.0", app_port))
        sofa_ok(api, "/services/subscribe", {"serviceName": f"{CALC}:1.0"})
        assert len(children(zk_writer, SOFA_PROVIDERS)) == len(children(zk_writer, SOFA_CONSUMERS)) == 1
        assert m.terminate() == 0          # meshd stopping removes every node it wrote
        assert children(zk_writer, SOFA_PROVIDERS) == children(zk_writer, SOFA_CONSUMERS) == []
    finally:
        app.stop()


@needs_peers
def test_sofa_versions_and_unique_ids_select_their_providers_on_the_bolt_listener(meshd_run, zk_server, zk_root):
    config, api = sofa_api(zk_source(zk_server.address, zk_root, layout="sofarpc"))
    m = meshd_run(config)
    servers = {"plain": [], "blue": ["--unique-id", "blue"], "v2": ["--version", "2.0"]}
    nodes, names = [], {"plain": f"{CALC}:1.0", "blue": f"{CALC}:1.0:blue", "v2": f"{CALC}:2.0"}
    try:
        ports = {}
        for server_id, args in servers.items():
            node, ports[server_id] = peers.start_server("bolt_server.js", "--interface", CALC, "--server-id",
                                                        server_id, *args)
            nodes.append(node)
        for server_id, name in names.items():
            sofa_ok(api, "/services/publish", publish_body(name, ports[server_id]))
        for server_id, name in names.items():
            datas = sofa_ok(api, "/services/subscribe", {"serviceName": name})["datas"]
            assert [d.partition("?")[0] for d in datas] == [f"bolt://127.0.0.1:{ports[server_id]}"], (name, datas)
        bolt = m.port("sofa-mesh-bolt")
        assert bolt_calls(bolt, "--method", "whoami", "--args", "[]") == ["plain"] * 5
        assert bolt_calls(bolt, "--method", "whoami", "--args", "[]", "--unique-id", "blue") == ["blue"] * 5
        assert bolt_calls(bolt, "--method", "whoami", "--args", "[]", "--version", "2.0") == ["v2"] * 5
    finally:
        for node in nodes:
            node.stop()


def test_sofa_publish_takes_every_real_clients_body(meshd_run, zk_server, zk_root, zk_writer):
    """The publish bodies of SOFARPC, anthunder and MOSN's model (tests/unit/meshd/test_sofa_mesh_api.py cites
    the sources), numeric protocol codes mapped as SOFA maps them; each lands in ZooKeeper as SOFARPC writes it."""
    config, api = sofa_api(zk_source(zk_server.address, zk_root, layout="sofarpc"))
    meshd_run(config)
    sofa_ok(api, "/configs/application", {"appName": "calc-app", "zone": "zone-a"})
    meta = {"version": "4.0", "appName": "calc-app"}
    bodies = {
        "sofarpc": {"onlyPublishInCloud": False, "protocolType": "bolt", "providerMetaInfo": {
            **meta, "protocol": "bolt", "serializeType": "hessian2", "properties": {"sofa.group": "g1"}}},
        "anthunder": {"providerMetaInfo": {**meta, "protocol": "1", "serializeType": "protobuf"}, "port": "12201",
                      "protocolType": "DEFAULT", "onlyPublishInCloud": False},
        "mosn": {"providerMetaInfo": {**meta, "protocol": "1", "serializeType": "4"}},
        "tr": {"providerMetaInfo": {**meta, "protocol": "13"}, "protocolType": "DEFAULT", "port": 12203},
        "upper": {"providerMetaInfo": {**meta, "protocol": "BOLT"}, "protocolType": "Bolt", "port": 12204},
    }
    for unique_id, body in bodies.items():
        sofa_ok(api, "/services/publish", {"serviceName": f"{CALC}:1.0:{unique_id}", **body})
    urls = {dict(p.split("=", 1) for p in url.partition("?")[2].split("&"))["uniqueId"]: url
            for url in children(zk_writer, SOFA_PROVIDERS)}
    assert sorted(urls) == sorted(bodies)
    expected = {"sofarpc": ("bolt://127.0.0.1:12200", "hessian2"), "anthunder": ("bolt://127.0.0.1:12201", "protobuf"),
                "mosn": ("bolt://127.0.0.1:12200", "hessian2"), "tr": ("tr://127.0.0.1:12203", "hessian2"),
                "upper": ("bolt://127.0.0.1:12204", "hessian2")}
    for unique_id, (address, serialization) in expected.items():
        url = urls[unique_id]
        params = url.partition("?")[2].split("&")
        assert url.partition("?")[0] == address, url
        for param in (f"protocol={address.partition(':')[0]}", f"serialization={serialization}", "v=4.0",
                      "zone=zone-a", "appName=calc-app"):
            assert param in params, (param, url)
    assert "sofa.group=g1" in urls["sofarpc"].split("&")


# -------------------------------------------------------------------------------------------- Dubbo
@needs_peers
def test_dubbo_pubsub_api_full_cycle_with_apache_dubbo_js(meshd_run, zk_server, zk_root, zk_writer):
    config, api = dubbo_api(zk_source(zk_server.address, zk_root))
    m = meshd_run(config)
    app, app_port = peers.start_server("dubbo_provider.js", "--server-id", "dubbo-app")
    try:
        pub = {"registry": {"type": "zookeeper", "addr": zk_server.address},
               "service": {"interface": IFACE, "methods": ["sayHello", "echo"], "group": "", "version": "1.0.0",
                           "port": app_port, "application": "demo-app"}}
        for _ in range(2):                 # a repeat is idempotent: still one node
            reply = dubbo_ok(api, "/pub", pub)
        [url] = children(zk_writer, DUBBO_PROVIDERS)
        assert url == reply["url"] and url.startswith(f"dubbo://127.0.0.1:{app_port}/{IFACE}?")   # Java-style: a path
        query = url.partition("?")[2].split("&")
        assert query == sorted(query), "parameters sorted as URL.toFullString writes them"
        for param in ("anyhost=true", "application=demo-app", "dubbo=2.0.2", f"interface={IFACE}",
                      "methods=sayHello,echo", "side=provider", "version=1.0.0", "dynamic=true"):
            assert param in query, (param, url)

        out = peers.run_node("dubbo_consumer_zk.js", "--zk", zk_server.hosts(zk_root), "--count", "3")
        results = node_results(out)            # apache-dubbo-js read the node and called the app directly
        assert [r["value"] for r in results if r["ok"]] == ["hello world x7"] * 3, results

        reply = dubbo_ok(api, "/sub", {"registry": {"type": "zookeeper"},
                                       "service": {"interface": IFACE, "methods": ["sayHello"], "version": "1.0.0"}})
        assert reply["address"] == f"127.0.0.1:{m.port('dubbo')}"
        assert reply["url"] == f"dubbo://127.0.0.1:{m.port('dubbo')}/{IFACE}?version=1.0.0"
        assert [p.partition("?")[0] for p in reply["providers"]] == [f"dubbo://127.0.0.1:{app_port}/{IFACE}"]
        [consumer] = meshd_consumers(zk_writer)
        assert consumer.startswith(f"consumer://127.0.0.1/{IFACE}?") and "category=consumers" in consumer
        assert set(endpoints(m, IFACE)) == {f"127.0.0.1:{app_port}"}

        out = peers.run_node("dubbo_consumer.js", "--address", reply["address"], "--count", "5")
        assert [r["value"] for r in node_results(out)] == ["hello world x7"] * 5

        assert dubbo_ok(api, "/unsub", {"service": {"interface": IFACE, "version": "1.0.0"}})["removed"] == 1
        assert meshd_consumers(zk_writer) == []
        wait_for(lambda: IFACE not in clusters(m), 2.0, "cluster withdrawn after /unsub")
        assert dubbo_ok(api, "/unpub", {"service": {"interface": IFACE, "version": "1.0.0"}})["removed"] == 1
        assert children(zk_writer, DUBBO_PROVIDERS) == []
        assert dubbo_ok(api, "/unpub", {"service": {"interface": IFACE, "version": "1.0.0"}})["removed"] == 0
        snapshot = api_get(api, "/services")[1]
        assert (snapshot["published"], snapshot["subscribed"]) == ([], [])
    finally:
        app.stop()


# ----------------------------------------------------------------------------------------- failures
SOFA_BAD = [
    ("/services/publish", b"{nope", "body: invalid JSON at line 1 column 2"),
    ("/services/publish", b"[1]", "body: expected a JSON object, got an array"),
    ("/services/publish", b"{}", "serviceName: required"),
    ("/services/publish", {"serviceName": "not a name:1.0"}, "serviceName: 'not a name:1.0'"),
    ("/services/publish", {"serviceName": f"{CALC}:"}, "serviceName: 'com.example.Calc:': empty version"),
    ("/services/publish", {"serviceName": f"{CALC}:1.0", "port": "99999"}, "port: '99999' is not a port number"),
    ("/services/publish", {"serviceName": f"{CALC}:1.0", "providerMetaInfo": "bolt"},
     "providerMetaInfo: expected an object, got a string"),
    ("/services/publish", {"serviceName": f"{CALC}:1.0", "providerMetaInfo": {"properties": {"weight": "heavy"}}},
     "providerMetaInfo.properties.weight: 'heavy' is not an integer"),
    ("/services/publish", {"serviceName": f"{CALC}:1.0", "providerMetaInfo": {"properties": {"k": "a&b"}}},
     "providerMetaInfo.properties.k: 'a&b' is not a URL parameter value"),
    ("/services/publish", {"serviceName": f"{CALC}:1.0", "host": "10.0.0.1/x"}, "host: '10.0.0.1/x'"),
    ("/services/subscribe", {"serviceName": f"{CALC}:1.0", "properties": ["x"]},
     "properties: expected an object, got an array"),
    ("/services/subscribe", {"serviceName": f"{CALC}:1.0:blue:extra"}, "serviceName: 'com.example.Calc:1.0:blue:extra'"),
    ("/services/unsubscribe", {}, "serviceName: required"),
    ("/configs/application", {"appName": "my app"}, "appName: 'my app' is not a name"),
    ("/services/publish", {"serviceName": f"{CALC}:1.0", "providerMetaInfo": {"protocol": "7"}},
     "providerMetaInfo.protocol: '7' is not a SOFA protocol code (1 = bolt, 13 = tr)"),
    ("/services/publish", {"serviceName": f"{CALC}:1.0", "protocolType": "bo lt"},
     "protocolType: 'bo lt' is not a protocol name or a SOFA protocol code (1 = bolt, 13 = tr)"),
    ("/services/publish", {"serviceName": f"{CALC}:1.0", "providerMetaInfo": {"serializeType": "3"}},
     "providerMetaInfo.serializeType: '3' is not a SOFA serialization code"),
    ("/services/subscribe", {"serviceName": f"{CALC}:1.0", "protocolType": "99"},
     "protocolType: '99' is not a SOFA protocol code"),
]
DUBBO_BAD = [
    ("/pub", b"", "body: empty"),
    ("/pub", {}, "service: required"),
    ("/pub", {"service": {}}, "service.interface: required"),
    ("/pub", {"service": {"interface": "org.example.Demo Service"}}, "service.interface: 'org.example.Demo Service'"),
    ("/pub", {"service": {"interface": IFACE, "port": 0}}, "service.port: 0 is not a port number"),
    ("/pub", {"service": {"interface": IFACE, "methods": ["sayHello", "say hello"]}},
     "service.methods[1]: 'say hello' is not a method name"),
    ("/pub", {"service": {"interface": IFACE, "weight": -5}}, "service.weight: -5 is below 0"),
    ("/pub", {"service": {"interface": IFACE, "parameters": {"timeout": "soon"}}},
     "service.parameters.timeout: 'soon' is not an integer"),
    ("/sub", {"registry": {"type": "nacos"}, "service": {"interface": IFACE}}, "registry.type: 'nacos' is not supported"),
    ("/sub", {"service": {"interface": IFACE, "group": "a&b"}}, "service.group: 'a&b'"),
    ("/unsub", {"service": "x"}, "service: expected an object, got a string"),
]


def test_bad_bodies_get_400_naming_the_field_and_leave_nothing_registered(meshd_run, zk_server, zk_root, zk_writer):
    sofa, dubbo = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    m = meshd_run(meshd_config({**zk_source(zk_server.address, zk_root), "services": []}, registry_api={
        "sofa": {"address": sofa, "registry": "zk", "bolt_address": "127.0.0.1:0"},
        "dubbo": {"address": dubbo, "registry": "zk"}}))
    for api, cases, message_key in ((sofa, SOFA_BAD, "errorMessage"), (dubbo, DUBBO_BAD, "err_msg")):
        for path, body, expected in cases:
            raw = body if isinstance(body, bytes) else None
            status, reply = api_post(api, path, body, raw=raw)
            assert status == 400 and reply[message_key].startswith(expected), (path, body, reply)
            assert reply.get("success", False) is False and reply.get("err_no", 1) == 1
    assert zk_writer.get_children("/") == [], "no node was written"
    assert clusters(m) == {} and source_status(m)["watched_services"] == 0
    snapshot = api_get(sofa, "/services")[1]
    assert (snapshot["published"], snapshot["subscribed"]) == ([], [])
    assert dubbo_ok(dubbo, "/pub", {"service": {"interface": IFACE, "port": 20999}})["url"]   # still serving
    assert len(children(zk_writer, DUBBO_PROVIDERS)) == 1


def test_registry_unreachable_answers_503_and_registers_nothing(meshd_run, zk_server, zk_root, zk_writer):
    sofa, dubbo = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with ZooKeeperProxy(zk_server.address) as proxy:
        m = meshd_run(meshd_config({**zk_source(proxy.address, zk_root), "services": []}, registry_api={
            "sofa": {"address": sofa, "registry": "zk", "bolt_address": "127.0.0.1:0"},
            "dubbo": {"address": dubbo, "registry": "zk"}}))
        proxy.partition()
        wait_for(lambda: source_status(m)["connection"] != "connected", 5.0, "meshd noticed the partition")
        for api, path, body, key in (
                (dubbo, "/pub", {"service": {"interface": IFACE, "port": 20999}}, "err_msg"),
                (dubbo, "/sub", {"service": {"interface": IFACE}}, "err_msg"),
                (sofa, "/services/publish", publish_body(f"{CALC}:1.0", 12200), "errorMessage"),
                (sofa, "/services/subscribe", {"serviceName": f"{CALC}:1.0"}, "errorMessage")):
            status, reply = api_post(api, path, body)
            assert status == 503 and "registry zk unavailable" in reply[key] and "not connected" in reply[key], reply
        proxy.heal()
        wait_for(lambda: source_status(m)["connection"] == "connected", 10.0, "reconnected")
        assert source_status(m)["registrations"] == [] and source_status(m)["watched_services"] == 0
        assert zk_writer.get_children("/") == [], "nothing was registered, now or after the reconnection"
        assert api_get(dubbo, "/services")[1]["subscribed"] == []
        dubbo_ok(dubbo, "/sub", {"service": {"interface": IFACE}})            # the registry is back: it works
        assert len(children(zk_writer, DUBBO_CONSUMERS)) == 1
