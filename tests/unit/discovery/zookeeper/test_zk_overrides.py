"""Dubbo configurators: parsing, selection by host/port/group/version/conditions, precedence, absent rules."""

import pytest

from discovery.zookeeper.overrides import Override, URLError, apply_overrides, parse_override
from discovery.zookeeper.urls import java_urlencode

BASE = {"interface": "org.example.DemoService", "application": "demo", "version": "1.0.0", "weight": "100"}


def rule(url: str) -> Override:
    parsed = parse_override(java_urlencode(url))
    assert parsed is not None
    return parsed


def test_anyhost_rule_sets_weight_and_drops_bookkeeping_keys():
    r = rule("override://0.0.0.0/org.example.DemoService?category=configurators&dynamic=false&enabled=true&weight=200")
    assert dict(r.params) == {"weight": "200"}
    out = apply_overrides([r], "10.0.0.5", 20880, BASE)
    assert out["weight"] == "200" and out["application"] == "demo" and "category" not in out


def test_host_specific_beats_anyhost_and_host_port_beats_host():
    rules = [rule("override://10.0.0.5:20880/S?weight=300"), rule("override://0.0.0.0/S?weight=200"),
             rule("override://10.0.0.5/S?weight=250")]
    assert apply_overrides(rules, "10.0.0.5", 20880, BASE)["weight"] == "300"
    assert apply_overrides(rules, "10.0.0.5", 20881, BASE)["weight"] == "250"   # ip only: every port on the host
    assert apply_overrides(rules, "10.0.0.6", 20880, BASE)["weight"] == "200"


def test_priority_orders_rules_of_the_same_specificity():
    rules = [rule("override://0.0.0.0/S?weight=7&priority=2"), rule("override://0.0.0.0/S?weight=5&priority=1")]
    assert apply_overrides(rules, "h", 1, BASE)["weight"] == "7"


def test_disabled_rule_and_rule_switched_off():
    assert apply_overrides([rule("override://10.0.0.5/S?disabled=true")], "10.0.0.5", 1, BASE)["disabled"] == "true"
    assert parse_override(java_urlencode("override://0.0.0.0/S?enabled=false&weight=1")) is None
    assert parse_override(java_urlencode("empty://0.0.0.0/S?category=configurators")) is None


def test_group_version_application_side_and_tilde_conditions():
    assert apply_overrides([rule("override://0.0.0.0/S?version=2.0.0&weight=1")], "h", 1, BASE)["weight"] == "100"
    assert apply_overrides([rule("override://0.0.0.0/S?version=1.0.0,2.0.0&weight=1")], "h", 1, BASE)["weight"] == "1"
    assert apply_overrides([rule("override://0.0.0.0/S?group=*&weight=1")], "h", 1, BASE)["weight"] == "1"
    assert apply_overrides([rule("override://0.0.0.0/S?application=other&weight=1")], "h", 1, BASE)["weight"] == "100"
    assert apply_overrides([rule("override://0.0.0.0/S?side=consumer&weight=1")], "h", 1,
                           {**BASE, "side": "provider"})["weight"] == "100"
    assert apply_overrides([rule("override://0.0.0.0/S?~application=demo&weight=1")], "h", 1, BASE)["weight"] == "1"
    hits = rule("override://0.0.0.0/S?providerAddresses=h:1,x:2&weight=9")
    assert apply_overrides([hits], "h", 1, BASE)["weight"] == "9" and apply_overrides([hits], "h", 2, BASE)["weight"] == "100"


def test_absent_rule_only_fills_missing_parameters():
    rules = [rule("absent://0.0.0.0/S?weight=1&timeout=500")]
    out = apply_overrides(rules, "h", 1, BASE)
    assert out["weight"] == "100" and out["timeout"] == "500"


def test_rule_removed_means_parameters_back_to_the_provider():
    rules = [rule("override://0.0.0.0/S?weight=1")]
    assert apply_overrides(rules, "h", 1, BASE)["weight"] == "1"
    assert apply_overrides([], "h", 1, BASE)["weight"] == "100"


@pytest.mark.parametrize("url, why", [
    ("override://0.0.0.0/S?weight=heavy", "weight='heavy' is not an integer"),
    ("dubbo://0.0.0.0/S?weight=1", "not override:// or absent://"),
    ("override://:1/S", "no host"),
])
def test_malformed_rules_are_rejected_naming_the_node(url, why):
    with pytest.raises(URLError, match=why):
        parse_override(java_urlencode(url))
