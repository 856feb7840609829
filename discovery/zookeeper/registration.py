"""The nodes meshd writes on behalf of the local application, exactly as the SDKs write them (pure).

Dubbo provider (``ServiceConfig`` + ``URL.toFullString``; parameters sorted, node name ``URL.encode``d)::

    /dubbo/org.example.DemoService/providers/dubbo%3A%2F%2F10.0.0.5%3A20880%2Forg.example.DemoService%3Fanyhost%3Dtrue...
    dubbo://10.0.0.5:20880/org.example.DemoService?anyhost=true&application=demo&deprecated=false&dubbo=2.0.2
        &dynamic=true&generic=false&group=g1&interface=org.example.DemoService&methods=sayHello,sayBye&pid=4242
        &release=2.7.23&revision=1.0.0&side=provider&timestamp=1700000000000&version=1.0.0&weight=100

Dubbo consumer: ``consumer://{ip}/{iface}?application=..&category=consumers&check=false&...&side=consumer&...``
under ``consumers/``. SOFARPC provider (``RegistryUtils.convertProviderToUrls``, insertion order, node data
``\\x01`` = online)::

    bolt://10.0.0.5:12200?version=1.0&uniqueId=&interface=com.x.Svc&timeout=0&delay=-1&id=rpc-cfg-0&dynamic=true
        &weight=100&accepts=100000&startTime=..&appName=app&serialization=hessian2&protocol=bolt&language=java
        &pid=..&rpcVer=50707

SOFARPC consumer (``convertConsumerToUrl``; Java really writes ``pid`` twice): ``bolt://{ip}?version=1.0&uniqueId=
&pid=..&timeout=3000&id=..&generic=false&interface=..&appName=..&serialization=hessian2&startTime=..&pid=..
&language=java&rpcVer=..`` under ``consumers/`` with empty data.

Caller ``parameters`` win over every default. Arguments that cannot make a valid node raise ``ValueError``
naming the argument; ZooKeeper failures are the source's business
(:class:`~discovery.registration.RegistrationError`).
"""

from __future__ import annotations

from dataclasses import dataclass

from discovery.dubbo_params import DUBBO_PROTOCOL_VERSION, DUBBO_RELEASE, dubbo_params  # noqa: F401
from discovery.model import split_address
from discovery.registration import Registration, ServiceInfo
from discovery.sofa_params import SOFA_RPC_VERSION
from discovery.zookeeper.layouts import Layout
from discovery.zookeeper.urls import dubbo_full_string, java_urlencode, ordered_url, parse_url

#: Re-exported from discovery.dubbo_params (their historical home).
REEXPORTED = (DUBBO_PROTOCOL_VERSION, DUBBO_RELEASE)


#: URL parameters that change each time the same service is registered again (not part of its identity).
VOLATILE_PARAMS = frozenset({"timestamp", "startTime", "pid", "id"})


@dataclass(frozen=True, slots=True)
class NodeRegistration(Registration):
    """A node meshd keeps in ZooKeeper for the local application (re-created after a session expiry).

    ``path`` is inside the source's chroot; ``url`` is the decoded URL; ``data`` the node data.
    """

    data: bytes = b""
    layout: str = "dubbo"

    def same_content(self, other: "NodeRegistration") -> bool:
        """Same node but for the parameters that change on every registration (timestamp, pid, ...)."""
        mine, theirs = parse_url(self.url), parse_url(other.url)
        strip = lambda url: {k: v for k, v in url.params.items() if k not in VOLATILE_PARAMS}
        return self.key == other.key and self.data == other.data and strip(mine) == strip(theirs) and \
            (mine.host, mine.port, mine.path) == (theirs.host, theirs.port, theirs.path)

    def to_json(self) -> dict:
        return {**Registration.to_json(self), "layout": self.layout}


def _check_host(host: str) -> None:
    if not host or any(c in host for c in "/?&@ "):
        raise ValueError(f"host {host!r} is not an IP address or host name")


