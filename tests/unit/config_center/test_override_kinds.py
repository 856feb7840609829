"""The ``routes`` and ``clusters`` rule kinds: validated like the config file, applied to the running tables."""

from __future__ import annotations

import pytest

from config_center.store import RuleStore
from discovery.model import ClusterModel
from meshd.config import build_config
from meshd.runtime_rules import cluster_kind, route_kind
from meshd.upstream.cluster import ClusterManager

CONFIG = build_config({
    "route_configs": [{"name": "main", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"name": "split", "match": {"prefix": "/s"}, "route": {"weighted_clusters": [
            {"cluster": "a", "weight": 90}, {"cluster": "b", "weight": 10}]}},
        {"name": "api", "match": {"prefix": "/"}, "route": {"cluster": "a", "timeout": "5s"}},
        {"name": "static", "match": {"path": "/x"}, "direct_response": {"status": 200}},
    ]}]}],
    "clusters": [{"name": "a", "endpoints": [{"address": "127.0.0.1:1"}]},
                 {"name": "b", "endpoints": [{"address": "127.0.0.1:2"}]}],
})


def routes_store() -> tuple[RuleStore, dict]:
    installed: dict = {}
    return RuleStore([route_kind(CONFIG.route_configs, installed.update)]), installed


def action(installed: dict, name: str):
    """The action of the route named ``name`` in the installed table ``main``."""
    return next(r.route for vh in installed["main"].config.virtual_hosts for r in vh.routes if r.name == name)


def test_route_overrides_are_applied_to_new_tables_and_the_config_is_untouched():
    store, installed = routes_store()
    result = store.push("http", "routes", {"api": {"timeout": "250ms", "retry_policy": {"retry_on": "5xx"}},
                                           "split": {"weighted_clusters": {"b": 50}, "metadata_match": {"v": "2"}}})
    assert result.status == "applied" and result.diff["added"] == ["api", "split"]
    api = action(installed, "api")
    assert api.timeout == 0.25 and api.retry_policy.conditions == {"5xx"} and api.cluster == "a"
    split = action(installed, "split")
    assert [(w.cluster, w.weight) for w in split.weighted_clusters] == [("a", 90), ("b", 50)]
    assert split.metadata_match == {"v": "2"}
    assert CONFIG.route_configs[0].virtual_hosts[0].routes[1].route.timeout == 5.0
    assert store.push("http", "routes", {}).status == "applied" and action(installed, "api").timeout == 5.0


@pytest.mark.parametrize("document, expected", [
    ({"nope": {"timeout": "1s"}}, "routes.nope: no route is named 'nope' (named routes: api, split, static)"),
    ({"api": {"timeout": 5}}, "routes.api.timeout: 5 is not a duration"),
    ({"api": {"timeout": "1s", "colour": "red"}}, "routes.api: unknown key 'colour'"),
    ({"api": {"weighted_clusters": {"a": 1}}}, "routes.api: weighted_clusters: the route has no weighted_clusters"),
    ({"split": {"weighted_clusters": {"c": 1}}}, "routes.split: weighted_clusters: ['c'] are not clusters"),
    ({"split": {"weighted_clusters": {"a": 0, "b": 0}}}, "routes.split: weighted_clusters: weights must add up"),
    ({"static": {"timeout": "1s"}}, "routes.static: the route answers directly"),
    ({"api": {"retry_policy": {"retry_on": "sometimes"}}}, "routes.api.retry_policy.retry_on: unknown retry"),
    (["api"], "routes: expected a JSON object"),
])
def test_bad_route_overrides_name_the_route_the_field_and_the_value(document, expected):
    store, installed = routes_store()
    result = store.push("http", "routes", document)
    assert result.status == "rejected" and any(e.startswith(expected) for e in result.errors), result.errors
    assert installed == {}


def test_cluster_overrides_reach_existing_clusters_and_ones_created_later():
    model = ClusterModel()
    model.apply("static", "a", [])
    manager = ClusterManager(CONFIG, model)
    store = RuleStore([cluster_kind(manager.set_overrides)])
    assert manager.get("a").settings.lb_policy == "round_robin"
    result = store.push("http", "clusters", {"a": {"lb_policy": "least_request", "panic_threshold": 50},
                                             "later": {"circuit_breakers": {"max_requests": 7}}})
    assert result.status == "applied"
    a = manager.get("a")
    assert (a.settings.lb_policy, a.settings.panic_threshold, a.settings.name) == ("least_request", 50, "a")
    model.apply("zk", "later", [])
    assert manager.get("later").max_requests == 7
    assert store.push("http", "clusters", {"a": {"lb_policy": "fastest"}}).errors[0].startswith(
        "clusters.a.lb_policy: input should be")
    assert manager.get("a").settings.lb_policy == "least_request", "a rejected push changes nothing"
    store.push("http", "clusters", None)
    assert manager.get("a").settings.lb_policy == "round_robin" and manager.get("later").max_requests == 1024


def test_override_names_must_be_names():
    store = RuleStore([cluster_kind(lambda overrides: None)])
    assert store.push("http", "clusters", {"a b": {}}).errors == ("clusters: 'a b' is not a valid name "
                                                                 "(letters, digits, _ . : - / @ $ |)",)
