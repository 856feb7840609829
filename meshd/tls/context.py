"""TLS contexts for one listener (:class:`ServerTls`) or one cluster (:class:`ClientTls`), rebuilt when their
files change.

- Server: one ``SSLContext`` per certificate; the default context's SNI callback picks by the client's name: an
  exact DNS name of a certificate, then a wildcard certificate (``*.example.com`` for ``a.example.com``), then the
  first certificate. With ``client_ca`` clients are verified (required with ``require_client_cert``); the verified
  peer must then match ``allowed_sans`` (:mod:`meshd.tls.san`), checked by :meth:`ServerTls.admit` once the
  handshake is done.
- Client: one context verifying the server against ``ca`` (else the system's CAs), presenting ``cert``/``key``
  when given, sending ``sni``; with ``verify_san`` the server's SANs must match it (and its name is not checked
  against the SNI), else the SNI name is checked as a browser checks a host name.
- Rotation (:meth:`_Material.reload`): the whole set is read and checked (:mod:`meshd.tls.certs`) and built into
  new contexts, then swapped in; new handshakes use them, open connections keep theirs. A set that fails (a file
  unreadable, a key that does not match, an expired certificate) changes nothing: the old contexts stay, and
  ``last_error`` says why.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any, Callable, Iterable, Sequence

from meshd.tls.certs import CertError, CertInfo, file_state, inspect_ca, inspect_pair
from meshd.tls.san import identity, matches, peer_sans

log = logging.getLogger("meshd.tls")
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class _Material:
    """What a listener or cluster's TLS shares: its files, their state, the certificates and the last error."""

    def __init__(self, name: str, files: Sequence[str], clock: Callable[[], float] = time.time) -> None:
        self.name, self.files, self.clock = name, tuple(f for f in files if f), clock
        self.state: tuple = ()
        self.certs: list[CertInfo] = []
        self.cas: list[CertInfo] = []
        self.last_error = ""
        self.loaded_at = 0.0
        self.reloads = 0

    def changed(self) -> bool:
        return file_state(self.files) != self.state

    def reload(self) -> bool:
        """Read and check every file and build new contexts; swap them in only if all of it worked."""
        state = file_state(self.files)
        try:
            self._build(self.clock())
        except (CertError, ssl.SSLError, OSError) as exc:
            message = str(exc) if isinstance(exc, CertError) else f"{type(exc).__name__}: {exc}"
            first = not self.loaded_at
            if message != self.last_error:
                log.error("tls %s: %s; %s", self.name, message,
                          "no certificate in force" if first else "keeping the certificates in force")
            self.last_error, self.state = message, state
            if first:
                raise CertError(f"tls {self.name}: {message}") from None
            return False
        self.state, self.last_error, self.loaded_at = state, "", self.clock()
        self.reloads += 1
        if self.reloads > 1:
            log.info("tls %s: certificates reloaded (%s)", self.name, ", ".join(c.serial for c in self.certs))
        return True

    def _build(self, now: float) -> None:
        raise NotImplementedError

    def expiry(self) -> list[tuple[str, float]]:
        """(file, seconds until not-after) of every certificate in force."""
        now = self.clock()
        return [(c.file, c.not_after - now) for c in self.certs + self.cas]

    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {"name": self.name, "certificates": [c.to_json(now) for c in self.certs],
                "ca": [c.to_json(now) for c in self.cas], "files": list(self.files), "last_error": self.last_error,
                "reloads": self.reloads}


