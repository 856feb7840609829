"""Route tables: virtual hosts matched by domain, routes matched by path, headers and RPC keys.

A :class:`RouteTable` is compiled once from a :class:`~meshd.config.RouteConfiguration` and is then
immutable; matching is a plain function over a request view, no I/O. HTTP requests match virtual hosts
by ``Host``; RPC requests match them by interface name (``domains: ["*"]`` or ``["org.example.*"]``).

Domain precedence (Envoy's): exact, then suffix wildcards ``*.example.com`` (longest first), then prefix
wildcards ``api.*`` (longest first), then ``*``. A ``Host`` with a port is matched exactly as given,
then (exact and wildcards) without its port, then ``*``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable, Protocol
from urllib.parse import parse_qsl

from meshd.config import HeaderValueOption, Route, RouteAction, RouteConfiguration, StringMatcher, WeightedCluster
from meshd.routing.subset import Selection

_NO_HEADERS: dict[str, str] = {}
_HTTP_CACHE_LIMIT = 4096

Matcher = Callable[[str | None], bool]


def compile_matcher(m: StringMatcher, case_sensitive: bool = True) -> Matcher:
    """A predicate over an optional string value (None = absent)."""
    if m.present is not None:
        want = m.present
        test: Matcher = lambda v: (v is not None) == want
    elif m.exact is not None:
        exact = m.exact
        test = lambda v: v == exact
    elif m.prefix is not None:
        prefix = m.prefix
        test = lambda v: v is not None and v.startswith(prefix)
    elif m.suffix is not None:
        suffix = m.suffix
        test = lambda v: v is not None and v.endswith(suffix)
    else:
        pattern = re.compile(m.regex or "")
        test = lambda v: v is not None and pattern.fullmatch(v) is not None
    if m.invert:
        return lambda v: not test(v)
    return test


class RpcView(Protocol):
    """What a route needs from an RPC request; ``group`` and ``attachment`` may parse lazily."""

    service: str
    method: str
    version: str

    @property
    def group(self) -> str: ...

    def attachment(self, name: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class HeaderOps:
    add: tuple[tuple[bytes, bytes, bool], ...]       # (lower-case name, value, append)
    remove: frozenset[bytes]

    @staticmethod
    def build(add: list[HeaderValueOption], remove: list[str]) -> "HeaderOps":
        return HeaderOps(
            tuple((o.header.key.lower().encode(), o.header.value.encode(), o.append) for o in add),
            frozenset(n.lower().encode() for n in remove),
        )

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove

    def appended(self) -> bytes | None:
        """The lines these edits add to a head when they only append (b"" for none); None otherwise."""
        if self.remove or any(not append for _, _, append in self.add):
            return None
        return b"".join(b"%b: %b\r\n" % (name, value) for name, value, _ in self.add)


class CompiledRoute:
    """One route, its predicates compiled, its action kept as the validated config value."""

    __slots__ = ("config", "name", "action", "direct", "request_ops", "response_ops", "_path", "_headers",
                 "_query", "_rpc", "_weights", "_total_weight", "path_label", "weighted", "rpc_keys_only", "selection",
                 "raw_request_edit", "raw_response_edit")

    def __init__(self, config: Route, index: int) -> None:
        self.config = config
        self.name = config.name or f"route-{index}"
        self.action: RouteAction | None = config.route
        self.direct = config.direct_response
        self.request_ops = HeaderOps.build(config.request_headers_to_add, config.request_headers_to_remove)
        self.response_ops = HeaderOps.build(config.response_headers_to_add, config.response_headers_to_remove)
        m = config.match
        # the header lines a head forwarded as received gets appended; None when this route's edits need the
        # head rebuilt line by line (a rewrite, a removal, a replacing add)
        a = self.action
        rewrites = a is not None and (a.host_rewrite or (a.prefix_rewrite is not None and m.prefix is not None))
        self.raw_request_edit = None if rewrites else self.request_ops.appended()
        self.raw_response_edit = self.response_ops.appended()
        self._path = self._compile_path(m)
        self.path_label = m.prefix if m.prefix is not None else (m.path if m.path is not None else (m.regex or ""))
        self._headers = tuple((h.name.lower(), compile_matcher(h)) for h in m.headers)
        self._query = tuple((q.name, compile_matcher(q)) for q in m.query_parameters)
        self._rpc = tuple((field, compile_matcher(sm)) for field in ("service", "method", "version", "group")
                          if (sm := getattr(m, field)) is not None)
        self._weights: tuple[tuple[int, WeightedCluster, Selection], ...] = ()
        self._total_weight = 0
        self.selection = Selection(self.action.metadata_match if self.action is not None else {})
        # an RPC route that looks only at service, method and version (its decision can be cached)
        self.rpc_keys_only = not self._headers and m.group is None
        if self.action is not None and self.action.weighted_clusters:
            acc = 0
            weights = []
            for wc in self.action.weighted_clusters:
                acc += wc.weight
                weights.append((acc, wc, Selection({**self.action.metadata_match, **wc.metadata_match})))
            self._weights, self._total_weight = tuple(weights), acc
        self.weighted = bool(self._weights)

    @staticmethod
    def _compile_path(m) -> Callable[[str], bool] | None:
        if m.prefix is not None:
            prefix = m.prefix if m.case_sensitive else m.prefix.lower()
            if not m.case_sensitive:
                return lambda p: p.lower().startswith(prefix)
            return lambda p: p.startswith(prefix)
        if m.path is not None:
            path = m.path
            return (lambda p: p == path) if m.case_sensitive else (lambda p: p.lower() == path.lower())
        if m.regex is not None:
            pattern = re.compile(m.regex, 0 if m.case_sensitive else re.IGNORECASE)
            return lambda p: pattern.fullmatch(p) is not None
        return None

    def matches_http(self, path: str, headers: dict[str, str], query: str = "") -> bool:
        if self._path is not None and not self._path(path):
            return False
        if self._rpc:
            return False                      # an RPC-only route never matches HTTP
        for name, test in self._headers:
            if not test(headers.get(name)):
                return False
        if self._query:
            params = dict(parse_qsl(query, keep_blank_values=True))
            for name, test in self._query:
                if not test(params.get(name)):
                    return False
        return True

    def matches_rpc(self, request: RpcView) -> bool:
        if self._path is not None or self._query:
            return False                      # an HTTP path or query route never matches RPC
        for field, test in self._rpc:
            if not test(getattr(request, field)):
                return False
        for name, test in self._headers:
            if not test(request.attachment(name)):
                return False
        return True

    def pick_cluster(self, rng: random.Random) -> tuple[str, dict[str, str]]:
        """The target cluster and the subset metadata to match (route-level merged with the weighted entry's)."""
        action = self.action
        assert action is not None
        if not self._weights:
            return action.cluster or "", self.selection
        r = rng.random() * self._total_weight
        for acc, wc, selection in self._weights:
            if r < acc:
                return wc.cluster, selection
        _, wc, selection = self._weights[-1]
        return wc.cluster, selection

    def __repr__(self) -> str:
        return f"<Route {self.name} {self.path_label or ''}>"


class CompiledVirtualHost:
    __slots__ = ("name", "domains", "routes")

    def __init__(self, name: str, domains: list[str], routes: list[CompiledRoute]) -> None:
        self.name, self.domains, self.routes = name, domains, routes


class RouteTable:
    """An immutable, compiled route configuration."""

    def __init__(self, config: RouteConfiguration) -> None:
        self.config = config
        self.name = config.name
        self._exact: dict[str, CompiledVirtualHost] = {}
        self._suffix: list[tuple[str, CompiledVirtualHost]] = []
        self._prefix: list[tuple[str, CompiledVirtualHost]] = []
        self._any: CompiledVirtualHost | None = None
        self.needs_headers = False             # whether any HTTP route matches on headers
        for vh in config.virtual_hosts:
            cvh = CompiledVirtualHost(vh.name, vh.domains, [CompiledRoute(r, i) for i, r in enumerate(vh.routes)])
            self.needs_headers = self.needs_headers or any(r._headers for r in cvh.routes)
            for domain in vh.domains:
                d = domain.lower()
                if d == "*":
                    self._any = self._any or cvh
                elif d.startswith("*"):
                    self._suffix.append((d[1:], cvh))
                elif d.endswith("*"):
                    self._prefix.append((d[:-1], cvh))
                else:
                    self._exact.setdefault(d, cvh)
        self.rpc_cacheable = all(r.rpc_keys_only for vh in self._all_vhosts() for r in vh.routes)
        self._suffix.sort(key=lambda x: -len(x[0]))
        self._prefix.sort(key=lambda x: -len(x[0]))
        self._host_cache: dict[str, CompiledVirtualHost | None] = {}
        self._http_cache: dict[tuple[bytes, bytes], CompiledRoute | None] = {}

    def _all_vhosts(self) -> list[CompiledVirtualHost]:
        seen: dict[int, CompiledVirtualHost] = {}
        for vh in [*self._exact.values(), *(v for _, v in self._suffix), *(v for _, v in self._prefix),
                   *([self._any] if self._any else [])]:
            seen[id(vh)] = vh
        return list(seen.values())

    def virtual_host(self, host: str) -> CompiledVirtualHost | None:
        cached = self._host_cache.get(host, False)
        if cached is not False:
            return cached                     # type: ignore[return-value]
        host = host.lower()
        if ":" in host and not host.endswith("]"):
            found = self._exact.get(host) or self._find_host(host.rsplit(":", 1)[0])
        else:
            found = self._find_host(host)
        if found is None:
            found = self._any
        if len(self._host_cache) < 4096:
            self._host_cache[host] = found
        return found

    def _find_host(self, host: str) -> CompiledVirtualHost | None:
        vh = self._exact.get(host)
        if vh is not None:
            return vh
        for suffix, vh in self._suffix:
            if host.endswith(suffix) and len(host) > len(suffix):
                return vh
        for prefix, vh in self._prefix:
            if host.startswith(prefix) and len(host) > len(prefix):
                return vh
        return None

    def match_http(self, host: str, path: str, headers: dict[str, str]) -> CompiledRoute | None:
        vh = self.virtual_host(host)
        if vh is None:
            return None
        query = ""
        mark = path.find("?")
        if mark >= 0:
            path, query = path[:mark], path[mark + 1:]
        for route in vh.routes:
            if route.matches_http(path, headers, query):
                return route
        return None

    def match_http_raw(self, host: bytes | None, url: bytes) -> CompiledRoute | None:
        """:meth:`match_http` for a table whose routes read no headers (``needs_headers`` false), by the
        request's raw Host and target, with the answer kept per (host, target). A request without Host
        (``host`` None) matches nothing and is never kept: its caller decides what it means."""
        key = (host, url)
        route = self._http_cache.get(key, False)
        if route is False:
            if host is None:
                return None
            route = self.match_http(host.decode("latin-1"), url.decode("latin-1"), _NO_HEADERS)
            if len(self._http_cache) >= _HTTP_CACHE_LIMIT:
                self._http_cache.clear()      # bounded: many distinct targets keep only the recent ones
            self._http_cache[key] = route
        return route                          # type: ignore[return-value]

    def match_rpc(self, request: RpcView) -> CompiledRoute | None:
        vh = self.virtual_host(request.service)
        if vh is None:
            return None
        for route in vh.routes:
            if route.matches_rpc(request):
                return route
        return None

    def to_json(self) -> dict:
        return self.config.model_dump(mode="json", exclude_defaults=True)
