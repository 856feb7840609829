"""The ACK/NACK log of the test control plane: every request received and every response sent, per stream.

Contract:
- :class:`RequestRecord` is one client request as the server classified it (``kind``):
  ``"request"`` (no ``response_nonce``: the first request of a type on a stream, or a spontaneous Delta
  (un)subscribe), ``"ack"`` (nonce of the latest response of that type, no ``error_detail``), ``"nack"``
  (``error_detail`` set; the xDS protocol: NACKs are detected by ``error_detail``, never by comparing versions),
  ``"stale"`` (SotW only: the nonce of a response that a newer one of the same type superseded; ignored).
  Delta ACK/NACKs carry the nonce; their ``version`` is the ``system_version_info`` of the response they
  answer, looked up by nonce.
- :class:`ResponseRecord` is one response sent (version, nonce, names, and for Delta the removed names).
- :class:`ExchangeLog` appends records (on the server's event loop) and wakes waiters; ``wait_for`` is an
  ``async`` predicate wait with a bounded timeout that raises :class:`TimeoutError` listing what was seen.
  Sync callers go through :class:`~integration.xds.threaded.AdsServerThread`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar, Union

R = TypeVar("R")
Record = Union["RequestRecord", "ResponseRecord"]


@dataclass(frozen=True)
class RequestRecord:
    """One request from a client (see the module docstring for ``kind``)."""

    stream: int
    variant: str  # "sotw" | "delta"
    kind: str  # "request" | "ack" | "nack" | "stale"
    type_url: str
    version: str
    nonce: str
    resource_names: tuple[str, ...]  # SotW: the full list; Delta: the names subscribed by this request
    node_id: str
    error_detail: str | None = None
    error_code: int | None = None
    unsubscribed: tuple[str, ...] = ()  # Delta only
    initial_resource_versions: dict[str, str] = field(default_factory=dict)  # Delta only
    at: float = field(default_factory=time.monotonic)

    @property
    def short_type(self) -> str:
        return self.type_url.rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        err = f" error={self.error_detail!r}" if self.error_detail is not None else ""
        return (f"<{self.variant}#{self.stream} {self.kind} {self.short_type} v={self.version!r} "
                f"nonce={self.nonce!r} names={list(self.resource_names)}{err}>")


@dataclass(frozen=True)
class ResponseRecord:
    """One response the server sent."""

    stream: int
    variant: str
    type_url: str
    version: str
    nonce: str
    resource_names: tuple[str, ...]
    removed: tuple[str, ...] = ()  # Delta only
    at: float = field(default_factory=time.monotonic)

    def __repr__(self) -> str:
        removed = f" removed={list(self.removed)}" if self.removed else ""
        return (f"<{self.variant}#{self.stream} sent {self.type_url.rsplit('.', 1)[-1]} v={self.version!r} "
                f"nonce={self.nonce!r} names={list(self.resource_names)}{removed}>")


class ExchangeLog:
    """Requests and responses in arrival order, with async waits (see the module docstring)."""

    def __init__(self) -> None:
        self.requests: list[RequestRecord] = []
        self.responses: list[ResponseRecord] = []
        self._changed: asyncio.Event | None = None

    def add(self, record: Record) -> None:
        if isinstance(record, RequestRecord):
            self.requests.append(record)
        else:
            self.responses.append(record)
        if self._changed is not None:
            self._changed.set()

    def notify(self) -> None:
        """Wake waiters without a new record (e.g. on a stream opening or closing)."""
        if self._changed is not None:
            self._changed.set()

    async def wait_for(self, predicate: Callable[[], R | None], timeout: float, what: str) -> R:
        """Return the first truthy ``predicate()`` result, re-evaluated after every record; raise
        :class:`TimeoutError` after ``timeout`` seconds naming ``what`` and the last records seen."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                tail = "\n  ".join(map(repr, self.requests[-8:] + self.responses[-8:]))  # type: ignore[operator]
                raise TimeoutError(f"xDS server: no {what} within {timeout}s; last records:\n  {tail}")
            self._changed = self._changed or asyncio.Event()
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass
