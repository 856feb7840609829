"""A blocking facade over :class:`~integration.xds.server.AdsServer` for test code on another thread.

Contract:
- :class:`AdsServerThread` runs an :class:`AdsServer` on a :class:`~integration.process.LoopThread` (its own,
  or one passed in and shared with other test servers). Every method blocks until the loop has done the
  work: a snapshot change returns after the responses are queued on every stream, a wait returns the
  matching :class:`~integration.xds.log.RequestRecord` or raises :class:`TimeoutError` (every wait is
  bounded). Safe to call from any thread except the loop's own.
- The log is read through :meth:`requests` / :meth:`responses` (copies taken on the loop), filtered by type
  and kind, so tests assert on transcripts without racing the loop.
- ``with AdsServerThread(...) as xds:`` starts and stops it; :meth:`close` also closes a loop it owns.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping

from google.protobuf.message import Message

from integration.ports import LOOPBACK
from integration.process import LoopThread
from integration.xds.log import RequestRecord, ResponseRecord
from integration.xds.server import AdsServer
from integration.xds.snapshot import type_url


class AdsServerThread:
    """The ADS test server driven from blocking code; see the module docstring."""

    def __init__(self, host: str = LOOPBACK, port: int = 0, unix_path: str | os.PathLike[str] | None = None,
                 loop: LoopThread | None = None, credentials: Any = None) -> None:
        self._owns_loop = loop is None
        self.loop = loop or LoopThread()
        self.server = AdsServer(host, port, unix_path, credentials)

    def __repr__(self) -> str:
        return repr(self.server)

    def __enter__(self) -> "AdsServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> str:
        return self.server.address

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def unix_uri(self) -> str | None:
        return self.server.unix_uri

    def start(self) -> "AdsServerThread":
        self.loop.run(self.server.start(), timeout=10)
        return self

    def stop(self) -> None:
        self.loop.run(self.server.stop(), timeout=10)

    def restart(self) -> None:
        self.loop.run(self.server.restart(), timeout=10)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._owns_loop:
                self.loop.close()

    # ---------------------------------------------------------------------------------- snapshot API
    def _call(self, fn: Callable[[], Any]) -> Any:
        return self.loop.call(fn, timeout=10)

    def apply(self, *, upsert: Iterable[Message] = (), replace: Mapping[str, Iterable[Message]] | None = None,
              remove: Mapping[str, Iterable[str]] | None = None, bump: Iterable[str] = ()) -> dict[str, str]:
        upsert, bump = list(upsert), list(bump)
        return self._call(lambda: self.server.apply(upsert=upsert, replace=replace, remove=remove, bump=bump))

    def upsert(self, *messages: Message) -> dict[str, str]:
        return self._call(lambda: self.server.upsert(*messages))

    def replace(self, url: str, messages: Iterable[Message]) -> dict[str, str]:
        messages = list(messages)
        return self._call(lambda: self.server.replace(url, messages))

    def remove(self, url: str, *names: str) -> dict[str, str]:
        return self._call(lambda: self.server.remove(url, *names))

    def bump(self, *urls: str) -> dict[str, str]:
        return self._call(lambda: self.server.bump(*urls))

    def version(self, url: str) -> str:
        return self._call(lambda: self.server.version(url))

    # ------------------------------------------------------------------------------------------ log
    def requests(self, url: str | None = None, kind: str | None = None, since: int = 0) -> list[RequestRecord]:
        """Logged requests from index ``since``, optionally only of one type (URL or alias) and kind."""
        want = type_url(url) if url else None
        return self._call(lambda: [r for r in self.server.log.requests[since:]
                                   if (want is None or r.type_url == want) and (kind is None or r.kind == kind)])

    def responses(self, url: str | None = None, since: int = 0) -> list[ResponseRecord]:
        want = type_url(url) if url else None
        return self._call(lambda: [r for r in self.server.log.responses[since:] if want is None or r.type_url == want])

    def mark(self) -> tuple[int, int]:
        """``(requests, responses)`` logged so far: pass as ``since=`` to look only at what follows."""
        return self._call(lambda: (len(self.server.log.requests), len(self.server.log.responses)))

    def streams(self) -> list[str]:
        """``repr`` of every live stream (its id, node and subscriptions)."""
        return self._call(lambda: [repr(s.logic) for s in self.server.sessions.values()])

    # -------------------------------------------------------------------------------------- waiting
    def wait_ack(self, url: str, version: str, timeout: float = 10.0, node_id: str | None = None,
                 variant: str | None = None) -> RequestRecord:
        return self.loop.run(self.server.wait_ack(url, version, timeout, node_id, variant), timeout + 5)

    def wait_nack(self, url: str, timeout: float = 10.0, since: int = 0) -> RequestRecord:
        return self.loop.run(self.server.wait_nack(url, timeout, since), timeout + 5)

    def wait_request(self, match: Callable[[RequestRecord], bool], timeout: float = 10.0,
                     what: str = "matching request", since: int = 0) -> RequestRecord:
        return self.loop.run(self.server.wait_request(match, timeout, what, since), timeout + 5)
