"""``meshd call`` argument handling (the calls against real peers are in tests/integration/peers)."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from meshd.call import (
    EXIT_TRANSPORT, EXIT_USAGE, CallError, convert, infer_type, java_class_name, parse_attachments,
    parse_json_args, parse_timeout, to_json, typed_args,
)
from meshd.cli import build_parser, main
from meshd.codec.hessian2 import JavaObject, Long, encode_final, decode_final


def test_type_inference_follows_the_documented_table():
    assert [infer_type(v) for v in ("s", 7, 2**31, 1.5, True, [1], {"a": 1}, None)] == [
        "java.lang.String", "int", "long", "double", "boolean", "java.util.List", "java.util.Map",
        "java.lang.Object"]


def test_explicit_types_convert_values():
    values, types = typed_args([7, 7, 2, {"name": "x"}, [1]], "long,java.lang.Integer,double,com.example.User,int[]")
    assert isinstance(values[0], Long) and type(values[1]) is int and values[2] == 2.0
    assert values[3] == JavaObject("com.example.User", {"name": "x"}) and values[4] == [1]
    body = encode_final(*values)
    assert body[0] == 0xE7                       # long 7, not int 7
    assert decode_final(body)[3].class_name == "com.example.User"
    assert convert({"a": 1}, "java.util.Map") == {"a": 1}


def test_type_count_must_match():
    with pytest.raises(CallError) as info:
        typed_args([1, 2], "int")
    assert info.value.exit_code == EXIT_USAGE and "1 types for 2 arguments" in info.value.message


def test_json_arguments_need_quoting():
    assert parse_json_args(['"world"', "7", "[1, 2]", "null"]) == ["world", 7, [1, 2], None]
    with pytest.raises(CallError, match="BAD_ARGUMENT") as info:
        parse_json_args(["world"])
    assert "'\"world\"'" in info.value.message


@pytest.mark.parametrize("text,seconds", [("5s", 5.0), ("250ms", 0.25), ("2.5", 2.5)])
def test_timeouts(text, seconds):
    assert parse_timeout(text) == seconds


def test_bad_timeout_and_attachments():
    with pytest.raises(CallError):
        parse_timeout("soon")
    assert parse_attachments(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(CallError):
        parse_attachments(["novalue"])


def test_java_class_names_for_bolt_signatures():
    assert java_class_name("int[]") == "[I"
    assert java_class_name("java.lang.String[][]") == "[[Ljava.lang.String;"
    assert java_class_name("java.lang.String") == "java.lang.String"


def test_results_as_json():
    value = {"o": JavaObject("a.B", {"x": b"\x00\x01"}), 1: dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)}
    assert to_json(value) == {"o": {"$class": "a.B", "x": {"$binary": "AAE="}}, "1": "2020-01-01T00:00:00+00:00"}
    cyc: list = []
    cyc.append(cyc)
    assert "too deep" in str(to_json(cyc))


def test_cli_usage_errors_and_connection_refused(capsys):
    assert main(["call", "http://x:1", "S", "m"]) == EXIT_USAGE
    assert "expected dubbo://host:port" in capsys.readouterr().err
    with socket.socket() as s:                  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["call", f"dubbo://127.0.0.1:{port}", "S", "m", "--timeout", "2s"]) == EXIT_TRANSPORT
    assert capsys.readouterr().err.startswith("CONNECT_FAILURE: ")


def test_parser_keeps_the_cli_contract():
    args = build_parser().parse_args(["call", "bolt://h:1", "S", "m", "1", '"x"', "--attachment", "k=v",
                                      "--version", "2.0", "--group", "g", "--timeout", "1s", "--types", "int,java.lang.String"])
    assert (args.target, args.service, args.method, args.args) == ("bolt://h:1", "S", "m", ["1", '"x"'])
    assert (args.service_version, args.group, args.attachment) == ("2.0", "g", ["k=v"])
