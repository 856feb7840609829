"""ClusterModel: diffs, dual-source union and precedence, stale marking, withdraw/delete, settings."""

import pytest

from discovery.model import ClusterModel, EndpointSpec, Health, split_address


def spec(address, **kw):
    return EndpointSpec(address, **kw)


class Recorder:
    def __init__(self, model):
        self.diffs = []
        self.unsubscribe = model.subscribe(self.diffs.append)


def test_first_report_creates_cluster_and_publishes_added_endpoints():
    model = ClusterModel()
    seen = Recorder(model)
    diff = model.apply("zk", "svc", [spec("10.0.0.1:80"), spec("10.0.0.2:80", weight=5)])
    assert diff.created and [e.address for e in diff.added] == ["10.0.0.1:80", "10.0.0.2:80"]
    assert seen.diffs == [diff]
    cluster = model.cluster("svc")
    assert cluster.version == 1 and cluster.endpoints["10.0.0.2:80"].weight == 5
    assert cluster.endpoints["10.0.0.1:80"].sources == ("zk",)


def test_apply_diffs_add_remove_change_and_noop():
    model = ClusterModel()
    model.apply("zk", "svc", [spec("a:1"), spec("b:1")])
    seen = Recorder(model)
    diff = model.apply("zk", "svc", [spec("b:1", weight=7), spec("c:1")])
    assert [e.address for e in diff.added] == ["c:1"] and [e.address for e in diff.removed] == ["a:1"]
    ((old, new),) = diff.changed
    assert (old.weight, new.weight) == (100, 7) and not diff.created
    assert model.apply("zk", "svc", [spec("b:1", weight=7), spec("c:1")]).empty
    assert len(seen.diffs) == 1 and model.cluster("svc").version == 2
    metadata_only = model.apply("zk", "svc", [spec("b:1", weight=7, metadata={"x": "1"}), spec("c:1")])
    assert len(metadata_only.changed) == 1


def test_empty_report_keeps_the_cluster_known():
    model = ClusterModel()
    diff = model.apply("zk", "svc", [])
    assert diff.created and not diff.empty and model.cluster("svc").endpoints == {}
    model.apply("zk", "svc", [spec("a:1")])
    assert [e.address for e in model.apply("zk", "svc", []).removed] == ["a:1"]
    assert model.cluster("svc") is not None


def test_unsubscribe_stops_callbacks():
    model = ClusterModel()
    seen = Recorder(model)
    seen.unsubscribe()
    seen.unsubscribe()   # twice is harmless
    model.apply("zk", "svc", [spec("a:1")])
    assert seen.diffs == []


def test_dual_sources_union_and_precedence_by_source_order():
    model = ClusterModel(source_order=["nacos", "zk"])
    model.apply("zk", "svc", [spec("a:1", weight=10, version="zk", metadata={"from": "zk", "zkonly": "1"}),
                              spec("b:1")])
    diff = model.apply("nacos", "svc", [spec("a:1", weight=20, version="nacos", metadata={"from": "nacos"}),
                                        spec("c:1")])
    assert [e.address for e in diff.added] == ["c:1"] and len(diff.changed) == 1
    a = model.cluster("svc").endpoints["a:1"]
    assert (a.weight, a.version, a.sources) == (20, "nacos", ("nacos", "zk"))
    assert dict(a.metadata) == {"from": "nacos", "zkonly": "1"}
    assert sorted(model.cluster("svc").endpoints) == ["a:1", "b:1", "c:1"]


def test_precedence_without_source_order_is_first_seen():
    model = ClusterModel()
    model.apply("first", "svc", [spec("a:1", weight=1)])
    model.apply("second", "svc", [spec("a:1", weight=2)])
    assert model.cluster("svc").endpoints["a:1"].weight == 1


def test_stale_marks_only_the_sources_endpoints_and_unmarks():
    model = ClusterModel()
    model.apply("zk", "svc", [spec("a:1"), spec("b:1")])
    model.apply("file", "svc", [spec("b:1")])
    seen = Recorder(model)
    diffs = model.set_stale("zk", True)
    assert model.is_stale("zk") and len(diffs) == 1 and seen.diffs == diffs
    endpoints = model.cluster("svc").endpoints
    assert endpoints["a:1"].stale and not endpoints["b:1"].stale          # b:1 still has a fresh source
    assert model.set_stale("zk", True) == []                              # idempotent
    model.apply("zk", "other", [spec("c:1")])                             # reported while stale: stale
    assert model.cluster("other").endpoints["c:1"].stale
    model.set_stale("zk", False)
    assert not any(e.stale for c in model.clusters().values() for e in c.endpoints.values())


