"""Subset index (Envoy fallbacks, incremental updates), outlier ejection arithmetic, health verdicts."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from discovery.model import Endpoint, Health
from meshd.codec.outcome import Outcome
from meshd.config import HealthCheck, OutlierDetection, SubsetConfig
from meshd.routing.subset import SubsetIndex
from meshd.upstream.health import next_verdict
from meshd.upstream.host import Host
from meshd.upstream.outlier import OutlierDetector


def host(port, group="", version="", **metadata):
    ep = Endpoint(address=f"10.0.0.1:{port}", host="10.0.0.1", port=port, weight=100, health=Health.HEALTHY,
                  zone="", priority=0, group=group, version=version, enabled=True,
                  metadata=MappingProxyType(metadata), sources=("t",))
    return Host(ep, "c")


def ports(hosts):
    return None if hosts is None else sorted(h.port for h in hosts)


def index(hosts, **config):
    idx = SubsetIndex(SubsetConfig.model_validate(config))
    for h in hosts:
        idx.add(h)
    return idx


HOSTS = [host(1, "g1", "1.0.0"), host(2, "g1", "2.0.0"), host(3, "g2", "1.0.0"), host(4, version="1.0.0", tag="gray")]


def test_request_metadata_selects_by_registry_group_and_version_without_configuration():
    idx = index(HOSTS)
    assert ports(idx.lookup({"version": "1.0.0", "group": "g1"})) == [1]
    assert ports(idx.lookup({"version": "1.0.0"})) == [1, 3, 4]
    assert ports(idx.lookup({"version": "3.0.0"})) == [], "no_fallback by default: never a wrong version"


@pytest.mark.parametrize("policy, expected", [("no_fallback", []), ("any_endpoint", None), ("default_subset", [1, 3, 4])])
def test_cluster_fallback_policies(policy, expected):
    idx = index(HOSTS, selectors=[["version", "group"]], fallback_policy=policy, default_subset={"version": "1.0.0"})
    assert ports(idx.lookup({"version": "9", "group": "none"})) == expected


def test_selector_keys_subset_fallback_for_tag_routing():
    idx = index(HOSTS, selectors=[{"keys": ["tag", "version"], "fallback_policy": "keys_subset",
                                   "fallback_keys_subset": ["version"]}])
    assert ports(idx.lookup({"tag": "gray", "version": "1.0.0"})) == [4]
    assert ports(idx.lookup({"tag": "blue", "version": "1.0.0"})) == [1, 3, 4], "no blue host: same version"


def test_selector_level_policy_overrides_cluster_policy():
    idx = index(HOSTS, selectors=[{"keys": ["version"], "fallback_policy": "any_endpoint"}], fallback_policy="no_fallback")
    assert ports(idx.lookup({"version": "nope"})) is None
    assert ports(idx.lookup({"group": "nope"})) == [], "the implicit selector follows the cluster policy"


def test_index_follows_adds_removes_and_metadata_changes():
    h1, h2 = host(1, "g1", "1.0.0"), host(2, "g1", "2.0.0")
    idx = index([h1, h2], selectors=[["version"]])
    v0 = idx.version
    h2.update(host(2, "g1", "1.0.0").endpoint)          # the registry re-published h2 as version 1.0.0
    idx.update(h2)
    assert ports(idx.lookup({"version": "1.0.0"})) == [1, 2] and ports(idx.lookup({"version": "2.0.0"})) == []
    idx.remove(h1)
    assert ports(idx.lookup({"version": "1.0.0"})) == [2]
    idx.add(host(5, version="2.0.0"))
    assert ports(idx.lookup({"version": "2.0.0"})) == [5]
    assert idx.version > v0


def outlier(**kw):
    now = [1000.0]
    hosts = [host(p) for p in range(1, 11)]
    ejected = []
    det = OutlierDetector(OutlierDetection(**{"base_ejection_time": "30s", "interval": "10s", **kw}),
                          lambda: now[0], lambda: hosts, lambda h, d: ejected.append((h.port, d)))
    return det, hosts, now, ejected


def test_consecutive_5xx_ejects_and_success_resets():
    det, hosts, now, ejected = outlier(consecutive_5xx=3)
    h = hosts[0]
    for status in (500, 503, 200, 500, 500):
        det.record(h, Outcome.UPSTREAM_ERROR if status >= 500 else Outcome.OK, status, True)
    assert ejected == []
    assert det.record(h, Outcome.UPSTREAM_ERROR, 502, True) is True
    assert ejected == [(1, 30.0)] and h.ejected_until == 1030.0


def test_local_origin_failures_count_unless_split():
    det, hosts, now, ejected = outlier(consecutive_gateway_failure=2, consecutive_5xx=100)
    det.record(hosts[0], Outcome.CONNECT_FAILURE, None, True)
    det.record(hosts[0], Outcome.TIMEOUT, None, True)
    assert ejected == [(1, 30.0)]
    det2, hosts2, _, ejected2 = outlier(consecutive_gateway_failure=2, consecutive_local_origin_failure=3,
                                       split_external_local_origin_errors=True)
    for _ in range(2):
        det2.record(hosts2[0], Outcome.RESET, None, True)
    assert ejected2 == []
    det2.record(hosts2[0], Outcome.RESET, None, True)
    assert ejected2 == [(1, 30.0)]


def test_app_errors_are_not_host_failures():
    det, hosts, _, ejected = outlier(consecutive_5xx=2)
    for _ in range(5):
        det.record(hosts[0], Outcome.APP_ERROR, 20, False)
    assert ejected == []


def test_ejection_time_grows_and_max_percent_caps():
    det, hosts, now, ejected = outlier(consecutive_5xx=1, max_ejection_percent=20, max_ejection_time="60s")
    det.record(hosts[0], Outcome.UPSTREAM_ERROR, 500, True)
    det.record(hosts[1], Outcome.UPSTREAM_ERROR, 500, True)
    det.record(hosts[2], Outcome.UPSTREAM_ERROR, 500, True)
    assert [p for p, _ in ejected] == [1, 2], "20% of 10 hosts: at most two ejected at once"
    now[0] = 1031.0
    det.record(hosts[0], Outcome.UPSTREAM_ERROR, 500, True)
    assert ejected[-1] == (1, 60.0), "second ejection lasts 2 × base (capped at max_ejection_time)"
    now[0] = 1091.0 + 10 * 3
    det.record(hosts[0], Outcome.UPSTREAM_ERROR, 500, True)
    assert ejected[-1] == (1, 30.0), "three healthy intervals decay the multiplier back down"


def test_at_least_one_host_may_be_ejected():
    det, hosts, _, ejected = outlier(consecutive_5xx=1, max_ejection_percent=0)
    det.record(hosts[0], Outcome.UPSTREAM_ERROR, 500, True)
    det.record(hosts[1], Outcome.UPSTREAM_ERROR, 500, True)
    assert [p for p, _ in ejected] == [1]


def test_health_verdict_thresholds():
    check = HealthCheck(type="tcp", healthy_threshold=2, unhealthy_threshold=3)
    state = (True, 0)
    for ok, expected in [(False, (True, 1)), (False, (True, 2)), (True, (True, 0)), (False, (True, 1)),
                         (False, (True, 2)), (False, (False, 0)), (True, (False, 1)), (True, (True, 0))]:
        state = next_verdict(*state, ok, check)
        assert state == expected
