"""Every registered discovery source type builds from its config section; the config derives from the catalog."""

from __future__ import annotations

import pytest

from discovery.catalog import BY_NAME, SOURCE_TYPES
from discovery.registration import Registry
from discovery.source import Source
from meshd.app import build_source
from meshd.config import REGISTRY_SOURCE_TYPES, ConfigError, build_config, summary

#: One minimal section per registered type. A new source type fails the coverage test until it has one.
EXAMPLES = {
    "file": {"type": "file", "name": "clusters-file", "path": "clusters.yaml", "poll_interval": "100ms"},
    "nacos": {"type": "nacos", "name": "nacos", "server_addresses": "127.0.0.1:8848", "namespace": "public",
              "group": "DEFAULT_GROUP", "services": ["org.example.DemoService"], "naming": "dubbo",
              "auth": {"username": "u", "password": "p"}},
    "zookeeper": {"type": "zookeeper", "name": "zk", "servers": "127.0.0.1:2181", "layout": "sofarpc",
                  "services": ["com.example.Calc"], "sync_timeout": "2s"},
    "sofaregistry": {"type": "sofaregistry", "name": "sofareg", "servers": "127.0.0.1:9600,127.0.0.2:9600",
                     "app": "my-app", "zone": "zone-a", "data_center": "DefaultDataCenter", "scope": "zone",
                     "services": ["com.example.Calc:1.0"], "snapshot_path": ".meshd/sofareg-snapshot.json",
                     "sync_timeout": "2s"},
    "xds": {"type": "xds", "name": "istio", "server": "127.0.0.1:15010", "initial_fetch_timeout": "2s",
            "node": {"id": "sidecar~10.0.0.5~app-1.default~default.svc.cluster.local", "cluster": "app",
                     "locality": {"region": "r1"}, "metadata": {"ISTIO_VERSION": "1.24.0"}}},
}


def test_every_registered_type_has_an_example_here():
    assert set(EXAMPLES) == set(BY_NAME), "add a minimal config section for each new source type to EXAMPLES"
    assert [t.name for t in SOURCE_TYPES] == list(BY_NAME)


@pytest.mark.parametrize("source_type", SOURCE_TYPES, ids=lambda t: t.name)
def test_every_registered_type_builds_from_its_config(source_type, tmp_path):
    section = EXAMPLES[source_type.name]
    config = build_config({"discovery": [section]}, base_dir=tmp_path)
    spec = config.discovery[0]
    assert isinstance(spec, source_type.config) and spec.type == source_type.name
    source = build_source(spec, config)
    assert isinstance(source, Source) and type(source) is source_type.source
    assert source.name == section["name"] and source.kind == source_type.name
    assert source.status()["type"] == source_type.name and not source.synced
    if "sync_timeout" in section:
        assert source.sync_timeout == 2.0


def test_config_paths_are_resolved_against_the_config_folder(tmp_path):
    config = build_config({"discovery": [EXAMPLES["file"], EXAMPLES["zookeeper"]]}, base_dir=tmp_path)
    file_source, zk_source = (build_source(spec, config) for spec in config.discovery)
    assert file_source.path == str(tmp_path / "clusters.yaml")
    assert zk_source.snapshot_path == str(tmp_path / ".meshd" / "zk-snapshot.json")


def test_the_file_source_validates_clusters_with_the_full_schema(tmp_path):
    (tmp_path / "clusters.yaml").write_text("clusters: [{name: b, lb_policy: fastest, endpoints: []}]\n")
    config = build_config({"discovery": [EXAMPLES["file"]]}, base_dir=tmp_path)
    source = build_source(config.discovery[0], config)
    assert source.reload() is False and "lb_policy" in source.last_error and "fastest" in source.last_error


def test_unknown_types_and_bad_values_are_named_with_the_known_types():
    with pytest.raises(ConfigError) as err:
        build_config({"discovery": [{"type": "consul", "servers": "x"}]})
    assert err.value.errors == [f"discovery[0]: unknown discovery source type; known: {', '.join(BY_NAME)} "
                                "(got type 'consul')"]
    with pytest.raises(ConfigError) as err:
        build_config({"discovery": [{**EXAMPLES["zookeeper"], "layout": "nacos"}]})
    assert err.value.errors[0].startswith("discovery[0].layout: ")       # no discriminator tag in the path


def test_registry_types_are_the_sources_that_implement_registration():
    assert REGISTRY_SOURCE_TYPES == tuple(t.name for t in SOURCE_TYPES if issubclass(t.source, Registry))
    assert "zookeeper" in REGISTRY_SOURCE_TYPES and "file" not in REGISTRY_SOURCE_TYPES
    with pytest.raises(ConfigError) as err:
        build_config({"discovery": [EXAMPLES["file"]], "registry_api": {"sofa": {"registry": "clusters-file"}}})
    assert "registry_api.sofa.registry: 'clusters-file' is not a zookeeper, nacos or sofaregistry discovery source" in err.value.errors


def test_validate_summary_lists_the_known_types_from_the_catalog():
    assert f"known discovery source types: {', '.join(BY_NAME)}" in summary(build_config({}))
