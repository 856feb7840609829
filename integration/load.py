"""A steady load from real clients through meshd, for fault tests: every failed call is recorded.

:class:`SteadyLoad` runs ``integration/peers/steady_load.js`` (apache-dubbo-js for Dubbo, sofa-rpc-node for
Bolt), which calls ``echo("<lane>-<n>")`` on ``--concurrency`` lanes without pause and checks that every
answer is the argument its caller sent::

    load = SteadyLoad(meshd_container, "dubbo")      # anything with listener_address(protocol)
    load.wait_ok(50)                                 # running, not just started
    with faults.paused(zookeeper):
        time.sleep(10)
    summary = load.stop()                            # calls in flight finish first
    assert summary["errors"] == 0 and summary["mismatched"] == 0, load.errors[:3]

The provider behind meshd must serve ``echo(String)`` on ``interface`` / ``version`` (defaults: Dubbo
``org.example.DemoService`` 1.0.0, Bolt ``com.example.Calc`` 1.0, as ``integration/peers/dubbo_provider.js``
and ``bolt_server*.js`` serve them).
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Any

from integration import peers


@dataclass
class LoadState:
    ok: int = 0
    errors: list[dict] = field(default_factory=list)
    summary: dict | None = None


class SteadyLoad:
    """A real client calling ``echo`` through meshd without pause until :meth:`stop` (``steady_load.js``)."""

    def __init__(self, meshd: Any, protocol: str, concurrency: int = 4, pause_ms: int = 20, interface: str = "",
                 version: str = "") -> None:
        self.protocol = protocol
        self.node = peers.start_node("steady_load.js", "--protocol", protocol,
                                     "--address", meshd.listener_address(protocol),
                                     "--concurrency", str(concurrency), "--pause-ms", str(pause_ms),
                                     "--interface", interface, "--version", version)
        self.state = LoadState()

    def _drain(self, wait: float = 0.0) -> None:
        try:
            line = self.node.lines.get(timeout=wait) if wait else self.node.lines.get_nowait()
            while True:
                event = line.get("event")
                if event == "progress":
                    self.state.ok = line["ok"]
                elif event == "error":
                    self.state.errors.append(line)
                elif event == "summary":
                    self.state.summary = line
                    self.state.ok = line["ok"]
                elif event == "fatal":
                    raise AssertionError(f"{self.protocol} load failed: {line}")
                line = self.node.lines.get_nowait()
        except queue.Empty:
            pass

    @property
    def ok(self) -> int:
        self._drain()
        return self.state.ok

    @property
    def errors(self) -> list[dict]:
        self._drain()
        return self.state.errors

    def wait_ok(self, at_least: int, timeout: float = 20.0) -> int:
        """Wait until ``at_least`` calls succeeded in total (the load is running, not just started)."""
        deadline = time.monotonic() + timeout
        while self.ok < at_least:
            if self.node.proc.poll() is not None:
                self._drain()
                raise AssertionError(f"{self.protocol} load exited early: {''.join(self.node.stderr)[-1500:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.protocol} load: {self.state.ok} calls ok after {timeout:.0f}s, "
                                     f"wanted {at_least}; errors: {self.state.errors[:3]}")
            self._drain(wait=0.1)
        return self.state.ok

    def stop(self, timeout: float = 15.0) -> dict:
        """Let the calls in flight finish, return the summary (``ok``, ``errors``, ``mismatched``)."""
        if self.state.summary is None and self.node.proc.poll() is None:
            self.node.proc.terminate()
            deadline = time.monotonic() + timeout
            while self.state.summary is None and time.monotonic() < deadline:
                self._drain(wait=0.1)
        self.node.stop()
        self._drain()
        if self.state.summary is None:
            raise AssertionError(f"{self.protocol} load gave no summary; stderr: {''.join(self.node.stderr)[-1500:]}")
        return self.state.summary
