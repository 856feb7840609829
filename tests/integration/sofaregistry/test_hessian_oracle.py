"""The SOFARegistry messages' hessian bytes against an independent Java-hessian encoder (issue 19).

For each of the six messages (SubscriberRegister, PublisherRegister with its DataBox list, RegisterResponse,
ReceivedData with two zones and with no data, Result) the test builds the Java value *from the Java classes*:
the declared fields of ``sofastack/sofa-registry:core/src/main/java/com/alipay/sofa/registry/core/model/*.java``
with their declared types (``JAVA_CLASSES``), laid out by the rule of sofa-hessian 3.x ``JavaSerializer``
(``java_fields``), each value typed as its Java field type says (a ``Long`` field is a long even when small).
hessian.js-1 (the draft-grammar oracle, integration/peers/sofaregistry_hessian.js) encodes that description; our bytes
(``DraftEncoder().write(value).getvalue()``, the value as ``Register.encode`` / ``integration.sofaregistry.messages``
/ ``push_result`` build it) must be the same bytes, and hessian.js-1 must decode our bytes to the same class names,
field order and values (and our reader must read hessian.js-1's bytes back to our value).

Java's rules these descriptions follow (sofa-hessian branch 3.x, 3.5.2; sofa-registry master pins 3.5.6):
- field order, ``JavaSerializer(Class)``: ``for (; cl != null; cl = cl.getSuperclass())`` over
  ``getDeclaredFields()`` minus static and transient ones; ``field.getType().isPrimitive() ||
  field.getType().getName().startsWith("java.lang.") && !field.getType().equals(Object.class)`` go to
  ``primitiveFields``, the rest to ``compoundFields``; written ``primitiveFields`` then ``compoundFields``. So
  subclass primitives, superclass primitives, subclass compounds, superclass compounds.
- ``MapSerializer.writeObject``: ``if (cl.equals(HashMap.class)) out.writeMapBegin(null); else
  out.writeMapBegin(obj.getClass().getName())`` — a HashMap is ``M`` pairs ``z``, ``Collections.EMPTY_MAP``
  (``ReceivedDataConverter.swizzData`` with no publishers) is ``M t <java.util.Collections$EmptyMap> z``.
- ``CollectionSerializer.writeObject``: ``if (cl.equals(ArrayList.class) || !_sendJavaType)
  out.writeListBegin(list.size(), null)`` — an ArrayList (every list here: ``Lists.newArrayList``,
  ``new ArrayList<>()``) is ``V n <len>`` values ``z``.
- ``Hessian2Output.writeLong``: ``LONG_DIRECT`` -8..15 one byte (``0xe0 + v``), ``LONG_BYTE`` 2 bytes (``0xf8``),
  ``LONG_SHORT`` 3 bytes (``0x3c``), ``LONG_INT`` ``0x77`` + int32, else ``L`` + 8 bytes; ``writeString``:
  ``length <= STRING_DIRECT_MAX`` (0x1f) one length byte, else ``S`` b16 b8 (no 0x30-0x33 form in the draft).
- A HashMap iterates in bucket order (``hash(key) & (table.length - 1)``, ``hash = h ^ (h >>> 16)``); the order
  of a map carries no meaning to a reader (Java's ``MapDeserializer`` fills a HashMap), but for the bytes to be
  exactly Java's the zones are chosen so that our insertion order is Java's iteration order (asserted).

Where hessian.js-1 itself differs from Java, and why none of it reaches these messages:
- a plain JS object's keys are written *sorted* (``_writeHashMap``: ``Object.keys(obj).sort()``); Java writes a
  HashMap in bucket order. The oracle gets maps as ES6 Maps (written in their own order), see the script.
- a typed map's type is written as ``t`` + name every time and never enters the type table (v2
  ``_writeHashMap``); Java's ``writeMapBegin`` goes through ``writeType``, which records it, so a second map (or a
  list, ``writeListBegin`` looks the table up first) of the same type in one body is ``u <ref>`` (or ``v``) in Java.
  These bodies hold at most one typed map (``Collections$EmptyMap``) and no typed list, so the bytes agree;
  ``test_no_body_repeats_a_type`` keeps that precondition true.
- hessian.js-1 writes a ``{$class: <non-map class>, $: {...}}`` as an object; a typed map needs ``isMap`` (the
  script sets it for ``$map``), else ``Collections$EmptyMap`` would become an object with no fields.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from discovery.sofaregistry import model
from discovery.sofaregistry.model import Register, push_result
from integration import peers
from integration.sofaregistry import messages
from meshd.codec.hessian2 import DraftEncoder, DraftReader, JavaObject, Long, TypedMap
from meshd.discovery_wire import BoltObjectWire

pytestmark = pytest.mark.peers

WIRE = BoltObjectWire()
PKG = "com.alipay.sofa.registry.core.model."
STRING, INTEGER, LONG, BOOLEAN = "java.lang.String", "java.lang.Integer", "java.lang.Long", "boolean"
PRIMITIVES = {"boolean", "byte", "char", "short", "int", "long", "float", "double"}

# Instance fields as declared (source order, declared type) and the superclass, from sofa-registry master
# core/src/main/java/com/alipay/sofa/registry/core/model/<Class>.java (serialVersionUID is static: not a field).
JAVA_CLASSES: dict[str, tuple[str | None, tuple[tuple[str, str], ...]]] = {
    "BaseRegister": (None, (
        ("instanceId", STRING), ("zone", STRING), ("appName", STRING), ("dataId", STRING), ("group", STRING),
        ("processId", STRING), ("registId", STRING), ("clientId", STRING), ("dataInfoId", STRING), ("ip", STRING),
        ("port", INTEGER), ("eventType", STRING), ("version", LONG), ("timestamp", LONG),
        ("attributes", "java.util.Map"))),                   # private volatile Map<String, String> attributes
    "SubscriberRegister": ("BaseRegister", (("scope", STRING), ("acceptEncoding", STRING),
                                            ("acceptMulti", BOOLEAN))),
    "PublisherRegister": ("BaseRegister", (("dataList", "java.util.List"),)),
    "DataBox": (None, (("data", STRING),)),
    "ReceivedData": (None, (
        ("dataId", STRING), ("group", STRING), ("instanceId", STRING), ("segment", STRING), ("scope", STRING),
        ("subscriberRegistIds", "java.util.List"), ("data", "java.util.Map"), ("version", LONG),
        ("localZone", STRING), ("dataCount", "java.util.Map"))),
    "RegisterResponse": (None, (("success", BOOLEAN), ("registId", STRING), ("version", "long"),
                                ("refused", BOOLEAN), ("message", STRING))),
    "Result": (None, (("success", BOOLEAN), ("message", STRING))),
}


def java_fields(cls: str) -> list[tuple[str, str]]:
    """The fields in the order sofa-hessian's ``JavaSerializer`` writes them (module docstring)."""
    primitive: list[tuple[str, str]] = []
    compound: list[tuple[str, str]] = []
    current: str | None = cls
    while current is not None:
        superclass, declared = JAVA_CLASSES[current]
        for name, java_type in declared:
            simple = java_type in PRIMITIVES or (java_type.startswith("java.lang.") and java_type != "java.lang.Object")
            (primitive if simple else compound).append((name, java_type))
        current = superclass
    return primitive + compound


