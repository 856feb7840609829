"""Coverage-guided fuzzing of the same properties with atheris (libFuzzer), when it installs.

``python -m tests.fuzz.coverage_guided TARGET [libFuzzer flags] CORPUS_DIR`` fuzzes one target until
libFuzzer's ``-max_total_time`` (the runner, ``python -m tests.fuzz``, passes it), starting from the corpus
:func:`write_corpus` fills with the seeds. Each target turns the fuzzer's bytes into the arguments of a
``targets.check_*`` function (the first bytes choose read sizes, flags, grammar); any exception is a
crash, saved by libFuzzer with the input that caused it. meshd's modules are instrumented for coverage;
the hang guard of :mod:`.bounds` applies per input, memory is bounded by libFuzzer's ``-rss_limit_mb``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

TARGETS = ("dubbo-stream", "bolt-stream", "dubbo-body", "bolt-content", "header-map", "hessian-final",
           "hessian-draft", "sniff", "zookeeper", "sofaregistry", "nacos", "proxy-http", "proxy-dubbo",
           "proxy-bolt", "proxy-auto")


INSTRUMENTED = ("meshd.codec.dubbo", "meshd.codec.bolt", "meshd.codec.hessian2", "meshd.codec.sniff",
                "meshd.proxy.rpc", "meshd.proxy.http", "discovery.zookeeper.service", "discovery.sofaregistry.data",
                "discovery.nacos.naming")


def _chunks(first: int) -> list[int]:
    """Read sizes from one byte: one read, one byte at a time, or a small cycle."""
    if first < 64:
        return []
    if first < 96:
        return [1]
    return [1 + first % 7, 1 + first % 61, 3]


def _texts(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").split("\n")[:6] or [""]


def make_target(name: str) -> Callable[[bytes], None]:
    from tests.fuzz import targets
    if name in ("dubbo-stream", "bolt-stream"):
        protocol = name.split("-")[0]
        return lambda data: targets.check_stream(protocol, data[1:], _chunks(data[0]) if data else [])
    if name == "dubbo-body":
        flags = (0xC2, 0x82, 0xE2, 0xA2, 0x02, 0x22, 0xC3)
        return lambda data: targets.check_dubbo_body(data[2:], flags[data[0] % 7] if data else 0xC2,
                                                     (0, 20, 40, 80)[data[1] % 4] if len(data) > 1 else 20)
    if name == "bolt-content":
        return lambda data: targets.check_bolt_content(data[1:], (1, 1, 11)[data[0] % 3] if data else 1)
    if name == "header-map":
        return targets.check_header_map
    if name.startswith("hessian-"):
        grammar = name.split("-")[1]
        return lambda data: targets.check_hessian(grammar, data)
    if name == "sniff":
        return lambda data: targets.check_sniff(data[:40])
    if name == "zookeeper":
        return lambda data: targets.check_zookeeper(_texts(data), _texts(data)[:1], 1_700_000_030_000)
    if name == "sofaregistry":
        return lambda data: targets.check_sofaregistry(_texts(data)[1:] or [""], _texts(data)[0], 1_700_000_030_000)
    if name == "nacos":
        return _nacos_target(targets)
    if name.startswith("proxy-"):
        return _proxy_target(targets, name.split("-")[1])
    raise SystemExit(f"unknown target {name!r} (known: {', '.join(TARGETS)})")


def _nacos_target(targets: Any) -> Callable[[bytes], None]:
    from tests.fuzz.seeds import NACOS_HOST

    def run(data: bytes) -> None:
        try:
            doc = json.loads(data.decode("utf-8", "replace"))
        except ValueError:
            doc = None
        host: Any = {**NACOS_HOST, **doc} if isinstance(doc, dict) else doc
        targets.check_nacos([host], "providers:org.example.DemoService:1.0.0:g1", 1_700_000_030_000)
    return run


def _proxy_target(targets: Any, listener: str) -> Callable[[bytes], None]:
    from tests.fuzz.rig import Rig
    logging.disable(logging.WARNING)                  # "malformed stream, closing" for nearly every input
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    rig = loop.run_until_complete(Rig.start())       # kept for the process: libFuzzer exits, never returns
    return lambda data: targets.check_proxy(rig, listener, data[1:], _chunks(data[0]) if data else [])


def write_corpus(name: str, directory: Path) -> None:
    """The seeds of ``name`` as libFuzzer corpus files (the first byte 0: one read, default flags)."""
    from tests.fuzz import seeds
    frames = seeds.frame_seeds()
    if name in ("dubbo-stream", "bolt-stream", "proxy-dubbo", "proxy-bolt"):
        items = [b"\x00" + s.data for s in frames["dubbo" if "dubbo" in name else "bolt"]]
    elif name == "proxy-http":
        items = [b"\x00" + r for r in seeds.HTTP_REQUESTS]
    elif name == "proxy-auto":
        items = [b"\x00" + s for s in [f.data for f in frames["dubbo"] + frames["bolt"]] + seeds.HTTP_REQUESTS]
    elif name == "dubbo-body":
        items = [b"\x00\x01" + s.data[16:] for s in frames["dubbo"]]
    elif name == "bolt-content":
        items = [b"\x00" + s.data for g in ("draft", "final") for s in seeds.hessian_seeds()[g]]
    elif name == "header-map":
        items = [s.data for s in seeds.header_map_seeds()]
    elif name.startswith("hessian-"):
        items = [s.data for s in seeds.hessian_seeds()[name.split("-")[1]]]
    elif name == "sniff":
        items = [s.data[:30] for s in frames["dubbo"] + frames["bolt"]] + [r[:30] for r in seeds.HTTP_REQUESTS]
    elif name == "zookeeper":
        items = [u.encode() for u in (seeds.DUBBO_URL, seeds.SOFA_URL, seeds.OVERRIDE_URL)]
    elif name == "sofaregistry":
        items = [f"{i}\n{seeds.SOFAREGISTRY_PROVIDER}".encode() for i in seeds.SOFA_DATA_IDS]
    else:
        items = [json.dumps(seeds.NACOS_HOST).encode()]
    directory.mkdir(parents=True, exist_ok=True)
    for item in items:
        (directory / f"seed-{hashlib.sha1(item).hexdigest()[:16]}").write_bytes(item)


def main(argv: list[str]) -> None:
    import atheris
    name = argv[1]
    with atheris.instrument_imports(include=["meshd", "discovery"]):
        for module in INSTRUMENTED:           # imported here first, so that their code is instrumented
            importlib.import_module(module)
    from tests.fuzz import bounds
    bounds.USE_ALARM = False                  # libFuzzer's -timeout is the hang guard here
    target = make_target(name)
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
