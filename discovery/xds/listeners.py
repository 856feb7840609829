"""``Listener`` → :class:`XdsListener`: where it listens and where its HTTP routes come from.

Two forms, both carrying an ``HttpConnectionManager`` (HCM,
``envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager``):

- an ``api_listener`` (gRPC's client listener ``host:port``): ``address`` is ``""``;
- a socket listener: ``address`` is ``socket_address`` as ``host:port``; every filter chain (and the
  ``default_filter_chain``) must end in an HCM, and all of them must name the same routes. A chain without
  an HCM (a TCP proxy, a non-HTTP listener) is a ResourceError naming that chain — the source may choose to
  ignore such listeners.

The HCM gives either ``rds`` (its config source must be ``ads {}`` or ``self {}``) → ``route_config_name``,
or an inline ``route_config`` → ``inline_routes`` (decoded by :mod:`discovery.xds.routes`);
``scoped_routes`` is refused. As in gRPC, an HCM without HTTP filters, or whose last filter is not
``envoy.filters.http.router``, is refused. Other HCM settings are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from discovery.xds.decoding import (TYPE_PREFIX, Problem, ResourceError, at, check_ads, freeze, indexed, run,
                                    unpack, unpack_field)
from discovery.xds.endpoints import socket_address
from discovery.xds.routes import XdsRoutes, routes_from_message
from discovery.xds.tls import secret_names, transport_socket

HCM_TYPE = TYPE_PREFIX + hcm_pb2.HttpConnectionManager.DESCRIPTOR.full_name
HCM_FILTER = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"
ROUTER_TYPE = TYPE_PREFIX + "envoy.extensions.filters.http.router.v3.Router"


@dataclass(frozen=True)
class XdsListener:
    """A decoded Listener: its address and its routes (by RDS name, or inline)."""

    name: str
    address: str                       # "host:port" of socket_address; "" for an api_listener
    route_config_name: str | None      # HCM with rds
    inline_routes: XdsRoutes | None    # HCM with an inline route_config
    tls: Mapping[str, Any] | None = None   # ListenerTls shape with Pem placeholders; None: plaintext

    @property
    def secret_names(self) -> frozenset[str]:
        """The SDS secrets its ``tls`` needs (the listener warms until they are all there)."""
        return secret_names(self.tls)


def decode_listener(any_: Any) -> XdsListener:
    """An ``Any`` holding a ``Listener`` → :class:`XdsListener`, or ResourceError."""
    listener = unpack(any_, listener_pb2.Listener, "listener")
    return run("listener", listener.name, lambda: _decode(listener))


def _decode(lis: listener_pb2.Listener) -> XdsListener:
    if not lis.name:
        raise Problem("name: must not be empty")
    if lis.HasField("api_listener"):
        with at("api_listener.api_listener"):
            rds, inline = _hcm(unpack_field(lis.api_listener.api_listener, hcm_pb2.HttpConnectionManager))
        return XdsListener(lis.name, "", rds, inline)
    with at("address"):
        address = socket_address(lis.address)
    chains = [(indexed("filter_chains", i, fc.name), fc) for i, fc in enumerate(lis.filter_chains)]
    if lis.HasField("default_filter_chain"):
        chains.append(("default_filter_chain", lis.default_filter_chain))
    if not chains:
        raise Problem("filter_chains: no filter chain (not an HTTP listener)")
    found: tuple[str | None, XdsRoutes | None] | None = None
    sockets: list[tuple[str, Any, dict[str, Any] | None]] = []
    for label, chain in chains:
        with at(label):
            result = _chain(chain)
            socket = None
            if chain.HasField("transport_socket"):
                with at("transport_socket"):
                    socket = transport_socket(chain.transport_socket, upstream=False)
        if found is not None and _routes_key(result) != _routes_key(found):
            raise Problem(f"{label}: its HttpConnectionManager names other routes than the first chain's "
                          f"(one route configuration per listener)")
        found = result
        sockets.append((label, chain, socket))
    assert found is not None
    tls = _listener_tls(sockets, lis.HasField("default_filter_chain"))
    return XdsListener(lis.name, address, *found, tls=None if tls is None else freeze(tls))


def _listener_tls(chains: list[tuple[str, Any, dict[str, Any] | None]], has_default: bool) -> dict[str, Any] | None:
    """The chains' TLS as one listener ``tls`` (see the module docstring), or None when all are plaintext."""
    tls_chains = [c for c in chains if c[2] is not None]
    if not tls_chains:
        return None
    plain = next((label for label, _, socket in chains if socket is None), None)
    if plain is not None:
        raise Problem(f"{plain}: a plaintext filter chain next to TLS ones ({tls_chains[0][0]}) is not supported "
                      f"(meshd terminates TLS on every connection of a TLS listener)")
    first_label, first_chain, first_tls = chains[0]
    base = _match_rest(first_chain.filter_chain_match)
    settings = {k: v for k, v in first_tls.items() if k != "certificates"}
    catch_all: tuple[str, list] | None = None
    named: list[dict[str, Any]] = []
    by_name: dict[str, str] = {}
    for i, (label, chain, tls) in enumerate(chains):
        is_default = has_default and i == len(chains) - 1
        match = chain.filter_chain_match
        with at(label):
            if not is_default:
                _check_match(match, base, first_label)
            other = {k: v for k, v in tls.items() if k != "certificates"}
            if other != settings:
                key = next(k for k in sorted(set(other) | set(settings)) if other.get(k) != settings.get(k))
                raise Problem(f"transport_socket: its {key} differs from {first_label}'s (meshd has one TLS "
                              f"setting per listener; only the certificates may differ, chosen by SNI)")
            names = [] if is_default else list(match.server_names)
            for name in names:
                if name.lower() in by_name:
                    raise Problem(f"filter_chain_match.server_names: {name!r} is matched by {by_name[name.lower()]} "
                                  f"too")
                by_name[name.lower()] = label
            if not names:
                if catch_all is not None:
                    raise Problem(f"a second chain for every server name (after {catch_all[0]}) is not supported")
                catch_all = (label, list(tls["certificates"]))
            else:
                named.extend(c for c in tls["certificates"] if c not in named)
    certificates = (catch_all[1] if catch_all else []) + [c for c in named if not catch_all or c not in catch_all[1]]
    return {**settings, "certificates": certificates}


