"""gRPC request handlers: one function per Nacos request type, ``(core, connection, body) → (type, body)``.

Response shapes follow the Java classes (``api/.../naming/remote/response``, ``api/.../config/remote/response``):
every response carries ``resultCode`` (200 / 500), ``errorCode`` and ``message`` (the transport adds
``requestId``). Notable codes: ``ConfigQueryResponse`` errorCode 300 = config not found (the client then
returns ""), 302 = no handler for the request type, 400 = invalid parameter, 500 = CAS conflict on publish.

Handlers mutate the :class:`~integration.nacos.core.Core`, which pushes changes to subscribers; they never
await, so a request's effects (and the pushes it triggers) are ordered with the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from integration.nacos import proto
from integration.nacos.model import DEFAULT_CLUSTER, Instance, namespace_of, split_service

if TYPE_CHECKING:
    from integration.nacos.core import Core
    from integration.nacos.grpc_server import GrpcConnection

Reply = tuple[str, dict[str, Any]]
CONFIG_NOT_FOUND = 300
NO_HANDLER = 302
INVALID_PARAM = 400


def fail(type_name: str, code: int, message: str) -> Reply:
    return type_name, {"resultCode": 500, "errorCode": code, "message": message}


def _service_key(body: dict[str, Any]) -> tuple[str, str, str]:
    group, name = split_service(str(body.get("serviceName") or ""), body.get("groupName"))
    return namespace_of(body.get("namespace")), group, name


def instance_from_json(raw: dict[str, Any], owner: str) -> Instance:
    """Build an :class:`Instance` from a client's JSON; ``ValueError`` when ip or port is missing/invalid."""
    ip = str(raw.get("ip") or "")
    port = int(raw.get("port", -1))
    if not ip or not 0 <= port <= 65535:
        raise ValueError(f"instance needs an ip and a port in 0..65535, got ip={ip!r} port={port}")
    return Instance(ip=ip, port=port, cluster=str(raw.get("clusterName") or DEFAULT_CLUSTER),
                    weight=float(raw.get("weight", 1.0)), healthy=bool(raw.get("healthy", True)),
                    enabled=bool(raw.get("enabled", True)), ephemeral=bool(raw.get("ephemeral", True)),
                    metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()}, owner=owner)


# ---------------------------------------------------------------------------------------------- naming
def instance_request(core: "Core", conn: "GrpcConnection", body: dict[str, Any], persistent: bool = False) -> Reply:
    resp = "InstanceResponse"
    key = _service_key(body)
    if not key[2]:
        return fail(resp, INVALID_PARAM, "serviceName is empty")
    try:
        inst = instance_from_json(body.get("instance") or {}, "persistent" if persistent else f"grpc:{conn.id}")
    except (TypeError, ValueError) as exc:
        return fail(resp, INVALID_PARAM, str(exc))
    if persistent:
        inst.ephemeral = False
    kind = body.get("type")
    if kind == "registerInstance":
        core.services_changed([core.naming.register(key, inst)])
    elif kind == "deregisterInstance":
        changed = core.naming.deregister(key, inst.ip, inst.port, inst.cluster)
        core.services_changed([changed] if changed else [])
    else:
        return fail(resp, INVALID_PARAM, f"unsupported instance request type {kind!r}")
    return resp, {"type": kind}


def batch_instance_request(core: "Core", conn: "GrpcConnection", body: dict[str, Any]) -> Reply:
    """``batchRegisterInstance`` replaces this connection's instances of the service with the given list."""
    resp = "BatchInstanceResponse"
    key = _service_key(body)
    owner = f"grpc:{conn.id}"
    try:
        wanted = [instance_from_json(raw, owner) for raw in body.get("instances") or []]
    except (TypeError, ValueError) as exc:
        return fail(resp, INVALID_PARAM, str(exc))
    svc = core.naming.service(key, create=True)
    assert svc is not None
    for k in [k for k, i in svc.instances.items() if i.owner == owner]:
        del svc.instances[k]
    for inst in wanted:
        svc.instances[inst.key] = inst
    svc.revision = core.clock.next()
    core.services_changed([key])
    return resp, {"type": body.get("type", "batchRegisterInstance")}


def subscribe_request(core: "Core", conn: "GrpcConnection", body: dict[str, Any]) -> Reply:
    key = _service_key(body)
    clusters = str(body.get("clusters") or "")
    core.subscribe_grpc(conn.id, key, clusters, bool(body.get("subscribe", True)))
    return "SubscribeServiceResponse", {"serviceInfo": core.service_info(key, clusters, grouped_name=False)}