class ServerTls(_Material):
    """A listener's (or the admin's) TLS; see the module docstring."""

    def __init__(self, name: str, certificates: Iterable[tuple[str, str]], *, client_ca: str | None = None,
                 require_client_cert: bool = False, allowed_sans: Sequence[str] = (), min_version: str = "1.2",
                 alpn: Sequence[str] = (), spec: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec                      # the config it was built from (the daemon rebuilds on a change)
        self.pairs = tuple(certificates)
        if not self.pairs:
            raise ValueError(f"tls {name}: no certificates")
        super().__init__(name, [p for pair in self.pairs for p in pair] + [client_ca or ""], clock)
        self.client_ca, self.require_client_cert = client_ca, require_client_cert
        self.allowed_sans, self.min_version, self.alpn = tuple(allowed_sans), VERSIONS[min_version], list(alpn)
        self.context: ssl.SSLContext | None = None
        self._exact: dict[str, ssl.SSLContext] = {}
        self._wild: dict[str, ssl.SSLContext] = {}
        self.reload()

    def _context(self, cert: str, key: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        ctx.load_cert_chain(cert, key)
        if self.client_ca:
            ctx.load_verify_locations(self.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        if self.alpn:
            ctx.set_alpn_protocols(self.alpn)
        return ctx

    def _build(self, now: float) -> None:
        infos = [inspect_pair(cert, key, now) for cert, key in self.pairs]
        cas = inspect_ca(self.client_ca, now) if self.client_ca else []
        contexts = [self._context(cert, key) for cert, key in self.pairs]
        exact: dict[str, ssl.SSLContext] = {}
        wild: dict[str, ssl.SSLContext] = {}
        for info, ctx in zip(infos, contexts):
            for name in info.dns_names:
                if name.startswith("*."):
                    wild.setdefault(name[2:], ctx)
                else:
                    exact.setdefault(name, ctx)
        default = contexts[0]
        default.sni_callback = self._sni
        self.context, self._exact, self._wild, self.certs, self.cas = default, exact, wild, infos, cas

    def _sni(self, sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        if not name:
            return None
        name = name.lower()
        chosen = self._exact.get(name) or self._wild.get(name.partition(".")[2])
        if chosen is not None and chosen is not ctx:
            sslobj.context = chosen
        return None

    def pick(self, name: str | None) -> ssl.SSLContext:
        """The context a client that sent ``name`` gets (tests and ``GET /certs``)."""
        name = (name or "").lower()
        return self._exact.get(name) or self._wild.get(name.partition(".")[2]) or self.context

    def front(self) -> ssl.SSLContext:
        """A context for a server that is given one context for good (aiohttp's, for the admin API): it holds no
        certificate and hands every handshake, SNI or none, to the context in force (:meth:`pick`), so rotation
        applies to it as well. It carries what OpenSSL keeps from the first context: the minimum version and
        whether a client certificate is asked for (verification then uses the chosen context's CAs)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        if self.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL

        def hand_over(sslobj: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
            sslobj.context = self.pick(name)

        ctx.sni_callback = hand_over
        return ctx

    def admit(self, peercert: dict[str, Any] | None) -> tuple[str, str]:
        """(identity, "") for a peer this listener accepts, ("", reason) otherwise (after the handshake)."""
        if not peercert:
            if self.require_client_cert or self.allowed_sans:
                return "", "no_client_cert"
            return "", ""
        if self.allowed_sans and not matches(peer_sans(peercert), self.allowed_sans):
            return "", "san_not_allowed"
        return identity(peercert), ""


class ClientTls(_Material):
    """A cluster's TLS towards its endpoints; see the module docstring."""

    def __init__(self, name: str, *, ca: str | None = None, cert: str | None = None, key: str | None = None,
                 sni: str | None = None, verify_san: Sequence[str] = (), min_version: str = "1.2",
                 alpn: Sequence[str] = (), spec: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec                      # the config it was built from (the daemon rebuilds on a change)
        if bool(cert) != bool(key):
            raise ValueError(f"tls {name}: cert and key go together")
        super().__init__(name, [ca or "", cert or "", key or ""], clock)
        self.ca, self.cert, self.key, self.sni = ca, cert, key, sni
        self.verify_san, self.min_version, self.alpn = tuple(verify_san), VERSIONS[min_version], list(alpn)
        self.context: ssl.SSLContext | None = None
        self.reload()

    def _build(self, now: float) -> None:
        infos = [inspect_pair(self.cert, self.key, now)] if self.cert and self.key else []
        cas = inspect_ca(self.ca, now) if self.ca else []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = self.min_version
        if self.ca:
            ctx.load_verify_locations(self.ca)
        else:
            ctx.load_default_certs()
        if self.cert and self.key:
            ctx.load_cert_chain(self.cert, self.key)
        ctx.check_hostname = bool(self.sni) and not self.verify_san
        if self.alpn:
            ctx.set_alpn_protocols(self.alpn)
        self.context, self.certs, self.cas = ctx, infos, cas

    def server_hostname(self, host: str) -> str:
        """What to send as SNI when dialling ``host`` (``ssl`` sends none for an IP address)."""
        return self.sni or host

    def check_peer(self, peercert: dict[str, Any] | None) -> str:
        """"" when the server's certificate passes ``verify_san``, else the reason."""
        if self.verify_san and not matches(peer_sans(peercert), self.verify_san):
            return "san_mismatch"
        return ""