# -- descriptions for hessian.js-1 (the value with explicit Java classes) -------------------------------------------

def typed(java_type: str, value: Any) -> Any:
    """A field value as its declared Java type says; interface-typed fields (Map, List) are already described by
    their runtime class (``array_list``, ``hash_map``, ``typed_map``) or None."""
    if java_type == STRING:
        return {"$class": STRING, "$": value}
    if java_type in (LONG, "long"):
        return {"$class": java_type, "$": None if value is None else str(value)}    # strings: beyond 2^53 too
    if java_type in (INTEGER, "int"):
        return {"$class": java_type, "$": value}
    if java_type == BOOLEAN:
        return {"$class": BOOLEAN, "$": value}
    return value


def java_object(cls: str, **values: Any) -> dict[str, Any]:
    fields = java_fields(cls)
    assert set(values) == {name for name, _ in fields}, f"{cls}: give every field, as Java always writes them"
    return {"$class": PKG + cls, "$": {name: typed(java_type, values[name]) for name, java_type in fields}}


def array_list(items: list[Any] | None) -> Any:
    return None if items is None else {"$class": "java.util.ArrayList", "$": items}


def java_string_hash(s: str) -> int:
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return h


def java_hashmap_order(keys: list[str], table: int) -> list[str]:
    """The order a ``java.util.HashMap`` with ``table`` buckets iterates string keys put in this order."""
    def bucket(k: str) -> int:
        h = java_string_hash(k)
        return (h ^ (h >> 16)) & (table - 1)
    return sorted(keys, key=bucket)      # stable: a bucket's list keeps insertion order


def guava_expected_size_table(n: int) -> int:
    """Buckets of ``Maps.newHashMapWithExpectedSize(n)`` once filled (``capacity``, then ``tableSizeFor``)."""
    capacity = n + 1 if n < 3 else int(n / 0.75 + 1.0)
    table = 1
    while table < capacity:
        table <<= 1
    return table


