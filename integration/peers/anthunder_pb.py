"""The protobuf messages of the anthunder peer scripts, built with protobuf's runtime (no protoc).

anthunder carries protobuf bodies as bytes and leaves the messages to the app (its README: compile the
service's ``.proto`` with protoc). These are the classes protoc would generate for::

    syntax = "proto3";
    package meshd.peers;
    message HelloRequest { string name = 1; int32 n = 2; }
    message HelloResult  { string result = 1; string server = 2; int32 n = 3; }

served as ``com.example.pb.GreeterPb:1.0`` (method ``hello``) by ``anthunder_provider.py``. Imported by the
peer scripts next to this file; runs in the ``anthunder`` peer's virtualenv (``integration.peers``).
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

INTERFACE = "com.example.pb.GreeterPb:1.0"
METHOD = "hello"

_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_INT32 = descriptor_pb2.FieldDescriptorProto.TYPE_INT32
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL


def _build() -> dict:
    proto = descriptor_pb2.FileDescriptorProto(name="meshd/peers/greeter.proto", package="meshd.peers",
                                               syntax="proto3")
    for message, fields in (("HelloRequest", [("name", _STRING), ("n", _INT32)]),
                            ("HelloResult", [("result", _STRING), ("server", _STRING), ("n", _INT32)])):
        msg = proto.message_type.add(name=message)
        for number, (field, kind) in enumerate(fields, start=1):
            msg.field.add(name=field, number=number, type=kind, label=_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"meshd.peers.{name}"))
            for name in ("HelloRequest", "HelloResult")}


_CLASSES = _build()
HelloRequest = _CLASSES["HelloRequest"]
HelloResult = _CLASSES["HelloResult"]
