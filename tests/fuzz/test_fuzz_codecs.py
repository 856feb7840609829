"""The sans-IO codecs under mutated real frames: Dubbo and Bolt streams, their bodies, the Bolt header map,
hessian2 in both grammars, sniffing. The properties are in :mod:`tests.fuzz.targets`."""

from __future__ import annotations

import tracemalloc
from typing import Any, Callable, Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from meshd.codec import bolt
from meshd.proxy.rpc_protocols import BoltAdapter
from tests.fuzz import targets
from tests.fuzz.bounds import fuzz
from tests.fuzz.mutate import chunkings, mutated, seeds_or_random
from tests.fuzz.seeds import frame_seeds, header_map_seeds, hessian_seeds

FRAMES = frame_seeds()
HESSIAN = hessian_seeds()
MAPS = header_map_seeds()


def seeded(seeds: list, *rest: Any) -> Callable[[Callable], Callable]:
    """Every seed, unmutated, as an explicit example (followed by ``rest``)."""
    def apply(test: Callable) -> Callable:
        for seed in seeds:
            test = example(seed.data, *rest)(test)
        return test
    return apply


@pytest.fixture
def tracing() -> Iterator[None]:
    """tracemalloc on for one test (it slows allocation down; only the memory tests pay for it)."""
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


# -- stream decoders -----------------------------------------------------------------------------------

# A keyed head, an argument, an empty map, then what reads as a map tail with group=blue: the reader's
# attachments are the empty map, the raw lookup (the routing key) says blue. Routing the request by the
# decoded group left a no-group plan under the blue key, and later blue requests were forwarded by it.
_BODY = b"\x052.0.2\x17org.example.DemoService\x051.0.0\x08sayHello\x12Ljava/lang/Object;NHZ\x05group\x04blueZ"
GROUP_MISMATCH = b"\xda\xbb\xc2\x00" + (1).to_bytes(8, "big") + len(_BODY).to_bytes(4, "big") + _BODY


@fuzz(3000)
@seeded(FRAMES["dubbo"], [1])
@example(GROUP_MISMATCH, [])
@given(seeds_or_random(FRAMES["dubbo"]), chunkings)
def test_dubbo_stream(data, chunks):
    targets.check_stream("dubbo", data, chunks)


@fuzz(3000)
@seeded(FRAMES["bolt"], [1])
@given(seeds_or_random(FRAMES["bolt"]), chunkings)
def test_bolt_stream(data, chunks):
    targets.check_stream("bolt", data, chunks)


@fuzz(500)
@given(st.sampled_from(["dubbo", "bolt"]), st.data())
def test_declared_lengths_never_allocate(tracing, protocol, data):
    """Length fields overwritten with boundary values (up to 2**63-1): the peak allocation depends only on
    the bytes received, and a refused frame's bytes are dropped as they arrive."""
    stream = data.draw(mutated(FRAMES[protocol], targets.LIMIT))
    targets.check_stream(protocol, stream, data.draw(chunkings))


# -- bodies --------------------------------------------------------------------------------------------

DUBBO_BODIES = [s._replace(data=s.data[16:], lengths=()) for s in FRAMES["dubbo"] if len(s.data) > 16]


@fuzz(2500)
@seeded(DUBBO_BODIES, 0xC2, 0)
@given(seeds_or_random(DUBBO_BODIES), st.sampled_from([0xC2, 0x82, 0xE2, 0xA2, 0x02, 0x22, 0xC3, 0xC6]),
       st.sampled_from([0, 20, 20, 40, 80]))
def test_dubbo_bodies(body, flag, status):
    targets.check_dubbo_body(body, flag, status)


def test_a_warm_bolt_adapter_keys_another_codec_as_a_fresh_one():
    """Found by atheris: the last-key fast path compared the bytes from the lengths on, not the codec byte,
    so a request in another serialization, byte for byte the last keyed one otherwise, took its key (a
    fresh adapter gives it none: its content cannot be read)."""
    call = next(s.data for s in FRAMES["bolt"] if s.data[:2] == b"\x01\x01" and b"sofa_head_method_name" in s.data)
    other = bytearray(call)
    other[9] = 11                                                        # protobuf
    events = []
    for frame in (call, bytes(other)):
        dec = bolt.BoltDecoder()
        dec.receive_data(frame)
        events.append(dec.next_event())
    warm = BoltAdapter()
    assert warm.route_key(events[0], targets._NAMES) is not None
    assert warm.route_key(events[1], targets._NAMES) == BoltAdapter().route_key(events[1], targets._NAMES) is None


BOLT_CONTENTS = [s for g in ("draft", "final") for s in HESSIAN[g]]


@fuzz(2500)
@seeded(BOLT_CONTENTS, 1)
@given(seeds_or_random(BOLT_CONTENTS), st.sampled_from([1, 1, 1, 11, 12]))
def test_bolt_contents(content, codec):
    targets.check_bolt_content(content, codec)


@fuzz(2500)
@seeded(MAPS)
@example(b"\x00\x00\x00\x07service\x00\x00\x00\x01A\x00\x00\x00\x07service\x00\x00\x00\x01B")
@given(seeds_or_random(MAPS, max_size=300))
def test_bolt_header_map(raw):
    targets.check_header_map(raw)


@fuzz(3000)
@seeded(HESSIAN["final"])
@given(seeds_or_random(HESSIAN["final"]))
def test_hessian_final(data):
    targets.check_hessian("final", data)


@fuzz(3000)
@seeded(HESSIAN["draft"])
@given(seeds_or_random(HESSIAN["draft"]))
def test_hessian_draft(data):
    targets.check_hessian("draft", data)


@fuzz(300)
@given(st.sampled_from(["final", "draft"]), st.data())
def test_hessian_lengths_never_allocate(tracing, grammar, data):
    targets.check_hessian(grammar, data.draw(mutated(HESSIAN[grammar])))


@fuzz(1500)
@given(st.one_of(seeds_or_random(FRAMES["dubbo"] + FRAMES["bolt"], max_size=40),
                 st.sampled_from([b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x16\x03\x01\x02\x00", b"GET / HTTP/1.1",
                                  b"OPTIONS * HTTP/1.1"]).map(lambda b: b[:30])))
def test_sniff(data):
    targets.check_sniff(data)
