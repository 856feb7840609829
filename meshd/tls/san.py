"""Subject alternative names (pure): reading them from a verified peer certificate and matching them to a policy.

Patterns (``allowed_sans`` of a listener, ``verify_san`` of a cluster): a URI SAN such as a SPIFFE id
``spiffe://cluster.local/ns/default/sa/*`` where ``*`` stands for exactly one path segment (no ``/``); a DNS name
``demo.example.com`` or ``*.example.com`` where ``*`` stands for exactly one label (no ``.``); case-insensitive
for DNS names and the URI scheme and authority, exact for URI paths.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable


def peer_sans(peercert: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """``(("URI", "spiffe://..."), ("DNS", "a.example.com"), ...)`` of ``ssl``'s ``getpeercert()`` dict."""
    if not peercert:
        return ()
    return tuple((kind, value) for kind, value in peercert.get("subjectAltName", ()) if kind in ("URI", "DNS"))


def identity(peercert: dict[str, Any] | None) -> str:
    """The peer's identity: its first URI SAN (a SPIFFE id), else its first DNS SAN, else its subject CN."""
    sans = peer_sans(peercert)
    for wanted in ("URI", "DNS"):
        for kind, value in sans:
            if kind == wanted:
                return value
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return ""


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> tuple[str, re.Pattern[str]]:
    if "://" in pattern:
        scheme, _, rest = pattern.partition("://")
        authority, slash, path = rest.partition("/")
        regex = re.escape(f"{scheme.lower()}://{authority.lower()}") + re.escape(slash) + \
            "/".join("[^/]+" if part == "*" else re.escape(part) for part in path.split("/"))
        return "URI", re.compile(regex)
    labels = pattern.lower().split(".")
    return "DNS", re.compile(r"\.".join("[^.]+" if label == "*" else re.escape(label) for label in labels))


def _normal(kind: str, value: str) -> str:
    if kind == "DNS":
        return value.lower()
    scheme, sep, rest = value.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme.lower()}{sep}{authority.lower()}{slash}{path}"


def check_pattern(pattern: str) -> str:
    """``pattern`` if it is a SAN pattern meshd can match, else ValueError naming what is wrong."""
    if not pattern or any(c.isspace() for c in pattern):
        raise ValueError(f"{pattern!r} is not a SAN pattern (a DNS name or a URI such as spiffe://td/ns/x/sa/y)")
    if "://" in pattern:
        scheme, _, rest = pattern.partition("://")
        if not scheme or not rest.partition("/")[0]:
            raise ValueError(f"{pattern!r}: a URI SAN pattern needs a scheme and an authority")
    elif any(label == "" or ("*" in label and label != "*") for label in pattern.split(".")):
        raise ValueError(f"{pattern!r}: a DNS pattern has non-empty labels, '*' only as a whole label")
    return pattern


def matches(sans: Iterable[tuple[str, str]], patterns: Iterable[str]) -> bool:
    """Whether any SAN matches any pattern (see the module docstring)."""
    sans = tuple(sans)
    for pattern in patterns:
        kind, regex = _compile(pattern)
        if any(k == kind and regex.fullmatch(_normal(k, v)) for k, v in sans):
            return True
    return False
