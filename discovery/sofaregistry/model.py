"""The SOFARegistry client protocol's messages (pure): the Java classes, their fields in the order Java writes
them, and the checks on what a session server answers and pushes.

Source of truth: ``sofastack/sofa-registry`` — ``core/src/main/java/com/alipay/sofa/registry/core/model/*`` (the
classes), ``client/impl/.../provider/AbstractInternalRegister.java#setAttributes`` and ``DefaultSubscriber`` /
``DefaultPublisher#assembly`` (what a client fills in), ``client/impl/.../remoting/ReceivedDataProcessor.java``
(how a push is answered), ``server/.../strategy/impl/DefaultSubscriberHandlerStrategy.java`` (what the server
answers). Java's hessian serializer writes an object's primitive and ``java.lang.*`` fields first (subclass
before superclass), then the others in the same order; the field lists below are in that order, and readers
take fields by name, never by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from discovery.wire import BoltWire

PACKAGE = "com.alipay.sofa.registry.core.model."
SUBSCRIBER_REGISTER = PACKAGE + "SubscriberRegister"
PUBLISHER_REGISTER = PACKAGE + "PublisherRegister"
DATA_BOX = PACKAGE + "DataBox"
RECEIVED_DATA = PACKAGE + "ReceivedData"
REGISTER_RESPONSE = PACKAGE + "RegisterResponse"
RESULT = PACKAGE + "Result"

DEFAULT_INSTANCE_ID = "DEFAULT_INSTANCE_ID"
DEFAULT_ZONE = "DEFAULT_ZONE"
DEFAULT_DATA_CENTER = "DefaultDataCenter"
SOFA_GROUP = "SOFA"                          # SOFARPC's SofaRegistryHelper.SUBSCRIBER_LIST_GROUP_ID
SCOPES = ("zone", "dataCenter", "global")    # ScopeEnum
REGISTER, UNREGISTER = "REGISTER", "UNREGISTER"

_BASE_FIRST = ("instanceId", "zone", "appName", "dataId", "group", "processId", "registId", "clientId",
               "dataInfoId", "ip", "port", "eventType", "version", "timestamp")
SUBSCRIBER_FIELDS = ("scope", "acceptEncoding", "acceptMulti") + _BASE_FIRST + ("attributes",)
PUBLISHER_FIELDS = _BASE_FIRST + ("dataList", "attributes")
RECEIVED_DATA_FIELDS = ("dataId", "group", "instanceId", "segment", "scope", "version", "localZone",
                        "subscriberRegistIds", "data", "dataCount")
REGISTER_RESPONSE_FIELDS = ("success", "registId", "version", "refused", "message")


def data_info_id(data_id: str, instance_id: str = DEFAULT_INSTANCE_ID, group: str = SOFA_GROUP) -> str:
    """``DataInfo.toDataInfoId``: the server's key for one piece of data."""
    return f"{data_id}#@#{instance_id}#@#{group}"


@dataclass(frozen=True, slots=True)
class Register:
    """One subscriber or publisher as a client sends it (``BaseRegister`` and its subclasses)."""

    kind: str                    # "subscriber" | "publisher"
    regist_id: str
    data_id: str
    version: int                 # the register's own version (pubVersion): raised by every change
    timestamp: int
    app: str
    zone: str
    ip: str = ""
    group: str = SOFA_GROUP
    instance_id: str = DEFAULT_INSTANCE_ID
    event_type: str = REGISTER
    scope: str = "zone"          # subscribers
    data: Sequence[str] = ()     # publishers: the DataBox strings

    def encode(self, wire: BoltWire) -> Any:
        """The Java object, fields in Java's order (processId, clientId, dataInfoId and port stay null, as the
        Java client leaves them: the server fills them in from the connection; ``attributes`` is the empty map
        the client's ``NoopAuthManager`` leaves there)."""
        base = {"instanceId": self.instance_id, "zone": self.zone, "appName": self.app, "dataId": self.data_id,
                "group": self.group, "processId": None, "registId": self.regist_id, "clientId": None,
                "dataInfoId": None, "ip": self.ip or None, "port": None, "eventType": self.event_type,
                "version": wire.long(self.version), "timestamp": wire.long(self.timestamp)}
        if self.kind == "subscriber":
            return wire.obj(SUBSCRIBER_REGISTER, {"scope": self.scope, "acceptEncoding": None, "acceptMulti": False,
                                                  **base, "attributes": {}})
        boxes = [wire.obj(DATA_BOX, {"data": d}) for d in self.data] if self.event_type == REGISTER else None
        return wire.obj(PUBLISHER_REGISTER, {**base, "dataList": boxes, "attributes": {}})


