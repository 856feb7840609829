"""``RouteConfiguration`` → :class:`XdsRoutes`: meshd's route configuration in the config-file shape.

``config`` validates with ``meshd.config.RouteConfiguration`` (plus the ``query_parameters`` match key);
``clusters`` names every cluster a route may send to, weight-0 entries included. Mapping, and the choices:

- match: ``prefix`` / ``path`` / ``safe_regex`` (→ ``regex``; RE2 syntax must also compile as a Python
  regex), ``case_sensitive``, ``grpc {}`` (→ a header match ``content-type`` prefix ``application/grpc``),
  ``headers`` and ``query_parameters`` (string matchers exact / prefix / suffix / safe_regex; ``contains``
  and ``ignore_case`` become an escaped regex, as meshd matchers have neither; ``present_match``;
  ``invert_match``; the legacy ``exact_match`` ... fields too; ``range_match`` refused). Pseudo-headers:
  ``:authority`` is matched as ``host``; ``:method``, ``:path``, ``:scheme`` and others are refused —
  meshd's HTTP header matchers do not see them, and skipping the condition would widen the route.
- action ``route``: ``cluster`` or ``weighted_clusters`` (weight-0 entries are **kept** with weight 0: the
  cluster stays subscribed and warm for the next shift; all weights 0 is refused), ``metadata_match``
  (``filter_metadata["envoy.lb"]``), ``prefix_rewrite``, ``host_rewrite_literal``, ``timeout`` (0 =
  disabled → omitted; when it is unset or 0 and ``max_stream_duration.max_stream_duration`` is set, that
  is the timeout, as proxyless gRPC reads it), ``retry_policy`` (the route's, else the virtual host's:
  ``retry_on`` as-is, ``num_retries``, ``per_try_timeout``, ``retriable_status_codes``,
  ``retry_host_predicate`` ``previous_hosts`` when that predicate is listed else ``none``,
  ``host_selection_retry_max_attempts``, ``retry_back_off``). ``hash_policy`` (only for hash balancers,
  refused on the cluster), ``upgrade_configs`` (Istio puts websocket on every route), ``cors``, stats and
  per-filter configs are not read; mirrors, other cluster specifiers and rewrites are refused.
- ``direct_response`` (inline body); ``redirect`` and the other actions are refused naming the route.
- header operations of routes: ``HeaderValueOption`` with ``append`` or ``append_action``
  (APPEND_IF_EXISTS_OR_ADD → append, OVERWRITE_IF_EXISTS_OR_ADD → replace, the others refused), and
  removals. Header operations on virtual hosts or the whole configuration are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_pb2

from discovery.model import EMPTY
from discovery.xds.decoding import (Problem, at, at_least, check_name, duration, freeze, indexed, refuse, run,
                                    seconds, struct_strings, unpack)

_PREVIOUS_HOSTS = ("envoy.retry_host_predicates.previous_hosts",
                   "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate")
_HEADER_OPS = ("request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
               "response_headers_to_remove")
_APPEND = {base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD: True,
           base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD: False}


@dataclass(frozen=True)
class XdsRoutes:
    """A decoded RouteConfiguration: meshd's config-file shape and the clusters it references."""

    name: str
    config: Mapping[str, Any]
    clusters: frozenset[str]


def decode_route_configuration(any_: Any) -> XdsRoutes:
    """An ``Any`` holding a ``RouteConfiguration`` → :class:`XdsRoutes`, or ResourceError."""
    rc = unpack(any_, route_pb2.RouteConfiguration, "route configuration")
    return routes_from_message(rc)


def routes_from_message(rc: route_pb2.RouteConfiguration) -> XdsRoutes:
    """Decode an already unpacked RouteConfiguration (also an HCM's inline ``route_config``)."""
    return run("route configuration", rc.name, lambda: _decode(rc))


