"""The ``nacos`` rule source's config: Sentinel's data ids from ``app``, ``kinds``, explicit ``data_ids``, at
least one data id, secrets redacted, and one owner per kind across ``config_center.sources``."""

from __future__ import annotations

import pytest

from config_center.catalog import BY_NAME
from config_center.nacos import NacosRuleSource, NacosRuleSourceConfig
from config_center.source import RuleSourceContext
from meshd.config import ConfigError, build_config

BASE = {"type": "nacos", "name": "nacos-rules", "server_addresses": "127.0.0.1:8848"}


def sources(*specs: dict):
    return build_config({"config_center": {"sources": list(specs)}}).config_center.sources


def test_app_alone_gives_sentinels_data_ids_for_every_kind():
    (spec,) = sources({**BASE, "app": "order-service"})
    assert isinstance(spec, NacosRuleSourceConfig) and spec.group == "SENTINEL_GROUP" and spec.dialect == "java"
    assert spec.resolved_data_ids == {
        "flow": "order-service-flow-rules", "circuit_breaker": "order-service-degrade-rules",
        "system": "order-service-system-rules", "hotspot": "order-service-param-rules",
        "isolation": "order-service-isolation-rules", "routes": "order-service-meshd-routes",
        "clusters": "order-service-meshd-clusters"}
    assert set(spec.owned_kinds) == set(spec.resolved_data_ids)


def test_kinds_pick_defaults_and_explicit_data_ids_win():
    (spec,) = sources({**BASE, "app": "a", "kinds": ["flow", "hotspot"], "data_ids": {"flow": "custom-flow"}})
    assert spec.resolved_data_ids == {"flow": "custom-flow", "hotspot": "a-param-rules"}
    (only,) = sources({**BASE, "app": "a", "data_ids": {"flow": "x-flow", "circuit_breaker": "x-degrade"}})
    assert only.owned_kinds == ("flow", "circuit_breaker"), "explicit data ids without kinds are the only ones"
    (bare,) = sources({**BASE, "data_ids": {"system": "sys"}})
    assert bare.owned_kinds == ("system",)


@pytest.mark.parametrize("extra, problem", [
    ({}, "give `app`"),
    ({"kinds": ["flow"]}, "no data id"),
    ({"data_ids": {"nope": "x"}}, "nope"),
    ({"app": "a", "kinds": []}, "kinds"),
    ({"app": "a", "server_addresses": ""}, "server_addresses"),
])
def test_a_source_without_data_ids_or_with_bad_ones_is_refused(extra, problem):
    with pytest.raises(ConfigError) as err:
        sources({**BASE, **extra})
    assert problem in str(err.value)


def test_two_sources_naming_the_same_kind_are_refused():
    with pytest.raises(ConfigError) as err:
        sources({**BASE, "app": "a", "kinds": ["flow"]},
                {"type": "file", "name": "files", "path": "/tmp/x", "kinds": ["flow", "system"]})
    assert "rule kind 'flow' is given to two sources, 'nacos-rules' and 'files'" in str(err.value)
    assert len(sources({**BASE, "app": "a", "kinds": ["flow"]},
                       {"type": "file", "name": "files", "path": "/tmp/x", "kinds": ["system"]})) == 2


def test_build_keeps_the_password_secret_and_the_cache_out_of_home(tmp_path):
    (spec,) = sources({**BASE, "app": "a", "kinds": ["flow"], "auth": {"username": "u", "password": "p4ss"},
                       "cache_dir": "nacos-cache"})
    assert "p4ss" not in repr(spec) and "p4ss" not in str(spec.model_dump())
    source = BY_NAME["nacos"].build(spec, RuleSourceContext(resolve_path=lambda p: str(tmp_path / p)))
    assert isinstance(source, NacosRuleSource) and source.kinds == ("flow",)
    assert source.cache_dir == str(tmp_path / "nacos-cache") and source.password.get_secret_value() == "p4ss"
    config = source._client_config()
    assert config.cache_dir.startswith(str(tmp_path)) and config.log_dir.startswith(str(tmp_path))
    assert (config.username, config.password) == ("u", "p4ss")
    (default,) = sources({**BASE, "app": "a"})
    built = BY_NAME["nacos"].build(default, RuleSourceContext(resolve_path=str))
    assert "meshd-nacos" in built.cache_dir and built.cache_dir.endswith("nacos-rules")
