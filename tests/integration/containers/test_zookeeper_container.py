"""ZooKeeperContainer: a free loopback port, host networking, ruok/imok, kazoo round trips, chroots."""

from __future__ import annotations

import socket

from kazoo.client import KazooClient

from integration.containers import LABEL, LABEL_OWNER, LABEL_SESSION, SESSION_ID, owner_label
from integration.pytest_plugin import fresh_chroot


def test_listens_on_a_free_loopback_port_with_host_networking(zookeeper):
    assert zookeeper.address == f"127.0.0.1:{zookeeper.port}"
    attrs = zookeeper.get_wrapped_container().attrs
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert f"clientPort={zookeeper.port}" in zookeeper.zoo_cfg()
    assert zookeeper.four_letter_word("ruok") == "imok"
    assert "Zookeeper version: 3.8" in zookeeper.four_letter_word("srvr")


def test_answers_kazoo_under_a_chroot(zookeeper, zk_chroot):
    client = KazooClient(hosts=zookeeper.connection_string(zk_chroot))
    client.start(timeout=15)
    try:
        client.create("/providers/a", b"payload", makepath=True)
        assert client.get("/providers/a")[0] == b"payload"
    finally:
        client.stop()
        client.close()
    root = zookeeper.kazoo_client()
    try:
        assert root.get(f"{zk_chroot}/providers/a")[0] == b"payload"
    finally:
        root.stop()
        root.close()


def test_zk_client_fixture_starts_in_an_empty_chroot(zk_client, zk_chroot):
    assert zk_client.chroot == zk_chroot
    assert zk_client.get_children("/") == []


def test_fresh_chroot_is_deleted_with_its_contents(zookeeper):
    with fresh_chroot(zookeeper, "test with spaces/and slashes") as path:
        assert path.startswith("/meshd-it/test_with_spaces_and_slashes-")
        client = zookeeper.kazoo_client(path)
        client.create("/deep/node", b"x", makepath=True)
        client.stop()
        client.close()
    root = zookeeper.kazoo_client()
    try:
        assert root.exists(path) is None
    finally:
        root.stop()
        root.close()


def test_connection_string_rejects_a_relative_chroot(zookeeper):
    import pytest
    assert zookeeper.connection_string("/a/b/") == f"{zookeeper.address}/a/b"
    with pytest.raises(ValueError, match="chroot must start with '/'"):
        zookeeper.connection_string("a")


def test_container_is_labelled_for_cleanup(zookeeper):
    labels = zookeeper.get_wrapped_container().labels
    assert labels[LABEL] == "true"
    assert labels[LABEL_SESSION] == SESSION_ID
    assert labels[LABEL_OWNER] == owner_label()


def test_binds_loopback_only(zookeeper):
    # host networking + clientPortAddress: nothing answers on another local address of the host
    other = socket.gethostbyname(socket.gethostname())
    if other.startswith("127."):
        other = "127.0.0.2"          # still loopback, but not the address ZooKeeper bound
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((other, zookeeper.port)) != 0
