"""Fixtures for the Nacos tests: the in-process test server (``integration.nacos.fixtures``) and helpers for
driving the official nacos-sdk-python 3.x ``v2.nacos`` async client against it.

- ``nacos_server`` / ``nacos_server_factory`` come from the meshd pytest plugin (:mod:`integration.nacos.fixtures`);
- ``Recorder``: collects callback values and lets a test ``await rec.wait_for(pred, timeout)`` instead of sleeping;
- ``v2_config(server_addr, tmp_path, ...)``: a client config with caches and logs under the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

import pytest


class Recorder:
    """Values appended by client callbacks (on the test's event loop), awaited with a deadline.

    ``wait_for`` looks only at values after the one the previous ``wait_for`` matched, so a sequence of
    waits reads like a transcript of what the client was told."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._changed = asyncio.Event()
        self._cursor = 0

    def add(self, value: Any) -> None:
        self.values.append(value)
        self._changed.set()

    async def wait_for(self, pred: Callable[[Any], bool], timeout: float, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        seen = self._cursor
        while True:
            for index in range(seen, len(self.values)):
                if pred(self.values[index]):
                    self._cursor = index + 1
                    return self.values[index]
            seen = len(self.values)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what or 'matching value'} within {timeout}s; got {self.values!r}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass


async def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a server-side condition (the server runs on another thread) every 20 ms until true."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def v2_config(server_addr: str, tmp: Path, namespace: str = "", empty_push: bool = True) -> Any:
    pytest.importorskip("v2.nacos", reason="nacos-sdk-python>=3,<4 is not installed (pip install the test extras)")
    from v2.nacos import ClientConfigBuilder
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = (ClientConfigBuilder().server_address(server_addr).namespace_id(namespace).log_level("WARNING")
           .cache_dir(str(tmp / "cache")).log_dir(str(tmp / "log")).load_cache_at_start(False).build())
    cfg.update_cache_when_empty = empty_push
    return cfg
