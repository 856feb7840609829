"""Helpers for the ZooKeeper integration tests: write nodes as the SDKs do, wait for the model to follow."""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import quote_plus

from discovery.model import ClusterModel, Endpoint


def dubbo_provider_url(iface: str, host: str, port: int, **extra: str) -> str:
    """A Java-style Dubbo provider URL (docs/testing.md: the parameters a Dubbo provider writes, sorted)."""
    params = {"interface": iface, "side": "provider", "dynamic": "true", "dubbo": "2.0.2", "revision": "1.0.0",
              **extra}
    return f"dubbo://{host}:{port}/{iface}?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))


def add_dubbo_provider(zk, iface: str, host: str, port: int, *, root: str = "/dubbo", url: str | None = None,
                       **extra: str) -> str:
    """Create an ephemeral provider node like a Java provider (docs/testing.md); returns its path."""
    url = url or dubbo_provider_url(iface, host, port, **extra)
    zk.ensure_path(f"{root}/{iface}/providers")
    return zk.create(f"{root}/{iface}/providers/{quote_plus(url, safe='')}", b"", ephemeral=True)


def add_sofa_provider(zk, iface: str, host: str, port: int | None = 12200, *, data: bytes = b"\x01",
                      root: str = "/sofa-rpc", **extra: str) -> str:
    """Create an ephemeral SOFARPC provider node (data: b"\\x01" online, b"\\x00" offline, b"" sofa-rpc-node)."""
    params = {"version": "1.0", "uniqueId": "", "interface": iface, "weight": "100", "protocol": "bolt", **extra}
    address = f"{host}:{port}" if port else host
    url = f"bolt://{address}?" + "&".join(f"{k}={v}" for k, v in params.items())
    zk.ensure_path(f"{root}/{iface}/providers")
    return zk.create(f"{root}/{iface}/providers/{quote_plus(url, safe='')}", data, ephemeral=True)


def add_override(zk, iface: str, target: str, *, root: str = "/dubbo", **params: str) -> str:
    """Create a persistent configurator node (as dubbo-admin does) for ``target`` ("0.0.0.0", "ip", "ip:port")."""
    base = {"category": "configurators", "dynamic": "false", "enabled": "true", **params}
    url = f"override://{target}/{iface}?" + "&".join(f"{k}={v}" for k, v in sorted(base.items()))
    return zk.create(f"{root}/{iface}/configurators/{quote_plus(url, safe='')}", b"", makepath=True)


def endpoints(model: ClusterModel, cluster: str) -> dict[str, Endpoint]:
    found = model.cluster(cluster)
    return dict(found.endpoints) if found else {}


async def eventually(predicate, timeout: float = 1.0, what: str = "condition") -> float:
    """Poll ``predicate`` until true (returns the seconds it took) or fail after ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.005)


async def never(predicate, within: float = 0.3, what: str = "condition") -> None:
    """Check that ``predicate`` stays false for a short while (a "must not happen" check)."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        assert not predicate(), f"{what} happened"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(source, model: ClusterModel, synced: bool = True):
    await source.start(model)
    try:
        if synced:
            assert await source.wait_synced(10), f"{source!r} did not sync: {source.status()}"
        yield source
    finally:
        await source.stop()


async def in_thread(fn, *args):
    """Run a blocking kazoo call off the loop (the writer client is synchronous)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
