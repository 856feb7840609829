"""Fixtures for tests against a real ZooKeeper (Debian 3.8, see integration/zookeeper.py).

- ``zk_server``: one server for the whole session (skips, naming the missing package, when it cannot run);
- ``zk_chroot``: a fresh chroot per test (created before, deleted after), so tests never see each other;
- ``zk``: a kazoo client inside that chroot, playing "the other applications" that write provider nodes;
- ``private_zk``: a server of the test's own, for tests that stop, restart or partition it.
"""

import pytest
from kazoo.client import KazooClient

from integration.zookeeper import ZooKeeperServer, fresh_chroot


def _skip_if_unavailable() -> None:
    reason = ZooKeeperServer.available()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def zk_server():
    _skip_if_unavailable()
    server = ZooKeeperServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def zk_chroot(zk_server, request):
    with fresh_chroot(zk_server, request.node.name) as chroot:
        yield chroot


@pytest.fixture
def zk(zk_server, zk_chroot):
    client = KazooClient(zk_server.hosts(zk_chroot), timeout=10)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def private_zk():
    """A server of this test's own; ticks of 500 ms allow sessions as short as 1 s."""
    _skip_if_unavailable()
    server = ZooKeeperServer(tick_time_ms=500)
    server.start()
    yield server
    server.close()
