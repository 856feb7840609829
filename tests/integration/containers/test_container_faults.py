"""Faults on real containers: pause freezes without closing, stop/start keeps data, sessions expire."""

from __future__ import annotations

import threading

import pytest
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

from integration import faults

MINIMAL = {"listeners": [], "clusters": []}


def watch_states(client):
    seen = []
    client.add_listener(seen.append)
    return seen


def test_pause_freezes_the_server_and_unpause_resumes_the_same_session(own_zookeeper):
    client = own_zookeeper.kazoo_client(timeout=20.0)     # session outlives the pause
    try:
        client.create("/eph", b"mine", ephemeral=True)
        session = client.client_id[0]
        with faults.paused(own_zookeeper):
            assert own_zookeeper.four_letter_word("ruok", timeout=1.0) == ""   # connects, never answers
            pending = client.get_async("/eph")
            with pytest.raises(KazooTimeoutError):
                pending.get(timeout=1.0)                   # queued, not failed: the server is frozen
        assert pending.get(timeout=15)[0] == b"mine"       # answered once thawed
        assert client.client_id[0] == session
        assert own_zookeeper.four_letter_word("ruok") == "imok"
    finally:
        client.stop()
        client.close()


def test_stop_refuses_connections_and_start_keeps_the_data(own_zookeeper):
    client = own_zookeeper.kazoo_client()
    client.create("/kept", b"persistent")
    client.stop()
    client.close()

    faults.stop(own_zookeeper)
    assert own_zookeeper.status_now() == "exited"
    assert own_zookeeper.four_letter_word("ruok") == ""     # connection refused

    faults.start(own_zookeeper)
    client = own_zookeeper.kazoo_client()
    try:
        assert client.get("/kept")[0] == b"persistent"
    finally:
        client.stop()
        client.close()


def test_expire_session_drops_ephemerals_and_the_client_reconnects(zookeeper, zk_chroot):
    client = zookeeper.kazoo_client(zk_chroot)
    observer = zookeeper.kazoo_client(zk_chroot)
    try:
        client.create("/eph", b"x", ephemeral=True)
        old = client.client_id[0]
        states = watch_states(client)
        gone = threading.Event()
        observer.DataWatch("/eph", lambda data, stat: gone.set() if stat is None else None)

        expired = faults.expire_session(client, zookeeper)

        assert expired == old
        assert KazooState.LOST in states and states[-1] == KazooState.CONNECTED
        assert client.client_id[0] != old
        assert gone.wait(10)
        assert observer.exists("/eph") is None
    finally:
        for c in (client, observer):
            c.stop()
            c.close()


def test_expire_session_needs_a_connected_client(zookeeper):
    from kazoo.client import KazooClient
    with pytest.raises(faults.FaultError, match="not connected"):
        faults.expire_session(KazooClient(hosts=zookeeper.address), zookeeper)


def test_restart_meshd_waits_until_it_is_ready_again(meshd):
    container = meshd(MINIMAL)
    before = container.get_wrapped_container().attrs["State"]["StartedAt"]
    faults.restart_meshd(container)
    container.get_wrapped_container().reload()
    assert container.get_wrapped_container().attrs["State"]["StartedAt"] != before
    assert container.admin_get("/ready").status == 200


def test_paused_meshd_does_not_answer_until_unpaused(meshd):
    container = meshd(MINIMAL)
    faults.pause(container)
    try:
        with pytest.raises(OSError):                       # urllib's timeout is an OSError
            container.admin_get("/healthz", timeout=1.0)
    finally:
        faults.unpause(container)
    assert container.admin_get("/healthz").status == 200


def test_killed_meshd_is_reported_with_its_exit(meshd):
    container = meshd(MINIMAL)
    faults.kill(container)
    assert container.status_now() == "exited" and container.exit_code() == 137
