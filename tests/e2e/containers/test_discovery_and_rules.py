"""End to end in containers: providers found through ZooKeeper, called through meshd, governed at runtime.

ZooKeeper and meshd run in containers (host network, 127.0.0.1, free ports); the providers and the
consumers are real third-party SDKs on the host (see ``mesh.py``). Each test has its own ZooKeeper
chroot and its own meshd; the ZooKeeper container is shared by the session.
"""

from __future__ import annotations

from collections import Counter

from tests.e2e.containers.mesh import BOLT_IFACE, DUBBO_IFACE, call, endpoints, values


def test_providers_registered_in_zookeeper_are_discovered_and_called_through_meshd(mesh):
    m = mesh(dubbo=2, bolt=2)

    found = endpoints(m.meshd)
    dubbo_eps, bolt_eps = found[DUBBO_IFACE], found[BOLT_IFACE]
    assert set(dubbo_eps) == {p.address for p in m.dubbo}
    assert set(bolt_eps) == {p.address for p in m.bolt}
    for ep in dubbo_eps.values():          # the Java-style URL, parameters kept as metadata
        assert (ep["version"], ep["sources"], ep["stale"]) == ("1.0.0", ["zk-dubbo"], False)
        assert ep["metadata"]["application"] in ("dubbo-1", "dubbo-2") and ep["metadata"]["side"] == "provider"
    for ep in bolt_eps.values():           # what sofa-rpc-node's own registry wrote
        assert (ep["version"], ep["sources"], ep["stale"]) == ("1.0", ["zk-sofa"], False)
        assert ep["metadata"]["appName"] == "meshd-e2e" and ep["metadata"]["language"] == "nodejs"

    assert values(call(m.meshd, "dubbo", "sayHello", ["world", 7], count=10, concurrency=5)) == ["hello world x7"] * 10
    assert values(call(m.meshd, "bolt", "add", [2, 3], count=10, concurrency=5, types="int,int")) == [5] * 10

    # round robin over both discovered providers, for each protocol
    dubbo_served = Counter(values(call(m.meshd, "dubbo", "whoami", [], count=20)))
    bolt_served = Counter(values(call(m.meshd, "bolt", "whoami", [], count=20)))
    assert dubbo_served == {"dubbo-1": 10, "dubbo-2": 10}
    assert bolt_served == {"bolt-1": 10, "bolt-2": 10}


def blocked_total(meshd, resource: str) -> float:
    """meshd's own count of governance blocks for ``resource`` (0 when none yet)."""
    prefix = f'meshd_governance_handled_total{{block_type="BlockTypeFlowControl",resource="{resource}",result="block"}} '
    lines = [line for line in meshd.admin_get("/stats/prometheus").text.splitlines() if line.startswith(prefix)]
    return float(lines[0][len(prefix):]) if lines else 0.0


def test_a_flow_rule_pushed_through_the_admin_api_blocks_then_releases_calls(mesh):
    m = mesh(dubbo=1, bolt=1)
    assert values(call(m.meshd, "dubbo", "sayHello", ["a", 1])) == ["hello a x1"]
    assert values(call(m.meshd, "bolt", "add", [1, 2], types="int,int")) == [3]

    rules = [{"resource": f"{DUBBO_IFACE}:sayHello", "threshold": 0},
             {"resource": f"{BOLT_IFACE}:add", "threshold": 0}]
    pushed = m.meshd.admin_put("/rules/flow?dialect=go", rules)
    assert (pushed.status, pushed.json()) == (200, {"kind": "flow", "dialect": "go", "changed": True, "rules": 2})

    dubbo_results = call(m.meshd, "dubbo", "sayHello", ["a", 1], count=3)
    assert [r["ok"] for r in dubbo_results] == [False] * 3
    message = dubbo_results[0]["error"]["message"]   # apache-dubbo-js shows the in-protocol error body
    assert "flow reject check blocked" in message and f"resource={DUBBO_IFACE}:sayHello" in message
    bolt_results = call(m.meshd, "bolt", "add", [1, 2], count=3, types="int,int")
    assert [r["ok"] for r in bolt_results] == [False] * 3     # a Bolt error status (SERVER_THREADPOOL_BUSY)
    assert blocked_total(m.meshd, f"{DUBBO_IFACE}:sayHello") == 3
    assert blocked_total(m.meshd, f"{BOLT_IFACE}:add") == 3
    # the rules name one method: the others still pass
    assert values(call(m.meshd, "dubbo", "echo", ["still here"])) == ["still here"]
    assert values(call(m.meshd, "bolt", "echo", ["still here"])) == ["still here"]

    removed = m.meshd.admin_put("/rules/flow?dialect=go", [])
    assert (removed.status, removed.json()["rules"]) == (200, 0)
    assert m.meshd.admin_get("/rules").json()["flow"]["rules"] == []
    assert values(call(m.meshd, "dubbo", "sayHello", ["a", 1], count=3)) == ["hello a x1"] * 3
    assert values(call(m.meshd, "bolt", "add", [1, 2], count=3, types="int,int")) == [3] * 3
    assert blocked_total(m.meshd, f"{DUBBO_IFACE}:sayHello") == 3, "no block after the rule was removed"
