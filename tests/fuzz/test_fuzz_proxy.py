"""The decoders inside the proxy: mutated traffic on each listener of an in-process meshd (HTTP/1 heads
through httptools and the downstream's callbacks, Dubbo and Bolt through the RPC downstream and its
adapters, all three through an ``auto`` listener's sniffing). Properties: :func:`targets.check_proxy`."""

from __future__ import annotations

import asyncio

from hypothesis import example, given

from tests.fuzz import targets
from tests.fuzz.bounds import fuzz
from tests.fuzz.mutate import chunkings, seeds_or_random
from tests.fuzz.rig import Rig
from tests.fuzz.seeds import HTTP_REQUESTS, Seed, frame_seeds

FRAMES = frame_seeds()
HTTP = [Seed(r) for r in HTTP_REQUESTS]
SEEDS = {"http": HTTP, "dubbo": FRAMES["dubbo"], "bolt": FRAMES["bolt"],
         "auto": HTTP + FRAMES["dubbo"] + FRAMES["bolt"]}
OVERSIZED = {
    "http": b"GET / HTTP/1.1\r\nHost: svc\r\nContent-Length: 99999999999999999999\r\n\r\n",
    "dubbo": b"\xda\xbb\xc2\x00" + bytes(7) + b"\x01" + b"\x7f\xff\xff\xff" + b"\x05",
    "bolt": b"\x01\x01\x00\x01\x01\x00\x00\x00\x01\x01\x00\x00\x0b\xb8\xff\xff\xff\xff\x7f\xff\xff\xff",
}
OVERSIZED["auto"] = OVERSIZED["dubbo"]


def run(listener: str, examples: int) -> None:
    async def main() -> None:
        rig = await Rig.start()
        try:
            @fuzz(examples)
            @example(OVERSIZED[listener], [])
            @example(SEEDS[listener][0].data, [1])
            @given(seeds_or_random(SEEDS[listener]), chunkings)
            def case(data, chunks):
                targets.check_proxy(rig, listener, data, chunks)
            case()
        finally:
            await rig.stop()
    asyncio.run(main())


def test_http_listener():
    run("http", 3000)


def test_dubbo_listener():
    run("dubbo", 2500)


def test_bolt_listener():
    run("bolt", 2500)


def test_auto_listener():
    run("auto", 2000)