def hash_map(pairs: dict[str, Any], table: int = 16) -> dict[str, Any]:
    """A ``java.util.HashMap`` of string keys, entries in Java's iteration order."""
    order = java_hashmap_order(list(pairs), table)
    return {"$class": "java.util.HashMap", "$map": [[typed(STRING, k), pairs[k]] for k in order]}


def typed_map(java_class: str, pairs: dict[str, Any]) -> dict[str, Any]:
    return {"$class": java_class, "$map": [[typed(STRING, k), v] for k, v in pairs.items()]}


# -- the messages ----------------------------------------------------------------------------------------------------

REGIST_ID = "5f1e0c4a-9b7d-4e36-8f0a-2d6c1b3e7a90"
PUB_ID = "c2a9d7e1-33b4-4f0e-9d5c-7b1a8e6f2c04"
DATA_ID = "com.example.Calc:1.0@DEFAULT"
TIMESTAMP = 1718000000123
TWEPOCH = 1546272000000                    # DatumVersionUtil: ((ms - twepoch) << 15) | sequence
DATUM_VERSION = ((TIMESTAMP - TWEPOCH) << 15) | 1                   # 'L' + 8 bytes
LATE_DATUM_VERSION = ((1830000000000 - TWEPOCH) << 15) | 2          # after 2027-09: beyond 2^53, a JS string
BOXES_A = ["bolt://10.0.0.7:12200?app=calc&serialization=hessian2&weight=100&zone=RZ00A",
           "bolt://10.0.0.8:12200?app=calc&v=é"]
BOXES_B = ["bolt://10.1.0.9:12200?app=计算&note=𝄞"]     # CESU-8: a supplementary character is two 3-byte units
ZONES = {"RZ00A": BOXES_A, "RZ00B": BOXES_B}


# Register versions (the client's pubVersion) and the RegisterResponse's echo of one: 1, 300, 70000, 300000 take
# the 1-, 2-, 3- and 0x77 5-byte long forms; the timestamps and datum versions take 'L'.


def register_fields(**overrides: Any) -> dict[str, Any]:
    """The BaseRegister part as the Java client fills it (``AbstractInternalRegister.setAttributes``)."""
    fields = {"instanceId": "DEFAULT_INSTANCE_ID", "zone": "RZ00A", "appName": "calc-consumer", "dataId": DATA_ID,
              "group": "SOFA", "processId": None, "registId": REGIST_ID, "clientId": None, "dataInfoId": None,
              "ip": "10.0.0.5", "port": None, "eventType": "REGISTER", "version": 1, "timestamp": TIMESTAMP,
              "attributes": hash_map({})}     # NoopAuthManager.getAuthContent's empty HashMap, set by setAuthSignature
    fields.update(overrides)
    return fields


def data_boxes(items: list[str]) -> Any:
    return array_list([java_object("DataBox", data=d) for d in items])


def case_subscriber() -> tuple[Any, Any]:
    ours = Register("subscriber", REGIST_ID, DATA_ID, version=1, timestamp=TIMESTAMP, app="calc-consumer",
                    zone="RZ00A", ip="10.0.0.5", scope="global").encode(WIRE)
    java = java_object("SubscriberRegister", scope="global", acceptEncoding=None, acceptMulti=False,
                       **register_fields())
    return ours, java


def case_publisher() -> tuple[Any, Any]:
    ours = Register("publisher", PUB_ID, DATA_ID, version=300, timestamp=TIMESTAMP + 1, app="calc-provider",
                    zone="RZ00A", ip="10.0.0.7", data=tuple(BOXES_A)).encode(WIRE)
    java = java_object("PublisherRegister", dataList=data_boxes(BOXES_A), **register_fields(
        appName="calc-provider", registId=PUB_ID, ip="10.0.0.7", version=300, timestamp=TIMESTAMP + 1))
    return ours, java


def case_publisher_unregister() -> tuple[Any, Any]:
    ours = Register("publisher", PUB_ID, DATA_ID, version=70000, timestamp=TIMESTAMP + 2, app="calc-provider",
                    zone="RZ00A", ip="10.0.0.7", event_type="UNREGISTER", data=tuple(BOXES_A)).encode(WIRE)
    java = java_object("PublisherRegister", dataList=None, **register_fields(
        appName="calc-provider", registId=PUB_ID, ip="10.0.0.7", eventType="UNREGISTER", version=70000,
        timestamp=TIMESTAMP + 2))
    return ours, java


def case_register_response() -> tuple[Any, Any]:
    ours = messages.register_response(True, REGIST_ID, 300000, "Subscriber register success!")
    java = java_object("RegisterResponse", success=True, registId=REGIST_ID, version=300000, refused=False,
                       message="Subscriber register success!")
    return ours, java


