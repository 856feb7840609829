"""Route tables: domain precedence, path and header matching, RPC matching, weighted picks."""

from __future__ import annotations

import random
from collections import Counter

from meshd.config import RouteConfiguration
from meshd.routing.table import RouteTable


def table(*vhosts) -> RouteTable:
    return RouteTable(RouteConfiguration.model_validate({"name": "t", "virtual_hosts": list(vhosts)}))


def vh(name, domains, *routes):
    return {"name": name, "domains": domains, "routes": list(routes)}


def to(cluster, **match):
    return {"match": match, "route": {"cluster": cluster}}


class Rpc:
    def __init__(self, service, method="m", version="", group="", attachments=None):
        self.service, self.method, self.version = service, method, version
        self._group, self.attachments, self.group_reads = group, attachments or {}, 0

    @property
    def group(self):
        self.group_reads += 1
        return self._group

    def attachment(self, name):
        return self.attachments.get(name)


def cluster_of(t, host, path, headers=None):
    r = t.match_http(host, path, headers or {})
    return r.action.cluster if r else None


def test_domain_precedence():
    t = table(vh("any", ["*"], to("any", prefix="/")),
              vh("suffix", ["*.example.com"], to("suffix", prefix="/")),
              vh("longer", ["*.api.example.com"], to("longer", prefix="/")),
              vh("prefix", ["api.*"], to("prefix", prefix="/")),
              vh("exact", ["api.example.com"], to("exact", prefix="/")))
    assert cluster_of(t, "api.example.com", "/") == "exact"
    assert cluster_of(t, "API.Example.com:8080", "/") == "exact"
    assert cluster_of(t, "v1.api.example.com", "/") == "longer"
    assert cluster_of(t, "www.example.com", "/") == "suffix"
    assert cluster_of(t, "api.other", "/") == "prefix"
    assert cluster_of(t, "nothing", "/") == "any"


def test_no_virtual_host_no_route():
    t = table(vh("only", ["a.b"], to("c", prefix="/")))
    assert t.match_http("x.y", "/", {}) is None


def test_path_kinds_first_match_wins_and_query_is_ignored():
    t = table(vh("v", ["*"], to("exact", path="/a"), to("regex", regex="/r/[0-9]+"),
                 {"match": {"prefix": "/CI/", "case_sensitive": False}, "route": {"cluster": "ci"}},
                 to("prefix", prefix="/")))
    assert cluster_of(t, "h", "/a?x=1") == "exact"
    assert cluster_of(t, "h", "/a/b") == "prefix"
    assert cluster_of(t, "h", "/r/12") == "regex"
    assert cluster_of(t, "h", "/r/12x") == "prefix"
    assert cluster_of(t, "h", "/ci/x") == "ci"


def test_header_matchers():
    t = table(vh("v", ["*"],
                 {"match": {"prefix": "/", "headers": [{"name": "x-env", "exact": "canary"}]}, "route": {"cluster": "canary"}},
                 {"match": {"prefix": "/", "headers": [{"name": "x-debug", "present": True}]}, "route": {"cluster": "debug"}},
                 {"match": {"prefix": "/", "headers": [{"name": "x-user", "regex": "u[0-9]+", "invert": True}]},
                  "route": {"cluster": "not-user"}},
                 to("default", prefix="/")))
    assert cluster_of(t, "h", "/", {"x-env": "canary"}) == "canary"
    assert cluster_of(t, "h", "/", {"x-debug": ""}) == "debug"
    assert cluster_of(t, "h", "/", {"x-user": "bob"}) == "not-user"
    assert cluster_of(t, "h", "/", {"x-user": "u12"}) == "default"


