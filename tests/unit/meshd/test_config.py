"""Config validation: the canonical config validates, errors name the path and the bad value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshd.cli import main
from meshd.config import ConfigError, build_config, load_config

DESIGN = Path(__file__).resolve().parents[3].parent / "shared" / "DESIGN.md"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
CANONICAL = """
admin:
  address: "127.0.0.1:15000"
listeners:
  - {name: http-egress, address: "127.0.0.1:15001", protocol: http, route_config: main}
  - {name: rpc-egress, address: "127.0.0.1:20880", protocol: auto, route_config: rpc}
route_configs:
  - name: main
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {prefix: "/v2/"}
            route: {cluster: backend, metadata_match: {version: v2}, timeout: "2s"}
          - match: {prefix: "/"}
            route:
              weighted_clusters:
                - {cluster: backend, weight: 90}
                - {cluster: backend-canary, weight: 10}
              retry_policy: {retry_on: "connect-failure,reset,5xx", num_retries: 2, per_try_timeout: "500ms"}
  - name: rpc
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {service: org.example.DemoService, method: sayHello}
            route: {cluster: org.example.DemoService, metadata_match: {version: "1.0.0"}}
clusters:
  - name: backend
    lb_policy: round_robin
    connect_timeout: "1s"
    endpoints:
      - {address: "127.0.0.1:18081", weight: 100, metadata: {version: v1}}
      - {address: "127.0.0.1:18082", weight: 100, metadata: {version: v2}}
    subset: {selectors: [[version]], fallback_policy: any_endpoint}
  - name: backend-canary
    endpoints:
      - {address: "127.0.0.1:18083"}
discovery:
  - {type: file, path: "clusters.yaml"}
  - {type: zookeeper, name: zk, servers: "127.0.0.1:2181", layout: dubbo, services: [org.example.DemoService]}
registry_api:
  sofa: {address: "127.0.0.1:13330", registry: zk}
  dubbo: {address: "127.0.0.1:22222", registry: zk}
governance:
  dialect: go
  flow: []
  circuit_breaker: []
