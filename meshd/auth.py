"""Bearer tokens and the audit log of the HTTP APIs that change meshd: the admin API and the registry APIs.

The contract, the same for every API that takes a :class:`BearerAuth` middleware:

- With a token (``<section>.token``, or ``<section>.token_file`` read once at start): every mutating request
  needs ``Authorization: Bearer <token>``. Mutating means any method but GET, HEAD and OPTIONS, so an endpoint
  added later is covered without anyone remembering to. Reads from loopback peers stay open; reads from other
  peers need the token too, except ``open_paths`` (the admin API's health probes). The token is compared in
  constant time: both sides are hashed (SHA-256) and the digests compared with ``hmac.compare_digest``, so
  not even its length leaks, and only the digest is kept here. A missing or wrong token gets 401 with
  ``WWW-Authenticate: Bearer`` (RFC 6750) and never reaches the handler.
- Without a token every request is served. :meth:`meshd.config.Config._tokens_where_needed` refuses a
  configuration that binds such an API to a non-loopback address.
- Audit (logger ``meshd.audit``): each mutation that passed the check writes one INFO line when it is
  answered, whatever the answer: who (the peer's address and identity), where and what (the API, the method,
  the path with its query), the result (the status and the handler's note, ``request[AUDIT]``)::

      audit: 127.0.0.1:51234 (spiffe://cluster.local/ns/ops/sa/cli) admin PUT /rules/flow -> 200 (applied, version 4)

  A refused request writes one WARNING line (``... admin POST /drain refused: 401 wrong token``). The identity
  is ``request[IDENTITY]`` (the verified client certificate's SPIFFE id or name, set by an mTLS server),
  ``-`` when there is none. The presented token never appears in a line, nor in a reply.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from configkit import is_loopback
from meshd.config import TOKEN_RULE, TOKEN_TEXT

audit = logging.getLogger("meshd.audit")

#: What a handler says it did, for the audit line ("applied, version 4").
AUDIT = web.RequestKey("audit", str)
#: The verified client certificate's identity (an mTLS server sets it before this middleware runs).
IDENTITY = web.RequestKey("identity", str)

#: Methods that only read; every other method is a mutation.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenError(Exception):
    """A ``token_file`` that cannot be used (unreadable, empty, not a token); the message names the key."""


def load_token(section: Any, key: str, resolve_path: Callable[[str], Path]) -> bytes | None:
    """The token of a config section with ``token`` / ``token_file`` (``key`` names the section in errors):
    the file is read now, relative to the config file, stripped of white space; None when neither is set."""
    if section.token is not None:
        return section.token.get_secret_value().encode()
    if section.token_file is None:
        return None
    path = resolve_path(section.token_file)
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenError(f"{key}.token_file {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TokenError(f"{key}.token_file {path}: {TOKEN_RULE}") from None
    if not text:
        raise TokenError(f"{key}.token_file {path}: the file is empty")
    if not TOKEN_TEXT.fullmatch(text):
        raise TokenError(f"{key}.token_file {path}: {TOKEN_RULE}")
    return text.encode()


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def peer(request: web.Request) -> tuple[str, str]:
    """(host, "host:port") of the request's peer ("" and "-" when the connection is gone)."""
    transport = request.transport
    name = transport.get_extra_info("peername") if transport is not None else None
    if not name:
        return "", "-"
    host, port = name[0], name[1]
    return host, (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def json_refusal(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class BearerAuth:
    """The token check and audit of one API (see the module docstring); :meth:`middleware` goes first in the
    application's middlewares so that the audit line sees the reply the client gets."""

    def __init__(self, token: bytes | None, api: str, *, open_paths: frozenset[str] = frozenset(),
                 refuse: Callable[[int, str], web.Response] = json_refusal) -> None:
        self._digest = _digest(token) if token is not None else None
        self.api = api
        self.open_paths = open_paths
        self.refuse = refuse

    @property
    def enabled(self) -> bool:
        return self._digest is not None

    def __repr__(self) -> str:
        return f"<BearerAuth {self.api} {'token' if self.enabled else 'open'}>"

    def refusal(self, authorization: str | None) -> str:
        """Why a request with this ``Authorization`` header is refused ("" when it carries the token)."""
        if self._digest is None:
            return ""
        if not authorization:
            return "no token"
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return "not a bearer token"
        given = _digest(presented.strip().encode("utf-8", "surrogatepass"))
        return "" if hmac.compare_digest(given, self._digest) else "wrong token"

    def needs_token(self, request: web.Request, host: str) -> bool:
        if self._digest is None:
            return False
        if request.method not in READ_METHODS:
            return True
        return request.path not in self.open_paths and not is_loopback(host)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host, who = peer(request)
        identity = request.get(IDENTITY) or "-"
        what = f"{self.api} {request.method} {request.path_qs}"
        if self.needs_token(request, host):
            reason = self.refusal(request.headers.get("Authorization"))
            if reason:
                audit.warning("audit: %s (%s) %s refused: 401 %s", who, identity, what, reason)
                response = self.refuse(401, f"unauthorized ({reason}): send Authorization: Bearer <{self.api}.token>")
                error = ', error="invalid_token"' if reason == "wrong token" else ""
                response.headers["WWW-Authenticate"] = f'Bearer realm="meshd {self.api}"{error}'
                return response
        if request.method in READ_METHODS:
            return await handler(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            note = request.get(AUDIT)
            audit.info("audit: %s (%s) %s -> %d%s", who, identity, what, status, f" ({note})" if note else "")
