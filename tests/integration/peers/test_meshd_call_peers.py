"""``meshd call`` against real providers: sofa-rpc-node + dubbo-remoting (Dubbo2), sofa-rpc-node (Bolt), dubbo-py."""

from __future__ import annotations

import pytest

from peer_helpers import meshd_call, result_json

pytestmark = pytest.mark.peers


def test_dubbo_say_hello(dubbo_provider):
    _, port = dubbo_provider()
    proc = meshd_call(f"dubbo://127.0.0.1:{port}", "org.example.DemoService", "sayHello", '"world"', 7,
                      "--version", "1.0.0")
    assert result_json(proc) == "hello world x7"


def test_dubbo_structured_arguments_round_trip(dubbo_provider):
    _, port = dubbo_provider()
    value = {"name": "n", "tags": ["a", "b"], "nested": {"x": 1.5, "ok": True, "none": None}}
    proc = meshd_call(f"dubbo://127.0.0.1:{port}", "org.example.DemoService", "echo", '{"name": "n", '
                      '"tags": ["a", "b"], "nested": {"x": 1.5, "ok": true, "none": null}}', "--version", "1.0.0")
    assert result_json(proc) == value


def test_dubbo_attachments_group_and_typed_arguments_reach_the_provider(dubbo_provider):
    node, port = dubbo_provider("--verbose")
    proc = meshd_call(f"dubbo://127.0.0.1:{port}", "org.example.DemoService", "add", 3, 4, "--types", "int,long",
                      "--version", "1.0.0", "--group", "blue", "--attachment", "tenant=t1", "--timeout", "4s")
    assert result_json(proc) == 7
    seen = node.wait_json(lambda o: o.get("event") == "request")
    assert seen["method"] == "add" and seen["args"] == [3, 4]
    assert seen["argSigs"] == ["int", "long"]                       # from our descriptor "IJ"
    props = seen["props"]
    assert (props["group"], props["tenant"], props["path"], props["version"]) == ("blue", "t1", "org.example.DemoService", "1.0.0")
    assert 0 < int(props["timeout"]) <= 4000


def test_dubbo_error_status(dubbo_provider):
    _, port = dubbo_provider()
    proc = meshd_call(f"dubbo://127.0.0.1:{port}", "org.example.DemoService", "fail", '"boom"', "--version", "1.0.0")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == "SERVER_ERROR: boom"


def test_dubbo_unknown_service(dubbo_provider):
    _, port = dubbo_provider()
    proc = meshd_call(f"dubbo://127.0.0.1:{port}", "org.example.Nope", "x", "--version", "1.0.0")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "SERVER_ERROR: not found service: org.example.Nope:1.0.0"


def test_dubbo_timeout(dubbo_provider):
    _, port = dubbo_provider()
    proc = meshd_call(f"dubbo://127.0.0.1:{port}", "org.example.DemoService", "sleep", 5000, "--version", "1.0.0",
                      "--timeout", "300ms")
    assert proc.returncode == 3 and proc.stderr.startswith("TIMEOUT: ")


def test_dubbo_py_provider(dubbo_py_provider):
    proc = meshd_call(f"dubbo://127.0.0.1:{dubbo_py_provider}", "org.example.DemoService", "sayHello", '"py"', 5,
                      "--version", "1.0.0")
    assert result_json(proc) == "hello py x5"
    proc = meshd_call(f"dubbo://127.0.0.1:{dubbo_py_provider}", "org.example.DemoService", "echo",
                      '["h\\u00e9", 1, {"k": null}]')
    assert result_json(proc) == ["h\u00e9", 1, {"k": None}]


def test_bolt_add(bolt_server):
    _, port = bolt_server()
    assert result_json(meshd_call(f"bolt://127.0.0.1:{port}", "com.example.Calc", "add", 1, 2)) == 3


@pytest.mark.parametrize("extra", [[], ["--no-method-header"], ["--bolt-version", "2"], ["--bolt-version", "2", "--crc"]])
def test_bolt_variants(bolt_server, extra):
    node, port = bolt_server("--verbose")
    proc = meshd_call(f"bolt://127.0.0.1:{port}", "com.example.Calc", "greet", '"\\u4e16\\u754c"', *extra)
    assert result_json(proc) == "hi \u4e16\u754c"
    seen = node.wait_json(lambda o: o.get("event") == "request")
    assert seen["service"] == "com.example.Calc:1.0" and seen["argSigs"] == ["java.lang.String"]


def test_bolt_headers_and_timeout_reach_the_server(bolt_server):
    node, port = bolt_server("--verbose")
    proc = meshd_call(f"bolt://127.0.0.1:{port}", "com.example.Calc", "echo", '{"a": [1, 2]}', "--attachment",
                      "rpc_trace_context.sofaTraceId=abc", "--timeout", "2500ms")
    assert result_json(proc) == {"a": [1, 2]}
    seen = node.wait_json(lambda o: o.get("event") == "request")
    assert seen["props"]["rpc_trace_context.sofaTraceId"] == "abc" and seen["props"]["service"] == "com.example.Calc:1.0"
    assert 0 < seen["timeout"] <= 2500


def test_bolt_unique_id(bolt_server):
    _, port = bolt_server("--version", "2.0", "--unique-id", "blue")
    ok = meshd_call(f"bolt://127.0.0.1:{port}", "com.example.Calc", "add", 2, 3, "--version", "2.0", "--group", "blue")
    assert result_json(ok) == 5
    missing = meshd_call(f"bolt://127.0.0.1:{port}", "com.example.Calc", "add", 2, 3, "--version", "2.0")
    assert missing.returncode == 1
    assert "not found service: com.example.Calc:2.0" in missing.stderr


def test_bolt_server_exception(bolt_server):
    _, port = bolt_server()
    proc = meshd_call(f"bolt://127.0.0.1:{port}", "com.example.Calc", "fail", '"boom"')
    assert proc.returncode == 1
    assert proc.stderr.strip() == "SERVER_EXCEPTION: com.alipay.remoting.rpc.exception.RpcServerException: Error: boom"


def test_bolt_unknown_service_and_timeout(bolt_server):
    _, port = bolt_server()
    proc = meshd_call(f"bolt://127.0.0.1:{port}", "com.example.Nope", "add", 1, 2)
    assert proc.returncode == 1 and "not found service: com.example.Nope:1.0" in proc.stderr
    proc = meshd_call(f"bolt://127.0.0.1:{port}", "com.example.Calc", "sleep", 5000, "--timeout", "300ms")
    assert proc.returncode == 3 and proc.stderr.startswith("TIMEOUT: ")