def _match_rest(match: Any) -> dict[str, Any]:
    """The set fields of a ``FilterChainMatch`` other than ``server_names`` and ``transport_protocol``."""
    return {fd.name: value for fd, value in match.ListFields() if fd.name not in ("server_names", "transport_protocol")}


def _check_match(match: Any, base: dict[str, Any], first: str) -> None:
    if match.transport_protocol not in ("", "tls"):
        raise Problem(f"filter_chain_match.transport_protocol: {match.transport_protocol!r} on a TLS chain "
                      f"(\"tls\" or none)")
    rest = _match_rest(match)
    if rest != base:
        key = next(k for k in sorted(set(rest) | set(base)) if rest.get(k) != base.get(k))
        raise Problem(f"filter_chain_match.{key}: differs from {first}'s (meshd tells TLS chains apart by "
                      f"server_names only)")


def _chain(chain: Any) -> tuple[str | None, XdsRoutes | None]:
    for i, f in enumerate(chain.filters):
        if f.name == HCM_FILTER or f.typed_config.type_url == HCM_TYPE:
            if i != len(chain.filters) - 1:
                raise Problem(f"filters[{i}]: the HttpConnectionManager is not the last network filter")
            with at(indexed("filters", i, f.name)):
                if f.WhichOneof("config_type") != "typed_config":
                    raise Problem("config_discovery: is not supported (typed_config only)")
                with at("typed_config"):
                    return _hcm(unpack_field(f.typed_config, hcm_pb2.HttpConnectionManager))
    names = [f.name or f.typed_config.type_url for f in chain.filters]
    raise Problem(f"no {HCM_FILTER} filter (filters {names}): not an HTTP filter chain")


def _hcm(hcm: hcm_pb2.HttpConnectionManager) -> tuple[str | None, XdsRoutes | None]:
    if not hcm.http_filters:
        raise Problem("http_filters: expected at least one HTTP filter")
    last = hcm.http_filters[-1]
    if last.name != ROUTER_FILTER and last.typed_config.type_url != ROUTER_TYPE:
        raise Problem(f"http_filters: the last filter is {last.name or last.typed_config.type_url!r}, "
                      f"not {ROUTER_FILTER}")
    which = hcm.WhichOneof("route_specifier")
    if which == "rds":
        with at("rds.config_source"):
            check_ads(hcm.rds.config_source)
        if not hcm.rds.route_config_name:
            raise Problem("rds.route_config_name: must not be empty")
        return hcm.rds.route_config_name, None
    if which == "route_config":
        try:
            return None, routes_from_message(hcm.route_config)
        except ResourceError as exc:
            raise Problem(f"route_config: {exc}") from None
    raise Problem(f"{which or 'route_specifier'}: " + ("is not supported (rds, route_config)" if which else "missing"))


def _routes_key(found: tuple[str | None, XdsRoutes | None]) -> Any:
    rds, inline = found
    return rds if inline is None else ("inline", inline.name, inline.config)
