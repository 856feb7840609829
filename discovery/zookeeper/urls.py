"""Registry URLs as Dubbo and SOFARPC write them into ZooKeeper node names (pure: no I/O).

A provider, consumer or configurator node is named ``URLEncoder.encode(url, "UTF-8")`` (Java). This module
decodes such names into :class:`RegistryURL` values, encodes names exactly like Java does, and renders URLs
the way each SDK writes them:

- Dubbo ``URL.toFullString()``: ``scheme://host[:port]/path?k=v&...`` with the parameters sorted by key
  (a Java ``TreeMap``), values not escaped;
- SOFARPC ``RegistryUtils.convertProviderToUrls``: ``scheme://host:port?version=1.0&k=v&...`` in insertion
  order (a path-less URL).

Parsing follows Dubbo's ``URL.valueOf`` leniently: the scheme may be missing (``ip:port?k=v``), the path may be
missing (``dubbo://ip:port?k=v``), a bare ``k`` parameter means ``k=k``, a repeated key keeps its last value.
Anything that cannot name an endpoint (no host, a port that is not a number in 1..65535) raises
:class:`URLError` naming the URL and the problem.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping
from urllib.parse import quote_plus, unquote_plus


class URLError(ValueError):
    """A registry URL that cannot be used; the message names the URL and what is wrong."""


def java_urlencode(text: str) -> str:
    """``java.net.URLEncoder.encode(text, "UTF-8")``: keeps ``A-Za-z0-9.-*_``, space → ``+``, else ``%XX``.

    Python's ``quote_plus`` differs in two characters: it escapes ``*`` (Java keeps it) and keeps ``~``
    (Java escapes it).
    """
    return quote_plus(text, safe="*", encoding="utf-8").replace("~", "%7E")


def decode_name(name: str) -> str:
    """A znode name written by ``URLEncoder`` back to text (``unquote_plus``)."""
    return unquote_plus(name, encoding="utf-8", errors="strict")


@dataclass(frozen=True, slots=True)
class RegistryURL:
    """One parsed registry URL. ``params`` keeps the order of the text; ``port`` is None when absent."""

    scheme: str
    host: str
    port: int | None
    path: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not isinstance(self.params, MappingProxyType):
            object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def param(self, key: str, default: str = "") -> str:
        return self.params.get(key, default)

    def address(self, default_port: int | None = None) -> str:
        """``host:port`` (``[v6]:port``); raises URLError when there is no port and no default."""
        port = self.port if self.port is not None else default_port
        if port is None:
            raise URLError(f"{self.scheme}://{self.host}: no port, and none is known for scheme {self.scheme!r}")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{port}"

    def interface(self, parent: str = "") -> str:
        """The service interface: the ``interface`` parameter, else the path, else ``parent`` (the znode)."""
        return self.params.get("interface") or self.path.strip("/") or parent


def parse_url(text: str) -> RegistryURL:
    """Parse a decoded registry URL (see the module docstring for the accepted shapes)."""
    rest = text.strip()
    if not rest:
        raise URLError("empty URL")
    rest, _, query = rest.partition("?")
    scheme = ""
    if "://" in rest:
        scheme, _, rest = rest.partition("://")
        if not scheme:
            raise URLError(f"{text!r}: missing protocol before ://")
    rest, _, path = rest.partition("/")
    userinfo, at, hostport = rest.rpartition("@")
    host, port = _split_hostport(hostport if at else rest, text)
    return RegistryURL(scheme.lower(), host, port, path, _parse_query(query))


def _split_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket:
            raise URLError(f"{text!r}: unterminated IPv6 address")
        port_text = tail[1:] if tail.startswith(":") else None
        if tail and port_text is None:
            raise URLError(f"{text!r}: unexpected {tail!r} after the IPv6 address")
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    else:
        host, port_text = hostport, None
    if not host:
        raise URLError(f"{text!r}: no host")
    if port_text is None or port_text == "":
        return host, None
    try:        # isdecimal: what int() reads (isdigit also passes "²"); int() refuses over 4300 digits
        port = int(port_text) if port_text.isdecimal() else 0
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise URLError(f"{text!r}: port {port_text!r} is not a number in 1..65535")
    return host, port


def _parse_query(query: str) -> dict[str, str]:
    """``k=v&...`` → dict. Names and short values are interned: thousands of provider URLs repeat the same
    ``anyhost``/``true``/``2.0.2``; sharing one string object each saves about a third of the memory."""
    params: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if key:
            value = value if eq else key
            params[sys.intern(key)] = sys.intern(value) if len(value) <= 16 else value
    return params


def _check_params(params: Mapping[str, str]) -> None:
    for key, value in params.items():
        if not key or any(c in key for c in "&=?"):
            raise ValueError(f"parameter name {key!r} is empty or contains '&', '=' or '?'")
        if "&" in str(value):
            raise ValueError(f"parameter {key}={value!r}: a value cannot contain '&'")


def _hostport(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def dubbo_full_string(scheme: str, host: str, port: int | None, path: str, params: Mapping[str, str]) -> str:
    """Dubbo's ``URL.toFullString()``: parameters sorted by key; a port of 0/None is left out."""
    _check_params(params)
    query = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return f"{scheme}://{_hostport(host, port)}/{path}" + (f"?{query}" if query else "")


def ordered_url(scheme: str, host: str, port: int | None, pairs: Iterable[tuple[str, str]]) -> str:
    """A path-less URL with its parameters in the given order (repeats allowed), as SOFARPC writes them."""
    pairs = list(pairs)
    for key, value in pairs:
        _check_params({key: value})
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return f"{scheme}://{_hostport(host, port)}" + (f"?{query}" if query else "")
