"""The session server's side of the SOFARegistry client protocol: the Java objects it sends, fields in the order
Java's hessian serializer writes them (``java.lang.*`` and primitive fields first, subclass before superclass;
then the rest). Written from ``sofastack/sofa-registry:core/src/main/java/com/alipay/sofa/registry/core/model``,
independently of meshd's client (:mod:`discovery.sofaregistry.model`), so that the two check each other; the bytes
are checked against hessian.js-1 with the same Java class names (tests/integration/sofaregistry).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from meshd.codec.hessian2 import JavaObject, Long, TypedMap

MODEL = "com.alipay.sofa.registry.core.model."
SUBSCRIBER_REGISTER = MODEL + "SubscriberRegister"
PUBLISHER_REGISTER = MODEL + "PublisherRegister"
RECEIVED_DATA = MODEL + "ReceivedData"
REGISTER_RESPONSE = MODEL + "RegisterResponse"
DATA_BOX = MODEL + "DataBox"
RESULT = MODEL + "Result"
EMPTY_MAP = "java.util.Collections$EmptyMap"

DEFAULT_ZONE = "DEFAULT_ZONE"
DEFAULT_DATA_CENTER = "DefaultDataCenter"
DEFAULT_INSTANCE_ID = "DEFAULT_INSTANCE_ID"
DEFAULT_GROUP = "DEFAULT_GROUP"
SOFA_GROUP = "SOFA"
UNREGISTER = "UNREGISTER"


def data_info_id(data_id: str, instance_id: str, group: str) -> str:
    return f"{data_id}#@#{instance_id}#@#{group}"


def register_response(success: bool, regist_id: str | None, version: int, message: str) -> JavaObject:
    return JavaObject(REGISTER_RESPONSE, {"success": success, "registId": regist_id, "version": Long(version),
                                          "refused": False, "message": message})


def received_data(data_id: str, group: str, instance_id: str, segment: str, scope: str, regist_ids: Iterable[str],
                  zones: Mapping[str, list[str]], version: int, local_zone: str,
                  publishers: bool = True) -> JavaObject:
    """``ReceivedData``. No zones: a datum without publishers is ``Collections.EMPTY_MAP``
    (``ReceivedDataConverter.swizzData``), one whose publishers the subscriber's scope filtered out an empty
    ``HashMap``."""
    data = ({z: [JavaObject(DATA_BOX, {"data": d}) for d in items] for z, items in zones.items()} if zones
            else {} if publishers else TypedMap(EMPTY_MAP))
    return JavaObject(RECEIVED_DATA, {
        "dataId": data_id, "group": group, "instanceId": instance_id, "segment": segment, "scope": scope,
        "version": Long(version), "localZone": local_zone, "subscriberRegistIds": list(regist_ids), "data": data,
        "dataCount": {z: len(items) for z, items in zones.items()}})