def _decode(rc: route_pb2.RouteConfiguration) -> XdsRoutes:
    check_name(rc.name, "name")
    refuse(rc, ("vhds", "request_mirror_policies", *_HEADER_OPS))
    clusters: set[str] = set()
    hosts = []
    for i, vh in enumerate(rc.virtual_hosts):
        with at(indexed("virtual_hosts", i, vh.name)):
            hosts.append(_virtual_host(vh, clusters))
    return XdsRoutes(rc.name, freeze({"name": rc.name, "virtual_hosts": hosts}), frozenset(clusters))


def _virtual_host(vh: Any, clusters: set[str]) -> dict[str, Any]:
    check_name(vh.name, "name")
    if not vh.domains:
        raise Problem("domains: must not be empty")
    refuse(vh, ("matcher", "require_tls", "request_mirror_policies", "retry_policy_typed_config", *_HEADER_OPS))
    default_retry = vh.retry_policy if vh.HasField("retry_policy") else None
    routes = []
    for i, route in enumerate(vh.routes):
        with at(indexed("routes", i, route.name)):
            routes.append(_route(route, default_retry, clusters))
    return {"name": vh.name, "domains": list(vh.domains), "routes": routes}


def _route(route: Any, default_retry: Any, clusters: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if route.name:
        out["name"] = route.name
    with at("match"):
        out["match"] = _match(route.match)
    action = route.WhichOneof("action")
    if action == "route":
        with at("route"):
            out["route"] = _action(route.route, default_retry, clusters)
    elif action == "direct_response":
        with at("direct_response"):
            out["direct_response"] = _direct(route.direct_response)
    else:
        raise Problem(f"{action or 'action'}: " + (f"a {action} route is not supported (route, direct_response)"
                                                    if action else "missing"))
    out.update(header_operations(route))
    return out


# -- match -------------------------------------------------------------------------------------------
def _match(m: Any) -> dict[str, Any]:
    refuse(m, ("runtime_fraction", "tls_context", "dynamic_metadata", "filter_state"))
    out: dict[str, Any] = {}
    which = m.WhichOneof("path_specifier")
    if which in ("prefix", "path"):
        out[which] = getattr(m, which)
    elif which == "safe_regex":
        with at("safe_regex"):
            out["regex"] = _regex(m.safe_regex.regex)
    elif which is not None:
        raise Problem(f"{which}: is not supported (prefix, path, safe_regex)")
    if m.HasField("case_sensitive"):
        out["case_sensitive"] = m.case_sensitive.value
    headers = []
    if m.HasField("grpc"):
        headers.append({"name": "content-type", "prefix": "application/grpc"})
    for i, h in enumerate(m.headers):
        with at(indexed("headers", i, h.name)):
            headers.append(_header(h))
    if headers:
        out["headers"] = headers
    params = []
    for i, q in enumerate(m.query_parameters):
        with at(indexed("query_parameters", i, q.name)):
            params.append(_query(q))
    if params:
        out["query_parameters"] = params
    return out


def _header(h: Any) -> dict[str, Any]:
    name = h.name.lower()
    if not name:
        raise Problem("name: must not be empty")
    if name == ":authority":
        name = "host"
    elif name.startswith(":"):
        raise Problem(f"name: pseudo-header {h.name!r} is not supported (only :authority)")
    if h.treat_missing_header_as_empty:
        raise Problem("treat_missing_header_as_empty: is not supported")
    which = h.WhichOneof("header_match_specifier")
    if which is None:
        kind: dict[str, Any] = {"present": True}          # Envoy: no specifier = the header is present
    elif which == "string_match":
        with at("string_match"):
            kind = string_matcher(h.string_match)
    elif which == "present_match":
        kind = {"present": h.present_match}
    elif which in ("exact_match", "prefix_match", "suffix_match"):
        kind = {which[:-len("_match")]: getattr(h, which)}
    elif which == "safe_regex_match":
        with at(which):
            kind = {"regex": _regex(h.safe_regex_match.regex)}
    elif which == "contains_match":
        kind = {"regex": f"(?s).*{re.escape(h.contains_match)}.*"}
    else:
        raise Problem(f"{which}: is not supported")
    return {"name": name, **kind, **({"invert": True} if h.invert_match else {})}


def _query(q: Any) -> dict[str, Any]:
    if not q.name:
        raise Problem("name: must not be empty")
    which = q.WhichOneof("query_parameter_match_specifier")
    if which == "string_match":
        with at("string_match"):
            return {"name": q.name, **string_matcher(q.string_match)}
    return {"name": q.name, "present": True}   # present_match, or no specifier (Envoy: present)


def string_matcher(sm: Any) -> dict[str, Any]:
    """An Envoy ``StringMatcher`` as meshd's: exact / prefix / suffix / regex."""
    which = sm.WhichOneof("match_pattern")
    if which == "safe_regex":
        with at("safe_regex"):
            return {"regex": _regex(sm.safe_regex.regex)}
    if which not in ("exact", "prefix", "suffix", "contains"):
        raise Problem(f"{which or 'match_pattern'}: " + ("is not supported" if which else "missing"))
    value = getattr(sm, which)
    if which != "contains" and not sm.ignore_case:
        return {which: value}
    literal = re.escape(value)
    pattern = {"exact": literal, "prefix": f"{literal}.*", "suffix": f".*{literal}", "contains": f".*{literal}.*"}
    return {"regex": ("(?si)" if sm.ignore_case else "(?s)") + pattern[which]}


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise Problem(f"regex: {pattern!r} does not compile as a Python regular expression ({exc})") from None
    return pattern


# -- action ------------------------------------------------------------------------------------------
def _action(a: Any, default_retry: Any, clusters: set[str]) -> dict[str, Any]:
    refuse(a, ("regex_rewrite", "path_rewrite_policy", "path_rewrite", "request_mirror_policies",
               "retry_policy_typed_config", "host_rewrite"))
    out: dict[str, Any] = {}
    which = a.WhichOneof("cluster_specifier")
    if which == "cluster":
        out["cluster"] = check_name(a.cluster, "cluster")
        clusters.add(a.cluster)
    elif which == "weighted_clusters":
        with at("weighted_clusters"):
            out["weighted_clusters"] = _weighted(a.weighted_clusters, clusters)
    else:
        raise Problem(f"{which or 'cluster_specifier'}: " + ("is not supported (cluster, weighted_clusters)"
                                                            if which else "missing"))
    if a.HasField("metadata_match"):
        with at("metadata_match"):
            out["metadata_match"] = lb_metadata(a.metadata_match)
    if a.prefix_rewrite:
        out["prefix_rewrite"] = a.prefix_rewrite
    host = a.WhichOneof("host_rewrite_specifier")
    if host == "host_rewrite_literal":
        out["host_rewrite"] = a.host_rewrite_literal
    elif host is not None:
        raise Problem(f"{host}: is not supported (host_rewrite_literal)")
    timeout = _timeout(a)
    if timeout is not None:
        out["timeout"] = timeout
    retry = a.retry_policy if a.HasField("retry_policy") else default_retry
    if retry is not None:
        with at("retry_policy"):
            out["retry_policy"] = _retry(retry)
    return out


def _weighted(wc: Any, clusters: set[str]) -> list[dict[str, Any]]:
    out = []
    for i, cw in enumerate(wc.clusters):
        with at(indexed("clusters", i, cw.name)):
            if not cw.name and cw.cluster_header:
                raise Problem("cluster_header: is not supported")
            check_name(cw.name, "name")
            refuse(cw, ("host_rewrite_literal", *_HEADER_OPS))
            entry: dict[str, Any] = {"cluster": cw.name, "weight": cw.weight.value}
            if cw.HasField("metadata_match"):
                with at("metadata_match"):
                    entry["metadata_match"] = lb_metadata(cw.metadata_match)
            out.append(entry)
            clusters.add(cw.name)
    if not out:
        raise Problem("clusters: must not be empty")
    if sum(e["weight"] for e in out) <= 0:
        raise Problem("clusters: the weights add up to 0")
    return out


def _timeout(a: Any) -> str | None:
    if a.HasField("timeout"):
        with at("timeout"):
            value = seconds(a.timeout)
        if value > 0:
            return duration(a.timeout)
    if a.HasField("max_stream_duration") and a.max_stream_duration.HasField("max_stream_duration"):
        with at("max_stream_duration.max_stream_duration"):
            if seconds(a.max_stream_duration.max_stream_duration) > 0:
                return duration(a.max_stream_duration.max_stream_duration)
    return None


def _retry(r: Any) -> dict[str, Any]:
    refuse(r, ("retry_priority", "retriable_headers", "retriable_request_headers", "retry_options_predicates"))
    out: dict[str, Any] = {}
    if r.retry_on:
        out["retry_on"] = r.retry_on
    if r.HasField("num_retries"):
        out["num_retries"] = at_least(r.num_retries.value, 0, "num_retries", 10)
    if r.HasField("per_try_timeout") and seconds(r.per_try_timeout) > 0:
        out["per_try_timeout"] = duration(r.per_try_timeout)
    if r.retriable_status_codes:
        for code in r.retriable_status_codes:
            at_least(code, 100, "retriable_status_codes", 599)
        out["retriable_status_codes"] = list(r.retriable_status_codes)
    names = [p.name or p.typed_config.type_url for p in r.retry_host_predicate]
    out["retry_host_predicate"] = "previous_hosts" if any(n in _PREVIOUS_HOSTS for n in names) else "none"
    if r.host_selection_retry_max_attempts > 0:
        out["host_selection_retry_max_attempts"] = r.host_selection_retry_max_attempts
    if r.HasField("retry_back_off"):
        with at("retry_back_off"):
            back_off = {"base_interval": _positive(r.retry_back_off.base_interval, "base_interval")}
            if r.retry_back_off.HasField("max_interval"):
                back_off["max_interval"] = _positive(r.retry_back_off.max_interval, "max_interval")
        out["retry_back_off"] = back_off
    return out


def _positive(d: Any, field: str) -> str:
    with at(field):
        if seconds(d) <= 0:
            raise Problem("must be greater than 0")
        return duration(d)


def _direct(d: Any) -> dict[str, Any]:
    at_least(d.status, 100, "status", 599)
    out: dict[str, Any] = {"status": d.status}
    if d.HasField("body"):
        which = d.body.WhichOneof("specifier")
        if which == "inline_string":
            out["body"] = d.body.inline_string
        elif which == "inline_bytes":
            out["body"] = d.body.inline_bytes.decode("utf-8", "replace")
        elif which is not None:
            raise Problem(f"body.{which}: is not supported (inline_string, inline_bytes)")
    return out


# -- shared ------------------------------------------------------------------------------------------
def header_operations(msg: Any) -> dict[str, Any]:
    """A route's header additions and removals in meshd's shape (only the non-empty lists)."""
    out: dict[str, Any] = {}
    for field in ("request_headers_to_add", "response_headers_to_add"):
        options = []
        for i, option in enumerate(getattr(msg, field)):
            with at(indexed(field, i, option.header.key)):
                options.append(_header_option(option))
        if options:
            out[field] = options
    for field in ("request_headers_to_remove", "response_headers_to_remove"):
        if getattr(msg, field):
            out[field] = list(getattr(msg, field))
    return out


def _header_option(option: Any) -> dict[str, Any]:
    header = option.header
    if not header.key:
        raise Problem("header.key: must not be empty")
    value = header.value or header.raw_value.decode("utf-8", "replace")
    if option.HasField("append"):
        if option.append_action != base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD:
            raise Problem("append and append_action: give only one")
        append = option.append.value
    elif option.append_action in _APPEND:
        append = _APPEND[option.append_action]
    else:
        raise Problem(f"append_action: {base_pb2.HeaderValueOption.HeaderAppendAction.Name(option.append_action)} "
                      f"is not supported (APPEND_IF_EXISTS_OR_ADD, OVERWRITE_IF_EXISTS_OR_ADD)")
    return {"header": {"key": header.key, "value": value}, "append": append}


def lb_metadata(metadata: Any) -> dict[str, str]:
    """``Metadata.filter_metadata["envoy.lb"]`` as plain string keys (other namespaces are not for subsets)."""
    if "envoy.lb" not in metadata.filter_metadata:
        return dict(EMPTY)
    return struct_strings(metadata.filter_metadata["envoy.lb"])