def test_stale_primary_yields_typed_fields_and_metadata_to_the_fresh_source():
    model = ClusterModel(source_order=["zk", "nacos"])
    model.apply("zk", "svc", [spec("a:1", version="1.0", metadata={"version": "1.0"})])
    model.apply("nacos", "svc", [spec("a:1", version="2.0", metadata={"version": "2.0"})])
    assert model.cluster("svc").endpoints["a:1"].version == "1.0"
    model.set_stale("zk", True)
    a = model.cluster("svc").endpoints["a:1"]
    assert not a.stale and a.version == "2.0"
    assert a.metadata["version"] == a.version   # metadata follows the same precedence as the typed fields


def test_withdraw_removes_the_sources_endpoints_and_deletes_an_orphan_cluster():
    model = ClusterModel()
    model.apply("zk", "svc", [spec("a:1"), spec("b:1")])
    model.apply("file", "svc", [spec("b:1")])
    diff = model.withdraw("zk", "svc")
    assert [e.address for e in diff.removed] == ["a:1"] and not diff.deleted
    assert model.cluster("svc").endpoints["b:1"].sources == ("file",)
    last = model.withdraw("file", "svc")
    assert last.deleted and model.cluster("svc") is None
    assert model.withdraw("file", "svc").empty and model.withdraw("x", "nope").empty


def test_replace_source_withdraws_clusters_it_no_longer_lists():
    model = ClusterModel()
    model.apply("zk", "one", [spec("a:1")])
    model.apply("zk", "two", [spec("b:1")])
    diffs = model.replace_source("zk", {"two": [spec("b:1")], "three": [spec("c:1")]})
    assert {d.cluster for d in diffs} == {"one", "three"}
    assert model.source_clusters("zk") == ["two", "three"]


def test_settings_precedence_persistence_and_change_flag():
    model = ClusterModel(source_order=["file", "zk"])
    assert model.apply("zk", "svc", [], settings={"lb": "random"}).settings_changed
    assert model.settings("svc") == {"lb": "random"}
    assert not model.apply("zk", "svc", [spec("a:1")]).settings_changed     # kept when not given
    assert model.settings("svc") == {"lb": "random"}
    assert model.apply("file", "svc", [], settings={"lb": "round_robin"}).settings_changed
    assert model.settings("svc") == {"lb": "round_robin"}
    assert model.withdraw("file", "svc").settings_changed
    assert model.settings("svc") == {"lb": "random"} and model.settings("nope") is None
    assert model.apply("zk", "svc", [spec("a:1")], settings=None).settings_changed   # None clears, KEEP keeps
    assert model.settings("svc") is None
    model.apply("zk", "svc", [], settings={"lb": "random"})
    model.replace_source("zk", {"svc": []})                                     # a snapshot without settings
    assert model.settings("svc") is None


def test_endpoint_routable_and_json():
    model = ClusterModel()
    model.apply("zk", "svc", [spec("a:1"), spec("b:1", enabled=False), spec("c:1", weight=0),
                              spec("d:1", health=Health.DRAINING), spec("[::1]:8080", zone="z")])
    endpoints = model.cluster("svc").endpoints
    assert [a for a, e in sorted(endpoints.items()) if e.routable] == ["[::1]:8080", "a:1"]
    v6 = endpoints["[::1]:8080"]
    assert (v6.host, v6.port) == ("::1", 8080)
    assert v6.to_json()["zone"] == "z" and v6.to_json()["sources"] == ["zk"]


@pytest.mark.parametrize("address", ["nohost", ":80", "h:0", "h:99999", "h:x"])
def test_bad_addresses_are_named(address):
    with pytest.raises(ValueError, match="not"):
        split_address(address)
    with pytest.raises(ValueError):
        EndpointSpec(address)


def test_negative_weight_is_rejected():
    with pytest.raises(ValueError, match="negative"):
        EndpointSpec("a:1", weight=-1)


def test_instances_at_one_address_are_separate_endpoints():
    m = ClusterModel()
    d = m.apply("zk", "svc", [EndpointSpec("10.0.0.1:20880", version="1.0.0", instance="/1.0.0"),
                              EndpointSpec("10.0.0.1:20880", version="2.0.0", instance="/2.0.0")])
    assert sorted(e.key for e in d.added) == ["10.0.0.1:20880#/1.0.0", "10.0.0.1:20880#/2.0.0"]
    assert {e.address for e in d.added} == {"10.0.0.1:20880"}
    d = m.apply("zk", "svc", [EndpointSpec("10.0.0.1:20880", version="2.0.0", instance="/2.0.0", weight=5)])
    assert [e.key for e in d.removed] == ["10.0.0.1:20880#/1.0.0"] and d.changed[0][1].weight == 5
    assert m.cluster("svc").endpoints["10.0.0.1:20880#/2.0.0"].to_json()["instance"] == "/2.0.0"
