"""Helpers for the SOFARegistry suites: a source on meshd's codecs, polling, providers in the model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

from discovery.model import ClusterModel
from discovery.sofaregistry import SofaRegistrySource
from meshd.discovery_wire import BoltObjectWire

IFACE = "com.example.Calc"
DATA_ID = f"{IFACE}:1.0@DEFAULT"


async def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition (the server runs on another thread) every 20 ms until true."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def source(servers: str, tmp: Path, **kw: Any) -> SofaRegistrySource:
    kw.setdefault("services", [f"{IFACE}:1.0"])
    kw.setdefault("app", "meshd-test")
    kw.setdefault("sync_timeout", 3.0)
    return SofaRegistrySource("sofareg", servers, BoltObjectWire(), snapshot_path=str(tmp / "snap.json"),
                              reconnect_delay=0.1, snapshot_delay=0.05, **kw)


def addrs(model: ClusterModel, cluster: str = IFACE) -> list[str]:
    c = model.cluster(cluster)
    return sorted(a for a, e in c.endpoints.items() if e.routable) if c else []
