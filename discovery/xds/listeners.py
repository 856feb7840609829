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
from typing import Any

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from discovery.xds.decoding import (TYPE_PREFIX, Problem, ResourceError, at, check_ads, indexed, run, unpack,
                                    unpack_field)
from discovery.xds.endpoints import socket_address
from discovery.xds.routes import XdsRoutes, routes_from_message

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
    for label, chain in chains:
        with at(label):
            result = _chain(chain)
        if found is not None and _routes_key(result) != _routes_key(found):
            raise Problem(f"{label}: its HttpConnectionManager names other routes than the first chain's "
                          f"(one route configuration per listener)")
        found = result
    assert found is not None
    return XdsListener(lis.name, address, *found)


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