class MessageError(ValueError):
    """A message from the server that is not what the protocol says; names the class and the field."""


def _field(value: Mapping[str, Any], name: str, kinds: tuple[type, ...], what: str, *, optional: bool = True) -> Any:
    item = value.get(name)
    if item is None and optional:
        return None
    if not isinstance(item, kinds) or (bool in kinds) != isinstance(item, bool):
        raise MessageError(f"{what}.{name} is {type(item).__name__}, not {'/'.join(k.__name__ for k in kinds)}")
    return item


@dataclass(frozen=True, slots=True)
class RegisterAnswer:
    success: bool
    regist_id: str
    version: int
    refused: bool
    message: str


def register_answer(wire: BoltWire, value: Any) -> RegisterAnswer:
    """The server's ``RegisterResponse``; MessageError for anything else."""
    if wire.class_of(value) != REGISTER_RESPONSE or not isinstance(value, Mapping):
        raise MessageError(f"answer to a register is {wire.class_of(value) or type(value).__name__}, "
                           f"not {REGISTER_RESPONSE}")
    what = "RegisterResponse"
    return RegisterAnswer(bool(_field(value, "success", (bool,), what)), _field(value, "registId", (str,), what) or "",
                          _field(value, "version", (int,), what) or 0, bool(_field(value, "refused", (bool,), what)),
                          _field(value, "message", (str,), what) or "")


@dataclass(frozen=True, slots=True)
class Push:
    """One ``ReceivedData``: the data of one segment (data center) of one data id, per zone."""

    data_id: str
    group: str
    instance_id: str
    segment: str
    scope: str
    version: int
    local_zone: str
    regist_ids: tuple[str, ...]
    zones: Mapping[str, tuple[str, ...]]


def read_push(wire: BoltWire, value: Any) -> Push:
    """A ``ReceivedData`` push, checked field by field; MessageError naming what is wrong."""
    if wire.class_of(value) != RECEIVED_DATA or not isinstance(value, Mapping):
        raise MessageError(f"push of class {wire.class_of(value) or type(value).__name__}, not {RECEIVED_DATA}")
    what = "ReceivedData"
    data_id = _field(value, "dataId", (str,), what, optional=False)
    version = _field(value, "version", (int,), what, optional=False)
    ids = _field(value, "subscriberRegistIds", (list,), what) or []
    if not all(isinstance(i, str) for i in ids):
        raise MessageError(f"{what}.subscriberRegistIds holds a non-string")
    data = _field(value, "data", (dict,), what) or {}
    zones: dict[str, tuple[str, ...]] = {}
    for zone, boxes in data.items():
        if not isinstance(zone, str) or not isinstance(boxes, list):
            raise MessageError(f"{what}.data: zone {zone!r} maps to {type(boxes).__name__}, not a list of DataBox")
        items = []
        for box in boxes:
            if wire.class_of(box) != DATA_BOX or not isinstance(box.get("data"), str):
                raise MessageError(f"{what}.data[{zone!r}] holds {wire.class_of(box) or type(box).__name__}, "
                                   f"not a DataBox with string data")
            items.append(box["data"])
        zones[zone] = tuple(items)
    return Push(data_id, _field(value, "group", (str,), what) or "", _field(value, "instanceId", (str,), what) or "",
                _field(value, "segment", (str,), what) or "", _field(value, "scope", (str,), what) or "",
                version, _field(value, "localZone", (str,), what) or "", tuple(ids), zones)


def push_result(wire: BoltWire, success: bool = True, message: str | None = None) -> Any:
    """The ``Result`` a client answers every push with (``ReceivedDataProcessor``: success even for an old one)."""
    return wire.obj(RESULT, {"success": success, "message": message})