def case_received_data_two_zones() -> tuple[Any, Any]:
    assert list(ZONES) == java_hashmap_order(list(ZONES), 16) == java_hashmap_order(
        list(ZONES), guava_expected_size_table(len(ZONES))), "pick zones whose order is Java's HashMap order"
    ours = messages.received_data(DATA_ID, "SOFA", "DEFAULT_INSTANCE_ID", "DefaultDataCenter", "global",
                                  [REGIST_ID], ZONES, DATUM_VERSION, "RZ00A")
    java = java_object(
        "ReceivedData", dataId=DATA_ID, group="SOFA", instanceId="DEFAULT_INSTANCE_ID", segment="DefaultDataCenter",
        scope="global", subscriberRegistIds=array_list([typed(STRING, REGIST_ID)]),
        # swizzData: new HashMap<>() of new ArrayList<>(); dataCount: Maps.newHashMapWithExpectedSize(data.size())
        data=hash_map({z: data_boxes(items) for z, items in ZONES.items()}),
        version=DATUM_VERSION, localZone="RZ00A",
        dataCount=hash_map({z: typed(INTEGER, len(items)) for z, items in ZONES.items()},
                           guava_expected_size_table(len(ZONES))))
    return ours, java


def case_received_data_empty() -> tuple[Any, Any]:
    ours = messages.received_data(DATA_ID, "SOFA", "DEFAULT_INSTANCE_ID", "DefaultDataCenter", "zone",
                                  [REGIST_ID], {}, LATE_DATUM_VERSION, "RZ00A", publishers=False)
    java = java_object(
        "ReceivedData", dataId=DATA_ID, group="SOFA", instanceId="DEFAULT_INSTANCE_ID", segment="DefaultDataCenter",
        scope="zone", subscriberRegistIds=array_list([typed(STRING, REGIST_ID)]),
        data=typed_map("java.util.Collections$EmptyMap", {}),       # swizzData: return Collections.EMPTY_MAP
        version=LATE_DATUM_VERSION, localZone="RZ00A", dataCount=hash_map({}, guava_expected_size_table(0)))
    return ours, java


def case_received_data_filtered() -> tuple[Any, Any]:
    """Publishers exist, but the zone-scoped subscriber's zone has none (``ZonePredicate.zoneFilter``)."""
    ours = messages.received_data(DATA_ID, "SOFA", "DEFAULT_INSTANCE_ID", "DefaultDataCenter", "zone",
                                  [REGIST_ID], {}, DATUM_VERSION, "RZ00A")
    java = java_object(
        "ReceivedData", dataId=DATA_ID, group="SOFA", instanceId="DEFAULT_INSTANCE_ID", segment="DefaultDataCenter",
        scope="zone", subscriberRegistIds=array_list([typed(STRING, REGIST_ID)]),
        data=hash_map({}),                                           # swizzData's new HashMap, left empty
        version=DATUM_VERSION, localZone="RZ00A", dataCount=hash_map({}, guava_expected_size_table(0)))
    return ours, java


def case_result() -> tuple[Any, Any]:
    return push_result(WIRE), java_object("Result", success=True, message=None)


def case_result_failed() -> tuple[Any, Any]:
    return (push_result(WIRE, False, "ReceivedData.version is str, not int"),
            java_object("Result", success=False, message="ReceivedData.version is str, not int"))


CASES = {f.__name__[len("case_"):]: f for f in (
    case_subscriber, case_publisher, case_publisher_unregister, case_register_response,
    case_received_data_two_zones, case_received_data_empty, case_received_data_filtered, case_result,
    case_result_failed)}


# -- the oracle ------------------------------------------------------------------------------------------------------

def run_oracle(mode: str, items: list[Any]) -> list[dict[str, Any]]:
    proc = peers.run_node("sofaregistry_hessian", "--mode", mode, input=json.dumps(items).encode(), timeout=120)
    assert proc.returncode == 0, f"sofaregistry_hessian.js {mode} exited {proc.returncode}: {proc.stdout} {proc.stderr}"
    return json.loads(proc.stdout)["results"]


@pytest.fixture(scope="module")
def oracle() -> dict[str, dict[str, Any]]:
    """Per case: our value and bytes, the Java description, hessian.js-1's bytes and its decoding of ours."""
    reason = peers.missing_reason()
    if reason:
        pytest.skip(reason)
    peers.install(pypi=False)
    built = {name: case() for name, case in CASES.items()}
    ours = {name: DraftEncoder().write(value).getvalue() for name, (value, _) in built.items()}
    encoded = run_oracle("encode", [java for _, java in built.values()])
    decoded = run_oracle("decode", [ours[name].hex() for name in built])
    return {name: {"value": built[name][0], "java": built[name][1], "ours": ours[name], "theirs": enc, "decoded": dec}
            for name, enc, dec in zip(built, encoded, decoded)}


