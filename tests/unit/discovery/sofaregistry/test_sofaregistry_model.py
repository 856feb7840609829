"""SOFARegistry messages (pure): the registers a client sends, what it accepts from a session server."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from discovery.sofaregistry.model import (
    PUBLISHER_FIELDS, RECEIVED_DATA, REGISTER_RESPONSE, SUBSCRIBER_FIELDS, MessageError, Register, read_push,
    register_answer,
)
from integration.sofaregistry import messages as server
from meshd.codec.hessian2 import DraftReader, DraftEncoder, JavaObject, Long
from meshd.discovery_wire import BoltObjectWire

WIRE = BoltObjectWire()


def roundtrip(value):
    return DraftReader(DraftEncoder().write(value).getvalue()).read()


def test_registers_carry_the_java_fields_in_java_order_and_survive_hessian():
    sub = Register("subscriber", "r-1", "a.B:1.0@DEFAULT", version=3, timestamp=1700000000000, app="app",
                   zone="zone-a", ip="10.0.0.5", scope="global").encode(WIRE)
    assert sub.class_name == server.SUBSCRIBER_REGISTER and tuple(sub) == SUBSCRIBER_FIELDS
    back = roundtrip(sub)
    assert back == sub
    assert (back["scope"], back["group"], back["instanceId"], back["eventType"]) == ("global", "SOFA",
                                                                                    "DEFAULT_INSTANCE_ID", "REGISTER")
    assert back["processId"] is None and back["port"] is None and back["acceptMulti"] is False
    pub = Register("publisher", "r-2", "a.B:1.0@DEFAULT", version=1, timestamp=1, app="app", zone="z",
                   data=("10.0.0.5:12200?p=1",)).encode(WIRE)
    assert tuple(pub) == PUBLISHER_FIELDS and [b.class_name for b in pub["dataList"]] == [server.DATA_BOX]
    assert roundtrip(pub)["dataList"][0]["data"] == "10.0.0.5:12200?p=1"
    gone = Register("publisher", "r-2", "a.B:1.0@DEFAULT", version=2, timestamp=1, app="app", zone="z",
                    event_type="UNREGISTER").encode(WIRE)
    assert gone["dataList"] is None and gone["eventType"] == "UNREGISTER"


def test_the_session_servers_messages_are_read():
    value = roundtrip(server.received_data("a.B:1.0@DEFAULT", "SOFA", "DEFAULT_INSTANCE_ID", "dc1", "zone", ["r-1"],
                                           {"zone-a": ["10.0.0.1:1"], "zone-b": []}, 42, "zone-a"))
    push = read_push(WIRE, value)
    assert (push.data_id, push.segment, push.version, push.local_zone, push.regist_ids) == (
        "a.B:1.0@DEFAULT", "dc1", 42, "zone-a", ("r-1",))
    assert push.zones == {"zone-a": ("10.0.0.1:1",), "zone-b": ()}
    empty = read_push(WIRE, roundtrip(server.received_data("a.B:1.0@DEFAULT", "SOFA", "I", "dc1", "zone", ["r-1"],
                                                           {}, 43, "zone-a")))
    assert empty.zones == {}                          # Collections$EmptyMap
    answer = register_answer(WIRE, roundtrip(server.register_response(True, "r-1", 7, "ok")))
    assert (answer.success, answer.regist_id, answer.version, answer.refused) == (True, "r-1", 7, False)


@pytest.mark.parametrize("fields, problem", [
    ({"version": Long(1)}, "ReceivedData.dataId is NoneType, not str"),
    ({"dataId": "a", "version": "1"}, "ReceivedData.version is str, not int"),
    ({"dataId": "a", "version": True}, "ReceivedData.version is bool, not int"),
    ({"dataId": "a", "version": Long(1), "subscriberRegistIds": [1]}, "subscriberRegistIds holds a non-string"),
    ({"dataId": "a", "version": Long(1), "data": {"z": "x"}}, "zone 'z' maps to str, not a list of DataBox"),
    ({"dataId": "a", "version": Long(1), "data": {"z": [JavaObject("x.Y", {"data": "d"})]}},
     "holds x.Y, not a DataBox"),
])
def test_bad_pushes_are_rejected_naming_the_field(fields, problem):
    with pytest.raises(MessageError) as err:
        read_push(WIRE, roundtrip(JavaObject(RECEIVED_DATA, fields)))
    assert problem in str(err.value)


def test_answers_of_another_class_are_rejected():
    with pytest.raises(MessageError, match="not " + REGISTER_RESPONSE):
        register_answer(WIRE, JavaObject(server.RESULT, {"success": True}))
    with pytest.raises(MessageError, match="RegisterResponse.success is str"):
        register_answer(WIRE, JavaObject(REGISTER_RESPONSE, {"success": "yes"}))


_values = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                    max_size=3), max_leaves=10)


@given(st.dictionaries(st.sampled_from(["dataId", "version", "data", "subscriberRegistIds", "segment", "localZone",
                                        "scope", "group"]), _values, max_size=8))
def test_any_received_data_is_a_push_or_a_message_error(fields):
    try:
        push = read_push(WIRE, roundtrip(JavaObject(RECEIVED_DATA, fields)))
    except MessageError:
        return
    assert isinstance(push.data_id, str) and isinstance(push.version, int)
