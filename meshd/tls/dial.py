"""Dialling an endpoint, with the cluster's TLS when it has one (:class:`~meshd.tls.context.ClientTls`).

The server's certificate is verified during the handshake (chain, and the SNI name unless ``verify_san`` is
set); ``verify_san`` is checked right after it, before the caller's protocol sees the connection, so a server
with the wrong identity never carries a request. A failure is an ``OSError`` (``ssl.SSLError`` is one): the
callers count it as a connect failure, which retries and outlier detection already handle.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from meshd.tls.context import ClientTls


class PeerRejected(ConnectionError):
    """The endpoint's certificate does not carry the identity the cluster wants (``verify_san``)."""


class _Check(asyncio.Protocol):
    __slots__ = ("tls", "factory", "inner", "reason")

    def __init__(self, tls: ClientTls, factory: Callable[[], Any]) -> None:
        self.tls, self.factory, self.inner, self.reason = tls, factory, None, ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.reason = self.tls.check_peer(transport.get_extra_info("peercert"))
        if self.reason:
            transport.abort()
            return
        self.inner = self.factory()
        transport.set_protocol(self.inner)
        self.inner.connection_made(transport)


async def dial(loop: asyncio.AbstractEventLoop, factory: Callable[[], Any], host: str, port: int,
               tls: ClientTls | None) -> tuple[asyncio.BaseTransport, Any]:
    """``loop.create_connection(factory, host, port)``, over TLS when ``tls`` is given; (transport, protocol)."""
    if tls is None:
        return await loop.create_connection(factory, host, port)
    transport, check = await loop.create_connection(lambda: _Check(tls, factory), host, port, ssl=tls.context,
                                                    server_hostname=tls.server_hostname(host))
    if check.inner is None:
        raise PeerRejected(f"{host}:{port}: TLS peer rejected: {check.reason} (verify_san {list(tls.verify_san)})")
    return transport, check.inner
