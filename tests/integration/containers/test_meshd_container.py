"""MeshdContainer and the meshd image: the CLI in the image, config written in, readiness on the admin API."""

from __future__ import annotations

import pytest

import meshd as meshd_package
from integration.containers import (
    LABEL_SESSION, SESSION_ID, ContainerNotReady, MeshdContainer, NacosContainer, assign_ports,
    load_config, run_meshd,
)

MINIMAL = {"listeners": [], "clusters": []}


def test_image_runs_meshd_version_on_the_compiled_hot_path(meshd_images):
    result = run_meshd(["version"])
    assert result == type(result)(0, f"meshd {meshd_package.__version__} (hot path: compiled)\n")


def test_image_validates_configs_with_the_project_schema(meshd_images):
    good = run_meshd(["validate", "-c", "/etc/meshd/meshd.yaml"],
                     {"admin": {"address": "127.0.0.1:15999"}, "listeners": [], "clusters": []})
    assert good.exit_code == 0 and "meshd.yaml: ok" in good.output
    bad = run_meshd(["validate", "-c", "/etc/meshd/meshd.yaml"], {"admin": {"address": "127.0.0.1:99999"}})
    assert bad.exit_code == 1
    assert "admin.address: '127.0.0.1:99999' is not a valid port" in bad.output


def test_meshd_starts_on_a_free_admin_port_and_is_ready(meshd):
    container = meshd(MINIMAL)
    host, port = container.admin_address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) not in (0, 15000)
    assert container.admin_get("/healthz").status == 200
    assert container.admin_get("/ready").json() == {"ready": True}
    dumped = container.admin_get("/config_dump").json()
    assert dumped["admin"]["address"] == container.admin_address


def test_listener_ports_are_chosen_and_reported(meshd):
    config = """
    listeners:
      - {name: tcp-in, address: "127.0.0.1:0", protocol: tcp, cluster: backend}
    clusters:
      - name: backend
        endpoints: [{address: "127.0.0.1:9"}]
    """
    container = meshd(config)
    address = container.listener_address("tcp-in")
    assert address.startswith("127.0.0.1:") and container.listener_port("tcp-in") > 0
    listed = container.admin_get("/listeners").json()["listeners"]
    assert [x["address"] for x in listed if x["name"] == "tcp-in"] == [address]
    with pytest.raises(KeyError, match="no listener named 'nope'"):
        container.listener_address("nope")


def test_a_meshd_that_exits_raises_with_its_logs(docker_engine, meshd_images):
    ours = {"label": f"{LABEL_SESSION}={SESSION_ID}"}
    before = {c.id for c in docker_engine.containers.list(all=True, filters=ours)}
    container = MeshdContainer({"admin": {"address": "127.0.0.1:99999"}})
    with pytest.raises(ContainerNotReady) as caught:
        container.start()
    message = str(caught.value)
    assert "exited before it was ready" in message and "(exit code 1)" in message
    assert "admin.address: '127.0.0.1:99999' is not a valid port" in message
    assert {c.id for c in docker_engine.containers.list(all=True, filters=ours)} == before   # removed


def test_config_forms_and_port_assignment():
    picked = iter(range(40001, 40010))
    config = assign_ports(load_config('{"listeners": [{"name": "a", "address": "127.0.0.1:0"},'
                                      ' {"name": "b", "address": "127.0.0.1:20880"}],'
                                      ' "registry_api": {"sofa": {"address": "127.0.0.1:0"}}}'),
                          pick=lambda: next(picked))
    assert config["admin"]["address"] == "127.0.0.1:40001"
    assert [x["address"] for x in config["listeners"]] == ["127.0.0.1:40002", "127.0.0.1:20880"]
    assert config["registry_api"]["sofa"]["address"] == "127.0.0.1:40003"
    original = {"admin": {"address": "127.0.0.1:15001"}}
    assert assign_ports(load_config(original), pick=lambda: 1) == original
    assert load_config(original) is not original
    assert load_config(None) == MINIMAL
    with pytest.raises(TypeError, match="meshd config must be a mapping"):
        load_config("- just\n- a list\n")


def test_nacos_container_runs_the_official_image_standalone_on_loopback():
    container = NacosContainer(port=18848)
    assert container.image == "nacos/nacos-server:v2.4.3" and container.server_addr == "127.0.0.1:18848"
    env = container.env
    assert (env["MODE"], env["NACOS_APPLICATION_PORT"]) == ("standalone", "18848")
    assert container._kwargs["network"] == "host"


def test_the_official_nacos_serves_meshd_and_a_client(nacos, tmp_path):
    """Only where an image registry is reachable (the ``nacos`` fixture skips otherwise): meshd's source
    against the real server, a provider registered by the official client."""
    import asyncio

    from discovery.model import ClusterModel
    from discovery.nacos import NacosSource
    from v2.nacos import ClientConfigBuilder, NacosNamingService, RegisterInstanceParam

    async def scenario():
        config = ClientConfigBuilder().server_address(nacos.server_addr).cache_dir(str(tmp_path / "c")) \
            .log_dir(str(tmp_path / "l")).build()
        naming = await NacosNamingService.create_naming_service(config)
        model = ClusterModel()
        source = NacosSource("nacos", nacos.server_addr, services=["orders"], naming="plain",
                             snapshot_path=str(tmp_path / "s.json"), cache_dir=str(tmp_path / "m"))
        await source.start(model)
        try:
            await naming.register_instance(RegisterInstanceParam(service_name="orders", ip="127.0.0.1", port=7001))
            for _ in range(200):
                if model.cluster("orders") and model.cluster("orders").endpoints:
                    break
                await asyncio.sleep(0.05)
            assert "127.0.0.1:7001" in model.cluster("orders").endpoints
        finally:
            await source.stop()
            await naming.shutdown()
    asyncio.run(scenario())
