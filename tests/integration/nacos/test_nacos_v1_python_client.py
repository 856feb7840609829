"""The test Nacos server against nacos-sdk-python 2.0.x (the v1 HTTP ``nacos`` module), in its own virtualenv.

The virtualenv (``.cache/peers/nacos-v1``) is created and filled the first time (see
``integration.nacos.v1_peer``); the client runs as ``integration/peers/nacos_v1_client.py``.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from integration.nacos import v1_peer


@pytest.fixture(scope="session")
def v1_python() -> str:
    return str(v1_peer.ensure(log=lambda msg: None))


@pytest.fixture
def v1_client(v1_python, nacos_server, tmp_path) -> Iterator[v1_peer.V1Client]:
    (tmp_path / "v1").mkdir()
    client = v1_peer.V1Client(nacos_server.server_addr, str(tmp_path / "v1"))
    yield client
    client.close()


def _until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def test_v1_client_registers_beats_and_sees_others_by_polling(nacos_server, v1_client):
    """POST /instance with beats (PUT /instance/beat); /instance/list polling turns another application's
    register and deregister into ADDED / DELETED events (this client has no UDP receiver)."""
    assert v1_client.do("register", service="inv", ip="127.0.0.1", port=7701, weight=2.0,
                        metadata={"lang": "py"}, heartbeat=1) is True
    inst = nacos_server.instances()["public/DEFAULT_GROUP@@inv"][0]
    assert (inst["weight"], inst["metadata"], inst["owner"]) == (2.0, {"lang": "py"}, "beat")
    _until(lambda: nacos_server.requests("PUT /nacos/v1/ns/instance/beat"), 5, "a heartbeat")

    listed = v1_client.do("list", service="inv")
    assert listed["name"] == "DEFAULT_GROUP@@inv" and listed["hosts"][0]["instanceId"] == \
        "127.0.0.1#7701#DEFAULT#DEFAULT_GROUP@@inv"
    v1_client.do("subscribe", service="inv")
    _until(lambda: len(nacos_server.requests("GET /nacos/v1/ns/instance/list")) >= 2, 5, "the first poll")
    nacos_server.register("inv", "127.0.0.1", 7702)
    added = v1_client.wait("instance", lambda o: o["change"] == "ADDED" and o["instance"]["port"] == 7702, 5)
    assert added["instance"]["serviceName"] == "DEFAULT_GROUP@@inv"
    nacos_server.deregister("inv", "127.0.0.1", 7702)
    v1_client.wait("instance", lambda o: o["change"] == "DELETED" and o["instance"]["port"] == 7702, 5)
    assert v1_client.do("deregister", service="inv", ip="127.0.0.1", port=7701) is True
    assert nacos_server.hosts("inv") == []


def test_v1_client_config_and_long_polling(nacos_server, v1_client):
    """GET of a missing config is None (HTTP 404); publish/read; a watcher gets another application's change."""
    assert v1_client.do("getConfig", dataId="cache.ini", group="G") is None
    assert v1_client.do("publish", dataId="cache.ini", group="G", content="ttl=5") is True
    assert v1_client.do("getConfig", dataId="cache.ini", group="G") == "ttl=5"
    v1_client.do("listen", dataId="cache.ini", group="G")
    _until(lambda: "public/G/cache.ini" in nacos_server.listeners(), 10, "the long poll")
    nacos_server.publish_config("cache.ini", "G", "ttl=9")
    assert v1_client.wait("config", lambda o: o["content"] == "ttl=9", 10)["dataId"] == "cache.ini"
    assert v1_client.do("remove", dataId="cache.ini", group="G") is True
    assert nacos_server.configs() == {}


def test_v1_ephemeral_instance_without_beats_expires(nacos_server, v1_client):
    """An ephemeral instance whose client never beats turns unhealthy after the heartbeat timeout and is
    deleted after the ip-delete timeout (here 1 s / 2 s through the preserved metadata keys)."""
    v1_client.do("register", service="lazy", ip="127.0.0.1", port=7801,
                 metadata={"preserved.heart.beat.timeout": "1000", "preserved.ip.delete.timeout": "2000"})
    assert nacos_server.instances()["public/DEFAULT_GROUP@@lazy"][0]["healthy"] is True
    _until(lambda: not nacos_server.instances()["public/DEFAULT_GROUP@@lazy"][0]["healthy"], 5, "unhealthy")
    _until(lambda: nacos_server.hosts("lazy") == [], 5, "deletion")
