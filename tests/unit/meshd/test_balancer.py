"""Balancers: distributions over many picks, weights honoured, exclusions, weight 0 never picked."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from discovery.model import ClusterDiff, Endpoint, Health
from meshd.config import ClusterSettings
from meshd.routing.balancer import make_balancer
from meshd.upstream.cluster import ClusterRuntime
from meshd.upstream.host import Host


def host(port, weight=100, health=Health.HEALTHY, priority=0, **metadata):
    ep = Endpoint(address=f"127.0.0.1:{port}", host="127.0.0.1", port=port, weight=weight, health=health, zone="",
                  priority=priority, group=metadata.get("group", ""), version=metadata.get("version", ""),
                  enabled=True, metadata=metadata, sources=("t",))
    return Host(ep, "c")


def picks(balancer, n):
    return Counter(balancer.pick().port for _ in range(n))


def test_round_robin_is_even():
    hosts = [host(p) for p in (1, 2, 3)]
    assert picks(make_balancer("round_robin", hosts, random.Random(1)), 300) == {1: 100, 2: 100, 3: 100}


def test_weighted_round_robin_is_exact_and_smooth():
    hosts = [host(1, 500), host(2, 300), host(3, 200)]
    b = make_balancer("weighted_round_robin", hosts, random.Random(1))
    seq = [b.pick().port for _ in range(1000)]
    assert Counter(seq) == {1: 500, 2: 300, 3: 200}
    assert max(len(run) for run in "".join(map(str, seq)).replace("2", " ").replace("3", " ").split()) <= 2


def test_random_is_roughly_uniform():
    c = picks(make_balancer("random", [host(p) for p in (1, 2, 3, 4)], random.Random(3)), 8000)
    assert all(1800 <= v <= 2200 for v in c.values())


def test_least_request_prefers_idle_hosts():
    hosts = [host(1), host(2), host(3)]
    hosts[0].active_requests = 50
    c = picks(make_balancer("least_request", hosts, random.Random(5)), 3000)
    assert c[1] < 400 and c[2] > 1000 and c[3] > 1000


@pytest.mark.parametrize("policy", ["round_robin", "random", "weighted_round_robin", "least_request"])
def test_a_pick_serves_requests_per_pick_requests_except_by_load(policy):
    b = make_balancer(policy, [host(1), host(2)], random.Random(4), 16)
    assert b.run == (1 if policy == "least_request" else 16)
    rt = runtime(host(1), host(2), lb_policy=policy, requests_per_pick=5)
    rt.pick()
    assert rt._sets[()].balancer.run == (1 if policy == "least_request" else 5), "the cluster's requests_per_pick"


@pytest.mark.parametrize("policy", ["round_robin", "random", "weighted_round_robin", "least_request"])
def test_weight_zero_never_picked_and_exclusions(policy):
    hosts = [host(1, 0), host(2), host(3)]
    b = make_balancer(policy, hosts, random.Random(9))
    assert 1 not in picks(b, 200)
    assert all(b.pick(exclude=[hosts[1]]).port == 3 for _ in range(50))
    assert b.pick(exclude=[hosts[1], hosts[2]]).port in (2, 3), "all excluded: any host rather than none"


def runtime(*hosts, **settings):
    rt = ClusterRuntime("c", ClusterSettings(**settings), random.Random(11), clock=lambda: 100.0)
    rt.apply(ClusterDiff("c", added=tuple(h.endpoint for h in hosts)))
    return rt


def test_unhealthy_and_disabled_not_picked():
    rt = runtime(host(1), host(2, health=Health.UNHEALTHY), host(3, health=Health.DRAINING))
    assert {rt.pick().port for _ in range(50)} == {1}
    rt.hosts["127.0.0.1:1"].hc_healthy = False
    rt.invalidate()
    assert rt.pick() is None


def test_metadata_subset_filter():
    rt = runtime(host(1, version="v1"), host(2, version="v2"), host(3, version="v2", zone_tag="x"))
    assert {rt.pick({"version": "v2"}).port for _ in range(50)} == {2, 3}
    assert rt.pick({"version": "v3"}) is None


def test_priority_levels_spill_over():
    rt = runtime(host(1, priority=0), host(2, priority=1))
    assert {rt.pick().port for _ in range(20)} == {1}
    rt.hosts["127.0.0.1:1"].hc_healthy = False
    rt.invalidate()
    assert {rt.pick().port for _ in range(20)} == {2}


def test_panic_threshold():
    rt = runtime(host(1), host(2), host(3), host(4), panic_threshold=50)
    for port in (1, 2, 3):
        rt.hosts[f"127.0.0.1:{port}"].hc_healthy = False
    rt.invalidate()
    assert {rt.pick().port for _ in range(100)} == {1, 2, 3, 4}, "25% healthy < 50%: panic spreads over all"
    rt2 = runtime(host(1), host(2), host(3), host(4))
    for port in (1, 2, 3):
        rt2.hosts[f"127.0.0.1:{port}"].hc_healthy = False
    rt2.invalidate()
    assert {rt2.pick().port for _ in range(100)} == {4}, "panic is off by default"


def test_outlier_ejection_expires_by_clock():
    now = [100.0]
    rt = ClusterRuntime("c", ClusterSettings(), random.Random(1), clock=lambda: now[0])
    rt.apply(ClusterDiff("c", added=(host(1).endpoint, host(2).endpoint)))
    rt.hosts["127.0.0.1:1"].ejected_until = 105.0
    rt.invalidate()
    assert {rt.pick().port for _ in range(20)} == {2}
    now[0] = 106.0
    assert {rt.pick().port for _ in range(20)} == {1, 2}
