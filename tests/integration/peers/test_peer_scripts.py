"""The peer installer and helper scripts other suites rely on: idempotent install, load runner, env options,
deadlines, byte tap."""

from __future__ import annotations

import socket

import pytest

from integration import peers

pytestmark = pytest.mark.peers


def test_install_is_idempotent_and_does_not_reinstall(peers_dir, monkeypatch):
    assert peers.installed() and peers.peers_dir() == peers_dir
    calls = []
    monkeypatch.setattr(peers, "_install_npm", lambda root, log: calls.append(root))
    assert peers.install(pypi=False) == peers_dir
    assert calls == []                                    # the stamp matched: nothing was run
    assert peers.available() and peers.missing_reason() is None
    assert peers.node_env()["NODE_PATH"] == str(peers_dir / "node_modules")


def test_peers_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MESHD_PEERS_DIR", str(tmp_path))
    assert peers.peers_dir() == tmp_path.resolve() and not peers.installed()


def test_missing_programs_are_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert peers.missing_reason() == "node and npm not installed (Debian packages nodejs/npm)"
    monkeypatch.setattr(peers, "installed", lambda: False)
    with pytest.raises(RuntimeError, match="node and npm not installed"):
        peers.install(pypi=False)


def test_bolt_client_load_runner_spreads_calls(bolt_server, node_script):
    node, port = bolt_server("--server-id", "s1")
    lines = node_script("bolt_client", "--address", f"127.0.0.1:{port}", "--method", "whoami", "--args", "[]",
                        "--count", 20, "--concurrency", 5, "--connections", 3)
    results = [o for o in lines if o["event"] == "result"]
    summary = lines[-1]
    assert summary == {"event": "summary", "count": 20, "ok": 20, "errors": 0, "elapsed_ms": summary["elapsed_ms"]}
    assert sorted(r["i"] for r in results) == list(range(20))
    assert {r["conn"] for r in results} == {0, 1, 2} and {r["value"] for r in results} == {"s1"}


def test_dubbo_consumer_load_runner_and_env_options(dubbo_provider, node_script, monkeypatch):
    _, port = dubbo_provider()
    monkeypatch.setenv("MESHD_PEER_ADDRESS", f"127.0.0.1:{port}")
    monkeypatch.setenv("MESHD_PEER_COUNT", "12")
    lines = node_script("dubbo_consumer", "--concurrency", 4, "--connections", 2, "--method", "add",
                        "--args", "[20,22]", "--types", "int,int")
    results = [o for o in lines if o["event"] == "result"]
    assert len(results) == 12 and all(r["ok"] and r["value"] == 42 for r in results)
    assert {r["conn"] for r in results} == {0, 1}


def test_failed_calls_are_reported_per_call(bolt_server, node_script):
    _, port = bolt_server()
    lines = node_script("bolt_client", "--address", f"127.0.0.1:{port}", "--method", "sleep", "--args", "[2000]",
                        "--types", "int", "--timeout", 200, "--count", 2, "--concurrency", 2)
    results = [o for o in lines if o["event"] == "result"]
    assert [r["ok"] for r in results] == [False, False]
    assert all(r["error"]["name"] == "RpcResponseTimeoutError" and r["error"]["resultCode"] == "03" for r in results)
    assert lines[-1]["errors"] == 2


def test_deadline_ends_a_stuck_client(peers_dir):
    with socket.socket() as silent:                     # listens (the kernel accepts), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        proc = peers.run_node("dubbo_consumer", "--address", f"127.0.0.1:{port}", "--timeout", 30000,
                              "--deadline-ms", 1000, timeout=30)
    assert proc.returncode == 3
    assert peers.json_lines(proc.stdout)[-1]["error"]["name"] == "DeadlineExceeded"


def test_byte_tap_records_both_directions(dubbo_provider, node_script, tmp_path):
    _, port = dubbo_provider()
    tap = peers.ByteTap(port)
    try:
        tap_port = tap.start()
        node_script("dubbo_consumer", "--address", f"127.0.0.1:{tap_port}")
    finally:
        tap.stop()
    assert tap.stream("C>S").startswith(b"\xda\xbb\xc2") and tap.stream("S>C").startswith(b"\xda\xbb\x02")
    tap.write_log(tmp_path / "x.tap")
    assert peers.read_tap_log(tmp_path / "x.tap") == tap.records