def query_request(core: "Core", conn: "GrpcConnection", body: dict[str, Any]) -> Reply:
    key = _service_key(body)
    healthy_only = bool(body.get("healthyOnly", body.get("healthOnly", False)))
    info = core.service_info(key, str(body.get("cluster") or ""), healthy_only, grouped_name=False)
    return "QueryServiceResponse", {"serviceInfo": info}


def service_list_request(core: "Core", conn: "GrpcConnection", body: dict[str, Any]) -> Reply:
    names = core.naming.service_names(namespace_of(body.get("namespace")), body.get("groupName") or "DEFAULT_GROUP")
    page_no, page_size = max(int(body.get("pageNo") or 1), 1), max(int(body.get("pageSize") or 10), 1)
    page = names[(page_no - 1) * page_size: page_no * page_size]
    return "ServiceListResponse", {"count": len(names), "serviceNames": page}


# ---------------------------------------------------------------------------------------------- config
def _config_key(body: dict[str, Any]) -> tuple[str, str, str]:
    return namespace_of(body.get("tenant")), str(body.get("group") or ""), str(body.get("dataId") or "")


def config_query(core: "Core", conn: "GrpcConnection", body: dict[str, Any]) -> Reply:
    resp = "ConfigQueryResponse"
    item = core.configs.get(_config_key(body))
    if item is None:
        return fail(resp, CONFIG_NOT_FOUND, "config data not exist")
    return resp, {"content": item.content, "md5": item.md5, "lastModified": item.last_modified,
                  "contentType": item.type, "encryptedDataKey": "", "isBeta": False}


def config_publish(core: "Core", conn: "GrpcConnection", body: dict[str, Any]) -> Reply:
    resp = "ConfigPublishResponse"
    key = _config_key(body)
    content = body.get("content")
    if not key[1] or not key[2]:
        return fail(resp, INVALID_PARAM, "dataId and group are required")
    if content is None or not str(content).strip():
        return fail(resp, INVALID_PARAM, "content is blank")
    extra = body.get("additionMap") or {}
    if not core.configs.publish(key, str(content), body.get("casMd5") or None, extra.get("type") or "text",
                                extra.get("appName") or ""):
        return fail(resp, 500, "Cas publish fail, server md5 may have changed.")
    core.config_changed(key)
    return resp, {}


def config_remove(core: "Core", conn: "GrpcConnection", body: dict[str, Any]) -> Reply:
    key = _config_key(body)
    if core.configs.remove(key):
        core.config_changed(key)
    return "ConfigRemoveResponse", {}


def config_batch_listen(core: "Core", conn: "GrpcConnection", body: dict[str, Any]) -> Reply:
    listen = bool(body.get("listen", True))
    changed = []
    for ctx in body.get("configListenContexts") or []:
        key = _config_key(ctx)
        tenant = str(ctx.get("tenant") or "")
        core.listen_grpc(conn.id, key, tenant, listen)
        if listen and (ctx.get("md5") or "") != core.configs.md5(key):
            changed.append({"dataId": key[2], "group": key[1], "tenant": tenant})
    return "ConfigChangeBatchListenResponse", {"changedConfigs": changed}


def health_check(core: "Core", conn: "GrpcConnection", body: dict[str, Any]) -> Reply:
    return "HealthCheckResponse", {}


HANDLERS: dict[str, Callable[["Core", "GrpcConnection", dict[str, Any]], Reply]] = {
    "HealthCheckRequest": health_check,
    "InstanceRequest": instance_request,
    "PersistentInstanceRequest": lambda core, conn, body: instance_request(core, conn, body, persistent=True),
    "BatchInstanceRequest": batch_instance_request,
    "SubscribeServiceRequest": subscribe_request,
    "ServiceQueryRequest": query_request,
    "ServiceListRequest": service_list_request,
    "ConfigQueryRequest": config_query,
    "ConfigPublishRequest": config_publish,
    "ConfigRemoveRequest": config_remove,
    "ConfigBatchListenRequest": config_batch_listen,
}


def handle_request(core: "Core", conn: "GrpcConnection", msg: proto.Message) -> Reply:
    handler = HANDLERS.get(msg.type)
    if handler is None:
        return fail("ErrorResponse", NO_HANDLER, f"no handler for request type {msg.type}")
    try:
        return handler(core, conn, msg.body)
    except (TypeError, ValueError) as exc:
        return fail("ErrorResponse", INVALID_PARAM, f"{msg.type}: {exc}")
