"""Fixtures for tests against real third-party Dubbo / Bolt peers (installed by ``integration.peers``).

- ``peers_dir``: installs the npm peers once per session (a no-op when the cache is current) and returns the
  cache folder; skips, naming the missing program, when node or npm is not installed.
- ``bolt_server(*args)`` / ``dubbo_provider(*args)``: start the helper scripts on a free loopback port;
  return ``(NodeProcess, port)``; stopped after the test.
- ``node_script(name, *args)``: run a helper script to completion and return its JSON lines.
- ``dubbo_py_provider``: the PyPI ``dubbo-py`` provider in its own virtualenv, on a free port.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from integration import peers
from integration.ports import free_port


@pytest.fixture(scope="session")
def peers_dir() -> Path:
    reason = peers.missing_reason()
    if reason:
        pytest.skip(reason)
    return peers.install(pypi=False, log=lambda msg: print(msg, file=sys.stderr))


def _server_fixture(script: str, peers_dir: Path) -> Iterator[Callable[..., tuple[peers.NodeProcess, int]]]:
    started: list[peers.NodeProcess] = []

    def start(*args: Any) -> tuple[peers.NodeProcess, int]:
        node, port = peers.start_server(script, "--port", 0, *args)
        started.append(node)
        return node, port

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def bolt_server(peers_dir: Path) -> Iterator[Callable[..., tuple[peers.NodeProcess, int]]]:
    yield from _server_fixture("bolt_server", peers_dir)


@pytest.fixture
def dubbo_provider(peers_dir: Path) -> Iterator[Callable[..., tuple[peers.NodeProcess, int]]]:
    yield from _server_fixture("dubbo_provider", peers_dir)


@pytest.fixture
def node_script(peers_dir: Path) -> Callable[..., list[dict[str, Any]]]:
    def run(name: str, *args: Any, timeout: float = 60, input: bytes | None = None) -> list[dict[str, Any]]:
        proc = peers.run_node(name, *args, timeout=timeout, input=input)
        lines = peers.json_lines(proc.stdout)
        if proc.returncode != 0:
            raise AssertionError(f"{name} exited {proc.returncode}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
        return lines
    return run


DUBBO_PY_PROVIDER = textwrap.dedent("""
    import sys, time
    from dubbo.server import DubboService
    port = int(sys.argv[1])
    svc = DubboService(port, "py-provider", dubbo_version="2.0.2")
    svc.add_method("org.example.DemoService", "sayHello", lambda name, n: "hello %s x%d" % (name, n))
    svc.add_method("org.example.DemoService", "echo", lambda x: x)
    svc.start()
    print("listening", flush=True)
    while True:
        time.sleep(3600)
""")


@pytest.fixture
def dubbo_py_provider(peers_dir: Path) -> Iterator[int]:
    """A dubbo-py (PyPI) Dubbo2 provider; it binds every interface, tests reach it on 127.0.0.1."""
    peers.install(npm=False, log=lambda msg: print(msg, file=sys.stderr))
    port = free_port()
    proc = subprocess.Popen([str(peers.dubbo_py_python()), "-c", DUBBO_PY_PROVIDER, str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"dubbo-py provider exited: {proc.stderr.read()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise TimeoutError("dubbo-py provider did not listen within 30 s")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
