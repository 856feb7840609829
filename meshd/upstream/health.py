"""Active health checking: per cluster, probe every host on an interval (with jitter) and flip its
verdict after ``unhealthy_threshold`` consecutive failures or ``healthy_threshold`` consecutive successes.

Probes (each on its own short-lived connection, never through the proxy path, so health-check traffic
never reaches governance statistics):

- ``tcp``: the connection opens;
- ``http``: ``GET <path>`` answers one of ``expected_statuses``;
- ``dubbo``: a heartbeat event is answered with a heartbeat ack (status 20);
- ``bolt``: a heartbeat is answered with a heartbeat response (status SUCCESS).

Hosts start healthy (a sidecar must not refuse traffic while its first probe is in flight); the verdict
and the last failure reason show in ``/clusters``. The decision part (:func:`next_verdict`) is pure.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from meshd.codec import bolt, dubbo
from meshd.codec.base import CodecError, NEED_DATA
from meshd.config import HealthCheck

log = logging.getLogger("meshd.health")


def next_verdict(healthy: bool, streak: int, ok: bool, check: HealthCheck) -> tuple[bool, int]:
    """(healthy, streak) after one probe result. ``streak`` counts consecutive results that disagree
    with the current verdict; reaching the threshold flips the verdict."""
    if ok == healthy:
        return healthy, 0
    streak += 1
    threshold = check.healthy_threshold if ok else check.unhealthy_threshold
    if streak >= threshold:
        return ok, 0
    return healthy, streak


async def probe(check: HealthCheck, host: str, port: int) -> str:
    """Run one probe; "" on success, else the reason."""
    try:
        async with asyncio.timeout(check.timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                return await _PROBES[check.type](check, reader, writer, host)
            finally:
                writer.close()
    except asyncio.TimeoutError:
        return f"timeout after {check.timeout:g}s"
    except OSError as exc:
        return exc.strerror or str(exc)


async def _tcp(check, reader, writer, host) -> str:
    return ""


async def _http(check, reader, writer, host) -> str:
    hc = check.http
    writer.write(f"GET {hc.path} HTTP/1.1\r\nHost: {hc.host or host}\r\nUser-Agent: meshd-health-check\r\n"
                 f"Connection: close\r\n\r\n".encode())
    line = await reader.readline()
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return f"not an HTTP response: {line[:40]!r}"
    status = int(parts[1])
    return "" if status in hc.expected_statuses else f"HTTP {status}"


async def _frames(writer, reader, request: bytes, decoder, expect: Callable[[Any], str | None]) -> str:
    writer.write(request)
    while True:
        data = await reader.read(65536)
        if not data:
            return "connection closed before the heartbeat answer"
        decoder.receive_data(data)
        while (event := decoder.next_event()) is not NEED_DATA:
            verdict = expect(event)
            if verdict is not None:
                return verdict


async def _dubbo(check, reader, writer, host) -> str:
    def expect(event):
        if isinstance(event, dubbo.DubboHeartbeatAck):
            return "" if event.status == 20 else f"heartbeat answered with status {event.status}"
        return None
    try:
        return await _frames(writer, reader, dubbo.encode_heartbeat(1), dubbo.DubboDecoder(), expect)
    except CodecError as exc:
        return f"bad Dubbo answer: {exc}"


async def _bolt(check, reader, writer, host) -> str:
    def expect(event):
        if isinstance(event, bolt.BoltHeartbeatAck):
            return "" if event.status == 0 else f"heartbeat answered with status {event.status}"
        if isinstance(event, bolt.BoltResponse):
            return f"heartbeat answered with status {event.status}"
        return None
    try:
        return await _frames(writer, reader, bolt.encode_heartbeat(1), bolt.BoltDecoder(), expect)
    except CodecError as exc:
        return f"bad Bolt answer: {exc}"


_PROBES = {"tcp": _tcp, "http": _http, "dubbo": _dubbo, "bolt": _bolt}


class HealthChecker:
    """Probes every host of one cluster; ``on_change(host, healthy)`` is called when a verdict flips."""

    def __init__(self, cluster: Any, on_change: Callable[[Any, bool], None]) -> None:
        self.cluster = cluster
        self.on_change = on_change
        self._task: asyncio.Task | None = None
        self._streaks: dict[str, int] = {}

    def start(self) -> None:
        if self.cluster.settings.health_checks and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        check = self.cluster.settings.health_checks[0]
        rng = self.cluster.rng
        await asyncio.sleep(rng.uniform(0, check.interval_jitter))   # sidecars do not probe in lockstep
        while True:
            hosts = list(self.cluster.hosts.values())
            results = await asyncio.gather(*(probe(check, h.host, h.port) for h in hosts), return_exceptions=True)
            for host, reason in zip(hosts, results):
                if isinstance(reason, BaseException):
                    reason = f"probe error: {reason!r}"
                self._record(host, reason, check)
            await asyncio.sleep(check.interval + rng.uniform(0, check.interval_jitter))

    def _record(self, host: Any, reason: str, check: HealthCheck) -> None:
        if host.key not in self.cluster.hosts:
            return                            # removed while probing
        was = host.hc_healthy
        healthy, streak = next_verdict(was, self._streaks.get(host.key, 0), not reason, check)
        self._streaks[host.key] = streak
        if reason:
            host.hc_failed = reason
        if healthy != was:
            host.hc_healthy = healthy
            log.warning("cluster %s: %s is now %s%s", self.cluster.name, host.address,
                        "healthy" if healthy else "unhealthy", f" ({reason})" if reason else "")
            self.on_change(host, healthy)