def dubbo_provider(layout: Layout, root: str, address: str, info: ServiceInfo, *, pid: int,
                   timestamp_ms: int) -> NodeRegistration:
    host, port = split_address(address)
    _check_host(host)
    params = dubbo_params("provider", info, pid=pid, timestamp_ms=timestamp_ms)
    url = dubbo_full_string(info.protocol or "dubbo", host, port, info.interface, params)
    path = f"{layout.providers_path(root, info.interface)}/{java_urlencode(url)}"
    return NodeRegistration("provider", info.interface, address, info.group, info.version, url, path, b"", layout.name)


def dubbo_consumer(layout: Layout, root: str, host: str, info: ServiceInfo, *, pid: int,
                   timestamp_ms: int) -> NodeRegistration:
    _check_host(host)
    params = dubbo_params("consumer", info, pid=pid, timestamp_ms=timestamp_ms)
    url = dubbo_full_string("consumer", host, None, info.interface, params)
    path = f"{layout.consumers_path(root, info.interface)}/{java_urlencode(url)}"
    return NodeRegistration("consumer", info.interface, host, info.group, info.version, url, path, b"", layout.name)


def _sofa_tail(pid: int) -> list[tuple[str, str]]:
    return [("language", "java"), ("pid", str(pid)), ("rpcVer", SOFA_RPC_VERSION)]


def sofa_provider(layout: Layout, root: str, address: str, info: ServiceInfo, *, pid: int, timestamp_ms: int,
                  config_id: str) -> NodeRegistration:
    host, port = split_address(address)
    _check_host(host)
    protocol = info.protocol or "bolt"
    meta = {
        "uniqueId": info.group, "interface": info.interface,
        "timeout": str(info.timeout if info.timeout is not None else 0), "delay": "-1", "id": config_id,
        "dynamic": "true", "weight": str(info.weight if info.weight is not None else 100), "accepts": "100000",
        "startTime": str(timestamp_ms), "appName": info.application or None,
        "serialization": info.serialization or "hessian2", "protocol": protocol,
    }
    meta.update(info.parameters)
    for key, value in _sofa_tail(pid):
        meta.setdefault(key, value)
    pairs = [("version", info.version or "1.0")] + [(k, v) for k, v in meta.items() if v is not None]
    url = ordered_url(protocol, host, port, pairs)
    path = f"{layout.providers_path(root, info.interface)}/{java_urlencode(url)}"
    return NodeRegistration("provider", info.interface, address, info.group, info.version or "1.0", url, path, b"\x01",
                        layout.name)


def sofa_consumer(layout: Layout, root: str, host: str, info: ServiceInfo, *, pid: int, timestamp_ms: int,
                  config_id: str) -> NodeRegistration:
    _check_host(host)
    pairs = [
        ("version", info.version or "1.0"), ("uniqueId", info.group), ("pid", str(pid)),
        ("timeout", str(info.timeout if info.timeout is not None else 3000)), ("id", config_id),
        ("generic", "false"), ("interface", info.interface), ("appName", info.application or None),
        ("serialization", info.serialization or "hessian2"), ("startTime", str(timestamp_ms)),
        *info.parameters.items(), *_sofa_tail(pid),
    ]
    url = ordered_url(info.protocol or "bolt", host, None, [(k, v) for k, v in pairs if v is not None])
    path = f"{layout.consumers_path(root, info.interface)}/{java_urlencode(url)}"
    return NodeRegistration("consumer", info.interface, host, info.group, info.version or "1.0", url, path, b"",
                        layout.name)


def build_provider(layout: Layout, root: str, address: str, info: ServiceInfo, *, pid: int, timestamp_ms: int,
                   config_id: str) -> NodeRegistration:
    if layout.name == "sofarpc":
        return sofa_provider(layout, root, address, info, pid=pid, timestamp_ms=timestamp_ms, config_id=config_id)
    return dubbo_provider(layout, root, address, info, pid=pid, timestamp_ms=timestamp_ms)


def build_consumer(layout: Layout, root: str, host: str, info: ServiceInfo, *, pid: int, timestamp_ms: int,
                   config_id: str) -> NodeRegistration:
    if layout.name == "sofarpc":
        return sofa_consumer(layout, root, host, info, pid=pid, timestamp_ms=timestamp_ms, config_id=config_id)
    return dubbo_consumer(layout, root, host, info, pid=pid, timestamp_ms=timestamp_ms)