def decoded_shape(desc: Any) -> Any:
    """What hessian.js-1's ``read(true)`` gives for a description (see the script's header), longs as ints."""
    if not isinstance(desc, dict):
        return [decoded_shape(v) for v in desc] if isinstance(desc, list) else desc
    cls = desc["$class"]
    if "$map" in desc:
        entries = {decoded_shape(k): decoded_shape(v) for k, v in desc["$map"]}
        return entries if cls == "java.util.HashMap" else {"$class": cls, "$": entries}
    value = desc["$"]
    if value is None:
        return None
    if cls in (LONG, "long"):
        return {"$class": "long", "$": int(value)}
    if cls == BOOLEAN:
        return {"$class": "boolean", "$": value}
    if cls in (STRING, INTEGER, "int"):
        return value
    if cls == "java.util.ArrayList":
        return [decoded_shape(v) for v in value]
    return {"$class": cls, "$": {k: decoded_shape(v) for k, v in value.items()}}


def longs_as_ints(value: Any) -> Any:
    """hessian.js-1 gives a long beyond 2^53 as a decimal string: make every long an int."""
    if isinstance(value, list):
        return [longs_as_ints(v) for v in value]
    if isinstance(value, dict):
        if value.get("$class") == "long":
            return {"$class": "long", "$": int(value["$"])}
        return {k: longs_as_ints(v) for k, v in value.items()}
    return value


def field_orders(value: Any) -> list[tuple[str, list[str]]]:
    """Every object's class and field names in order, depth first (dicts keep JSON order)."""
    out: list[tuple[str, list[str]]] = []
    if isinstance(value, list):
        for v in value:
            out += field_orders(v)
    elif isinstance(value, dict):
        if "$class" in value and isinstance(value.get("$"), dict) and value["$class"].startswith(PKG):
            out.append((value["$class"], list(value["$"])))
        for v in value.values():
            out += field_orders(v)
    return out


# -- tests -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_our_bytes_are_what_hessian_js_1_writes_for_the_java_value(oracle, name):
    case = oracle[name]
    assert "error" not in case["theirs"], case["theirs"]
    theirs = bytes.fromhex(case["theirs"]["hex"])
    assert case["ours"].hex() == theirs.hex(), f"{name}: our bytes differ from hessian.js-1's"
    assert DraftReader(theirs).read() == case["value"]          # and ours reads theirs back to our value


@pytest.mark.parametrize("name", list(CASES))
def test_hessian_js_1_decodes_our_bytes_to_the_java_classes_and_values(oracle, name):
    case = oracle[name]
    assert "error" not in case["decoded"], case["decoded"]
    got = longs_as_ints(case["decoded"]["value"])
    want = decoded_shape(case["java"])
    assert got == want
    assert field_orders(got) == field_orders(want)               # class definitions in Java's field order
    assert got["$class"] == case["value"].class_name


@pytest.mark.parametrize("name", list(CASES))
def test_no_body_repeats_a_type(oracle, name):
    """hessian.js-1 keeps typed-map types out of its type table (module docstring): the byte comparison above holds
    only while no body carries the same map or list type twice."""
    types: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, TypedMap):
            types.append(value.type_name)
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(oracle[name]["value"])
    assert len(types) == len(set(types))


@pytest.mark.parametrize("cls, ours", [
    ("SubscriberRegister", model.SUBSCRIBER_FIELDS),
    ("PublisherRegister", model.PUBLISHER_FIELDS),
    ("ReceivedData", model.RECEIVED_DATA_FIELDS),
    ("RegisterResponse", model.REGISTER_RESPONSE_FIELDS),
])
def test_the_clients_field_lists_follow_the_java_serializer_rule(cls, ours):
    assert tuple(name for name, _ in java_fields(cls)) == ours


def test_the_servers_objects_follow_the_java_serializer_rule():
    built = {"RegisterResponse": case_register_response()[0], "ReceivedData": case_received_data_two_zones()[0],
             "Result": case_result()[0]}
    for cls, value in built.items():
        assert isinstance(value, JavaObject) and value.class_name == PKG + cls
        assert list(value) == [name for name, _ in java_fields(cls)], cls
    assert isinstance(built["RegisterResponse"]["version"], Long) and isinstance(built["ReceivedData"]["version"], Long)
