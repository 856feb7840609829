"""Accepting TLS connections on a listener: the handshake, its failures, the peer check, and sniffing on ``auto``.

meshd accepts the socket itself (``loop.sock_accept``) and hands it to the event loop's TLS
(``loop.connect_accepted_socket(..., ssl=...)``, uvloop's native SSL), which raises when the handshake fails: so
every failure is counted per listener and reason (``meshd_tls_handshake_errors_total``) and logged once per peer
address per minute, and none reaches the listener. After the handshake :meth:`ServerTls.admit` checks the peer
(client certificate, ``allowed_sans``); an admitted connection's protocol gets the peer's identity
(``identity``: its SPIFFE id or name, the caller origin for governance).

On an ``auto`` listener the first bytes are peeked at (``MSG_PEEK``, nothing consumed): a TLS handshake record
(``0x16 0x03``) gets TLS, anything else is plaintext (sniffed as usual) when ``plaintext: allow``, else closed and
counted (``plaintext_refused``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from typing import Any, Callable

from meshd.tls.context import ServerTls

log = logging.getLogger("meshd.tls")


def handshake_reason(exc: BaseException) -> str:
    """A short, countable reason for a failed handshake."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = (exc.verify_message or "").lower()
        for words, reason in (("expired", "cert_expired"), ("self-signed", "self_signed"),
                              ("self signed", "self_signed"), ("not yet valid", "cert_not_yet_valid"),
                              ("unable to get local issuer", "unknown_ca"), ("hostname", "name_mismatch")):
            if words in message:
                return reason
        return "cert_verify_failed"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").lower()
        for words, name in (("peer_did_not_return_a_certificate", "no_client_cert"),
                            ("certificate_required", "no_client_cert"), ("unknown_ca", "unknown_ca"),
                            ("certificate_expired", "cert_expired"), ("bad_certificate", "bad_certificate"),
                            ("wrong_version_number", "not_tls"), ("http_request", "not_tls"),
                            ("unsupported_protocol", "protocol_version"), ("version", "protocol_version"),
                            ("no_shared_cipher", "no_shared_cipher"), ("alpn", "no_application_protocol")):
            if words in reason:
                return name
        return reason or "ssl_error"
    if isinstance(exc, (ConnectionError, OSError)):
        return "reset"
    return type(exc).__name__


class HandshakeErrors:
    """Failed handshakes per (listener, reason), and the once-per-peer-per-minute log."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self._logged: dict[tuple[str, str], float] = {}
        self._clock = clock

    def record(self, listener: str, reason: str, peer: str, detail: str = "") -> None:
        key = (listener, reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        now = self._clock()
        host = peer.rpartition(":")[0] or peer
        if now - self._logged.get((listener, host), -1e9) >= 60.0:
            self._logged[(listener, host)] = now
            log.warning("listener %s: TLS handshake with %s failed: %s%s", listener, peer, reason,
                        f" ({detail})" if detail else "")
            if len(self._logged) > 10000:
                self._logged.clear()


class _Admission(asyncio.Protocol):
    """The protocol of a TLS connection until the peer is checked; then the listener's protocol takes over."""

    __slots__ = ("acceptor", "peer")

    def __init__(self, acceptor: "TlsAcceptor", peer: str) -> None:
        self.acceptor, self.peer = acceptor, peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        acceptor = self.acceptor
        ident, reason = acceptor.tls.admit(transport.get_extra_info("peercert"))
        if reason:
            acceptor.errors.record(acceptor.listener, reason, self.peer)
            transport.abort()
            return
        handler = acceptor.factory()
        handler.identity = ident
        transport.set_protocol(handler)
        handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:      # only before the hand-over, which connection_made does
        pass


class TlsAcceptor:
    """The accept loop of one TLS listener (see the module docstring)."""

    def __init__(self, listener: str, sock: socket.socket, factory: Callable[[], Any], tls: ServerTls,
                 errors: HandshakeErrors, *, sniff: bool = False, plaintext: bool = False,
                 handshake_timeout: float = 10.0, sniff_timeout: float = 5.0,
                 admit_connection: Callable[[socket.socket], bool] | None = None) -> None:
        self.listener, self.sock, self.factory, self.tls, self.errors = listener, sock, factory, tls, errors
        self.sniff, self.plaintext = sniff, plaintext
        self.handshake_timeout, self.sniff_timeout = handshake_timeout, sniff_timeout
        self.admit_connection = admit_connection
        self.handshakes = 0
        self.task: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()

    def handshaking(self) -> int:
        """Accepted connections not handed to the listener's protocol yet (sniffing or in their handshake)."""
        return len(self._pending)

    def start(self) -> None:
        self.sock.setblocking(False)
        self.task = asyncio.ensure_future(self._accept_loop())

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        for task in list(self._pending):
            task.cancel()
        try:
            self.sock.close()
        except OSError:
            pass

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(self.sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:             # EMFILE and friends: back off a little, keep serving
                log.warning("listener %s: accept failed: %s", self.listener, exc)
                await asyncio.sleep(0.1)
                continue
            if self.admit_connection is not None and not self.admit_connection(conn):
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = asyncio.ensure_future(self._serve(conn, _peer(addr)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: socket.socket, peer: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.sniff:
                head = await asyncio.wait_for(_peek(loop, conn, 3), self.sniff_timeout)
                if not (len(head) >= 2 and head[0] == 0x16 and head[1] == 0x03):
                    if self.plaintext and head:
                        await loop.connect_accepted_socket(self.factory, conn)
                    else:
                        self.errors.record(self.listener, "plaintext_refused" if head else "reset", peer)
                        conn.close()
                    return
            await loop.connect_accepted_socket(lambda: _Admission(self, peer), conn, ssl=self.tls.context,
                                               ssl_handshake_timeout=self.handshake_timeout)
            self.handshakes += 1
        except asyncio.CancelledError:
            conn.close()
            raise
        except (ssl.SSLError, OSError, asyncio.TimeoutError) as exc:
            self.errors.record(self.listener, handshake_reason(exc), peer, str(exc))
            conn.close()


async def _peek(loop: asyncio.AbstractEventLoop, conn: socket.socket, n: int) -> bytes:
    """The first ``n`` bytes (or fewer; b"" when the peer closed) without consuming them."""
    future = loop.create_future()
    fd = conn.fileno()

    def readable() -> None:
        loop.remove_reader(fd)
        if future.done():
            return
        try:
            future.set_result(conn.recv(n, socket.MSG_PEEK))
        except OSError as exc:
            future.set_exception(exc)
    loop.add_reader(fd, readable)
    try:
        head = await future
    finally:
        loop.remove_reader(fd)
    if 0 < len(head) < n:                       # a short first segment: wait for the rest of the prefix
        await asyncio.sleep(0.01)
        return await _peek_again(loop, conn, n, head)
    return head


async def _peek_again(loop: asyncio.AbstractEventLoop, conn: socket.socket, n: int, head: bytes) -> bytes:
    try:
        return conn.recv(n, socket.MSG_PEEK) or head
    except BlockingIOError:
        return head


def _peer(addr: Any) -> str:
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)