def test_rpc_matching_reads_group_lazily():
    t = table(vh("v", ["*"],
                 to("by-version", service="org.S", version={"prefix": "2."}),
                 to("by-method", service="org.S", method="sayHello"),
                 to("by-group", service={"prefix": "org."}, group="g1"),
                 {"match": {"service": "org.T", "headers": [{"name": "dubbo.tag", "exact": "gray"}]},
                  "route": {"cluster": "tagged"}}))
    r = Rpc("org.S", "sayHello", version="1.0.0")
    assert t.match_rpc(r).action.cluster == "by-method" and r.group_reads == 0
    assert t.match_rpc(Rpc("org.S", "other", version="2.1")).action.cluster == "by-version"
    assert t.match_rpc(Rpc("org.X", "m", group="g1")).action.cluster == "by-group"
    assert t.match_rpc(Rpc("org.T", attachments={"dubbo.tag": "gray"})).action.cluster == "tagged"
    assert t.match_rpc(Rpc("org.T")) is None


def test_http_and_rpc_routes_do_not_cross():
    t = table(vh("v", ["*"], to("rpc", service="org.S"), to("http", prefix="/")))
    assert cluster_of(t, "h", "/") == "http"
    assert t.match_rpc(Rpc("org.S")).action.cluster == "rpc"
    assert t.match_rpc(Rpc("org.Z")) is None


def test_weighted_clusters_distribution_and_metadata():
    t = table(vh("v", ["*"], {"match": {"prefix": "/"}, "route": {
        "metadata_match": {"env": "prod"},
        "weighted_clusters": [{"cluster": "a", "weight": 70}, {"cluster": "b", "weight": 30,
                                                               "metadata_match": {"version": "v2"}}]}}))
    route = t.match_http("h", "/", {})
    rng = random.Random(7)
    picks = Counter()
    for _ in range(10000):
        name, md = route.pick_cluster(rng)
        picks[name] += 1
        assert md == ({"env": "prod"} if name == "a" else {"env": "prod", "version": "v2"})
    assert 2800 <= picks["b"] <= 3200


def test_query_parameter_matchers():
    t = table(vh("all", ["*"],
                 to("exact", prefix="/", query_parameters=[{"name": "env", "exact": "canary"}]),
                 to("present", prefix="/", query_parameters=[{"name": "debug", "present": True}]),
                 to("not-v1", prefix="/", query_parameters=[{"name": "v", "prefix": "1", "invert": True},
                                                           {"name": "v", "present": True}]),
                 to("default", prefix="/")))
    assert cluster_of(t, "h", "/x?env=canary") == "exact"
    assert cluster_of(t, "h", "/x?a=1&env=canary&b") == "exact"
    assert cluster_of(t, "h", "/x?env=prod") == "default"
    assert cluster_of(t, "h", "/x?debug") == "present" and cluster_of(t, "h", "/x?debug=") == "present"
    assert cluster_of(t, "h", "/x?v=2") == "not-v1" and cluster_of(t, "h", "/x?v=1.5") == "default"
    assert cluster_of(t, "h", "/x") == "default"
    rpc = table(vh("all", ["*"], to("query", query_parameters=[{"name": "v", "present": False}]), to("any")))
    assert rpc.match_rpc(Rpc("svc")).action.cluster == "any", "a query route never matches an RPC call"


def test_raw_lookups_answer_what_the_decoded_lookup_answers_and_stay_bounded():
    from meshd.routing import table as table_module
    t = table(vh("a", ["api.example.com"], to("api", prefix="/v1"), to("other", path="/exact")),
              vh("w", ["*.example.com"], to("wild", regex="/r/[0-9]+")), vh("any", ["*"], to("fallback", prefix="/")))
    hosts = ["api.example.com", "API.example.com:8080", "x.example.com", "elsewhere", ""]
    paths = ["/v1/users?id=3", "/exact", "/exact?q", "/r/12", "/r/x", "/", "/v2"]
    for host in hosts:
        for path in paths:
            for _ in range(2):                # the second answer comes from the cache
                raw = t.match_http_raw(host.encode(), path.encode())
                assert raw is t.match_http(host, path, {}), (host, path)
    for i in range(table_module._HTTP_CACHE_LIMIT + 10):
        assert t.match_http_raw(b"elsewhere", b"/n/%d" % i).action.cluster == "fallback"
    assert len(t._http_cache) <= table_module._HTTP_CACHE_LIMIT, "distinct targets keep only the recent ones"
