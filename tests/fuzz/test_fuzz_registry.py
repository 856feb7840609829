"""Registry data under mutation: ZooKeeper znode names (Dubbo and SOFARPC layouts, override rules),
SOFARegistry data ids and provider strings, Nacos service names and instances (JSON values)."""

from __future__ import annotations

from typing import Any, Callable

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz import targets
from tests.fuzz.bounds import fuzz
from tests.fuzz.mutate import mutated_text
from tests.fuzz.seeds import (DUBBO_URL, NACOS_HOST, NACOS_SERVICES, OVERRIDE_URL, SOFA_DATA_IDS, SOFA_URL,
                              SOFAREGISTRY_PROVIDER)

NOW = 1_700_000_030_000                          # 30 s after the seeds' start times: warm-up in progress
URLS = [DUBBO_URL, SOFA_URL, OVERRIDE_URL, "empty://0.0.0.0/org.example.DemoService?category=providers",
        "dubbo://[::1]:20880/org.example.DemoService?x=1", "10.0.0.1:12200?_WEIGHT=100&p=1"]
times = st.one_of(st.just(NOW), st.integers(-(1 << 63), 1 << 63))


@fuzz(2000)
@example([DUBBO_URL, SOFA_URL], [], NOW)
@example(["dubbo://10.0.0.5:\u00b2/org.example.DemoService"], [], NOW)     # a digit int() refuses
@example([DUBBO_URL.replace("warmup=600000", "warmup=" + "9" * 5000)], [], NOW)
@example([OVERRIDE_URL.replace("priority=3", "priority=" + "9" * 5000)], [], NOW)
@given(st.lists(mutated_text(URLS), min_size=1, max_size=4), st.lists(mutated_text(URLS), max_size=2), times)
def test_zookeeper_nodes(texts, raw_names, now):
    targets.check_zookeeper(texts, raw_names, now)


@fuzz(2000)
@example([SOFAREGISTRY_PROVIDER], SOFA_DATA_IDS[1], NOW)
@example([SOFAREGISTRY_PROVIDER.replace("weight=100", "weight=" + "9" * 5000)], SOFA_DATA_IDS[0], NOW)
@example(["[[]]:12200?p=1", "["], SOFA_DATA_IDS[0], NOW)    # found by atheris: endpoints with no host
@example([SOFAREGISTRY_PROVIDER], "a" + "$a" * 40 + "!:1.0@DEFAULT", NOW)     # found by atheris: a regex that
                                                                           # took 2**40 steps to say no
@given(st.lists(mutated_text([SOFAREGISTRY_PROVIDER, SOFA_URL]), min_size=1, max_size=4),
       mutated_text(SOFA_DATA_IDS), times)
def test_sofaregistry_data(texts, data_id, now):
    targets.check_sofaregistry(texts, data_id, now)


JSON_ODD = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.sampled_from([10 ** 400, 1e307, -1, 0, 65536, "80", ""]),
    mutated_text(["1.0", "20880", "10.0.0.1", "true", "provider"]), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
META_TEXT = st.one_of(JSON_ODD, mutated_text(["100", "1700000000000", "600000", "provider", "false", "g1"]))


@st.composite
def nacos_hosts(draw: Callable[..., Any]) -> Any:
    """NACOS_HOST with some fields and metadata values replaced by odd JSON values (or not an object)."""
    if draw(st.integers(0, 20)) == 0:
        return draw(JSON_ODD)
    host = {**NACOS_HOST, "metadata": dict(NACOS_HOST["metadata"])}
    for key in draw(st.lists(st.sampled_from(sorted(NACOS_HOST)), max_size=3)):
        host[key] = draw(JSON_ODD)
    if isinstance(host.get("metadata"), dict):
        for key in draw(st.lists(st.sampled_from(["weight", "timestamp", "warmup", "side", "disabled", "enabled",
                                                   "group", "version", "zone"]), max_size=3)):
            host["metadata"][key] = draw(META_TEXT)
    return host


@fuzz(2000)
@example([NACOS_HOST], NACOS_SERVICES[0], NOW)
@example([{**NACOS_HOST, "weight": 1e307}], NACOS_SERVICES[0], NOW)          # * 100 overflows to inf
@example([{**NACOS_HOST, "weight": 10 ** 400}], NACOS_SERVICES[0], NOW)      # too large for a float
@example([{**NACOS_HOST, "ip": "[]"}], NACOS_SERVICES[0], NOW)                 # split_address said host ""
@example([{**NACOS_HOST, "metadata": {**NACOS_HOST["metadata"], "weight": 2 ** 128, "warmup": 2 ** 128}}],
         NACOS_SERVICES[0], NOW)                                              # float32: inf / inf is NaN
@given(st.lists(nacos_hosts(), min_size=1, max_size=3), mutated_text(NACOS_SERVICES), times)
def test_nacos_instances(hosts, service, now):
    targets.check_nacos(hosts, service, now)
