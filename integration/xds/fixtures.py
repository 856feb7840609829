"""pytest fixtures for the xDS test control plane (import them into a plugin or a conftest).

Fixtures (all function-scoped; importing this module is cheap: grpc and the protos load inside them):

``xds_server``
    A started :class:`~integration.xds.threaded.AdsServerThread` on ``127.0.0.1:<free port>`` and on a
    unix socket (``xds_server.unix_uri``), with an empty snapshot, on its own loop thread. Stopped, its
    socket removed, at teardown.
``xds_backends``
    A factory ``xds_backends("a", "b") -> {name: NameBackend}``: real gRPC servers on loopback that answer
    :data:`integration.xds.echo.METHOD` with their name, on the server's loop; stopped at teardown.
``xds_client``
    A factory ``xds_client(kind, target, bootstrap=None) -> XdsClient`` for ``kind`` ``"grpcio"`` or
    ``"node"`` (grpc-js-xds), with a bootstrap pointing at ``xds_server`` by default; closed at teardown.
    ``"node"`` skips, naming what is missing, when node/npm or the npm packages are not installed (it
    installs the npm peers first when ``integration.peers.NPM_PACKAGES`` pins them).

Isolation: every test gets its own server (own port, own socket, own snapshot and log) and its own
backends and client processes.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest


@pytest.fixture
def xds_server() -> Iterator[Any]:
    from integration.xds.threaded import AdsServerThread
    sock_dir = Path(tempfile.mkdtemp(prefix="meshd-xds-"))  # short: AF_UNIX paths are limited to ~107 bytes
    server = AdsServerThread(unix_path=sock_dir / "ads.sock")
    try:
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture
def xds_backends(xds_server: Any) -> Iterator[Callable[..., dict[str, Any]]]:
    from integration.xds.echo import start_backends, stop_backends
    started: list[Any] = []

    def start(*names: str) -> dict[str, Any]:
        backends = start_backends(xds_server.loop, names)
        started.extend(backends.values())
        return backends

    try:
        yield start
    finally:
        stop_backends(xds_server.loop, started)


def _require_node() -> None:
    from integration import peers
    from integration.xds import clients
    reason = peers.missing_reason()
    if reason:
        pytest.skip(reason)
    if all(name in peers.NPM_PACKAGES for name in clients.NODE_PACKAGES):
        peers.install(pypi=False, log=lambda msg: print(msg, file=sys.stderr))
    reason = clients.missing_node_packages()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def xds_client(xds_server: Any) -> Iterator[Callable[..., Any]]:
    from integration.xds import clients, istio
    started: list[Any] = []

    def start(kind: str, target: str, bootstrap: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        bootstrap = bootstrap or istio.grpc_bootstrap(xds_server.address)
        if kind == "grpcio":
            client = clients.start_grpcio_client(target, bootstrap, **kwargs)
        elif kind == "node":
            _require_node()
            client = clients.start_node_client(target, bootstrap, **kwargs)
        else:
            raise ValueError(f"xds_client kind must be 'grpcio' or 'node', not {kind!r}")
        started.append(client)
        return client

    try:
        yield start
    finally:
        for client in started:
            client.close()