"""


def errors_of(text: str, tmp_path) -> list[str]:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    return info.value.errors


def test_canonical_configuration_validates(tmp_path):
    if DESIGN.exists():   # the design document is the source of truth when it is next to the checkout
        text = re.search(r"## Canonical configuration.*?```yaml\n(.*?)```", DESIGN.read_text(), re.S).group(1)
    else:
        text = CANONICAL
    p = tmp_path / "meshd.yaml"
    p.write_text(text)
    config = load_config(p)
    assert [x.name for x in config.listeners] == ["http-egress", "rpc-egress"]
    route = config.route_configs[0].virtual_hosts[0].routes[1].route
    assert route.retry_policy.per_try_timeout == 0.5
    assert route.retry_policy.conditions == {"connect-failure", "reset", "5xx"}
    assert config.clusters[0].subset.selectors[0].keys == ["version"]
    assert config.discovery[1].name == "zk" and config.discovery[0].name == "file"
    assert config.resolve_path("clusters.yaml") == tmp_path / "clusters.yaml"


def test_the_documented_canonical_configuration_is_the_design_one_and_validates(tmp_path):
    text = re.search(r"## The canonical configuration.*?```yaml\n(.*?)```", DOCS.read_text(), re.S).group(1)
    if DESIGN.exists():
        design = re.search(r"## Canonical configuration.*?```yaml\n(.*?)```", DESIGN.read_text(), re.S).group(1)
        assert text == design, "docs/configuration.md is behind the design document's canonical configuration"
    p = tmp_path / "meshd.yaml"
    p.write_text(text)
    assert [x.name for x in load_config(p).discovery] == ["file", "zk"]


def test_json_loads_too(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"admin": {"address": "127.0.0.1:0"}, "listeners": []}')
    assert load_config(p).admin.address == "127.0.0.1:0"


@pytest.mark.parametrize("text, expected", [
    ("listeners: [{name: a, address: '127.0.0.1:1', protocol: tcp, cluster: c},"
     " {name: b, address: '127.0.0.1:99999', protocol: tcp, cluster: c}]",
     "listeners[1].address: '127.0.0.1:99999' is not a valid port"),
    ("admin: {address: 15000}", "admin.address: 15000 is not an address 'host:port'"),
    ("listeners: [{name: a, address: '127.0.0.1:1', protocol: smtp}]",
     "listeners[0].protocol: input should be 'http', 'dubbo', 'bolt', 'auto' or 'tcp' (got 'smtp')"),
    ("listeners: [{name: a, address: '127.0.0.1:1', protocol: http}]",
     "listeners[0]: an http listener needs a route_config"),
    ("clusters: [{name: c, connect_timeout: 5}]",
     "clusters[0].connect_timeout: 5 is not a duration: write it with a unit, e.g. '250ms' or '2s'"),
    ("clusters: [{name: c, connect_timeout: 'soon'}]",
     "clusters[0].connect_timeout: 'soon' is not a duration like '250ms', '1s', '2m'"),
    ("clusters: [{name: c, lb_policy: fastest}]",
     "clusters[0].lb_policy: input should be 'round_robin', 'random', 'weighted_round_robin' or 'least_request' (got 'fastest')"),
    ("clusters: [{name: c, endpoints: [{address: 'nohost'}]}]",
     "clusters[0].endpoints[0].address: 'nohost' is not an address 'host:port'"),
    ("clusters: [{name: c, endpoints: [{address: '127.0.0.1:1', weight: -1}]}]",
     "clusters[0].endpoints[0].weight: input should be greater than or equal to 0 (got -1)"),
    ("clusters: [{name: c, colour: red}]", "clusters[0]: unknown key 'colour'"),
    ("clusters: [{name: c}, {name: c}]", "clusters: the name 'c' is used twice"),
    ("listeners: [{name: a, address: '127.0.0.1:1', route_config: nope}]",
     "listeners[0].route_config: no route configuration named 'nope'"),
    ("discovery: [{type: consul}]", "discovery[0]: unknown discovery source type; known: file, zookeeper, nacos, sofaregistry, xds (got type 'consul')"),
    ("discovery: [{type: zookeeper}]", "discovery[0].servers: required key is missing"),
    ("route_configs: [{name: r, virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: '/'}}]}]}]",
     "route_configs[0].virtual_hosts[0].routes[0]: a route needs exactly one of route, direct_response"),
    ("route_configs: [{name: r, virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {regex: '(('}, "
     "route: {cluster: c}}]}]}]",
     "route_configs[0].virtual_hosts[0].routes[0].match.regex: '((' is not a valid regular expression: "
     "missing ), unterminated subpattern at position 1"),
    ("route_configs: [{name: r, virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: '/'}, "
     "route: {cluster: c, retry_policy: {retry_on: '5xx,sometimes'}}}]}]}]",
     "route_configs[0].virtual_hosts[0].routes[0].route.retry_policy.retry_on: unknown retry condition(s) "
     "['sometimes'] in '5xx,sometimes'"),
    ("registry_api: {dubbo: {registry: zk}}", "registry_api.dubbo.registry: 'zk' is not a zookeeper, nacos or sofaregistry discovery source"),
    ("listeners: [", "invalid YAML"),
])
def test_errors_name_the_path_and_value(tmp_path, text, expected):
    errors = errors_of(text, tmp_path)
    assert any(e.endswith(expected) or expected in e for e in errors), errors


def test_every_error_is_reported_at_once(tmp_path):
    errors = errors_of("admin: {address: x}\nclusters: [{name: c, lb_policy: q}]\ndrain_timeout: 3\n", tmp_path)
    assert len(errors) == 3


def test_config_is_frozen():
    config = build_config({"admin": {"address": "127.0.0.1:0"}})
    with pytest.raises(Exception):
        config.admin.address = "0.0.0.0:1"   # type: ignore[misc]


def test_validate_command(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(CANONICAL)
    assert main(["validate", "-c", str(good)]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "listener rpc-egress auto 127.0.0.1:20880" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners: [{name: a, address: '127.0.0.1:99999', protocol: tcp, cluster: c}]")
    assert main(["validate", "-c", str(bad)]) == 1
    assert "listeners[0].address: '127.0.0.1:99999' is not a valid port" in capsys.readouterr().out


def test_secrets_are_redacted_in_dumps():
    config = build_config({"discovery": [{"type": "zookeeper", "servers": "127.0.0.1:2181",
                                          "auth": {"username": "u", "password": "hunter2"}}]})
    dump = config.model_dump(mode="json")
    assert dump["discovery"][0]["auth"]["password"] == "**********"
    assert "hunter2" not in str(dump)
