"""Every TLS context of a running meshd: the file watcher that rotates them, ``GET /certs``, and the metrics
``meshd_tls_cert_expiry_seconds{tls,file}``, ``meshd_tls_handshake_errors_total{listener,reason}`` and
``meshd_tls_reload_errors`` (1 while a context's files fail and the old certificates stay in force)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterator

from meshd.tls.accept import HandshakeErrors
from meshd.tls.context import ClientTls, ServerTls, _Material

log = logging.getLogger("meshd.tls")


class TlsRegistry:
    def __init__(self, watch_interval: float = 1.0) -> None:
        self.materials: dict[str, _Material] = {}
        self.errors = HandshakeErrors()
        self.watch_interval = watch_interval
        self._task: asyncio.Task | None = None

    def add(self, material: _Material) -> _Material:
        self.materials[material.name] = material
        return material

    def server(self, name: str) -> ServerTls | None:
        found = self.materials.get(name)
        return found if isinstance(found, ServerTls) else None

    def client(self, name: str) -> ClientTls | None:
        found = self.materials.get(name)
        return found if isinstance(found, ClientTls) else None

    # -- rotation -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None and self.materials:
            self._task = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_interval)
            self.check()

    def check(self) -> list[str]:
        """Reload every context whose files changed; the names of those now in force anew."""
        done = []
        for name, material in list(self.materials.items()):
            if material.changed():
                try:
                    if material.reload():
                        done.append(name)
                except Exception:   # noqa: BLE001 - a watcher round must never stop the watcher
                    log.exception("tls %s: reloading", name)
        return done

    # -- admin ----------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"tls": [m.status() for m in self.materials.values()],
                "handshake_errors": [{"listener": l, "reason": r, "count": n}
                                     for (l, r), n in sorted(self.errors.counts.items())]}

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        expiry = GaugeMetricFamily("meshd_tls_cert_expiry_seconds", "Seconds until a certificate in force expires",
                                   labels=["tls", "file"])
        failing = GaugeMetricFamily("meshd_tls_reload_errors",
                                    "1 while a TLS context's files fail to load (the old certificates stay)",
                                    labels=["tls"])
        for name, material in self.materials.items():
            for path, seconds in material.expiry():
                expiry.add_metric([name, path], seconds)
            failing.add_metric([name], 1.0 if material.last_error else 0.0)
        yield expiry
        yield failing
        errors = CounterMetricFamily("meshd_tls_handshake_errors", "Failed TLS handshakes and refused peers",
                                     labels=["listener", "reason"])
        for (listener, reason), count in sorted(self.errors.counts.items()):
            errors.add_metric([listener, reason], count)
        yield errors
