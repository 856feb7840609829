"""Cleanup without Ryuk: a failed test leaves no container, a killed run's containers are reaped."""

from __future__ import annotations

import json
import subprocess
import sys

import docker
import pytest

from integration.containers import LABEL_SESSION, reap_leftovers


def assert_gone(client, container_id):
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container_id)


def test_containers_of_a_failing_test_are_removed(docker_engine, meshd_images, run_pytest, tmp_path):
    record = tmp_path / "started.json"
    result = run_pytest(f"""
        import json

        def test_fails_after_starting_containers(zookeeper, meshd, zk_chroot):
            m = meshd({{"listeners": [], "clusters": []}})
            ids = [zookeeper.get_wrapped_container().id, m.get_wrapped_container().id]
            session = m.get_wrapped_container().labels["{LABEL_SESSION}"]
            open({str(record)!r}, "w").write(json.dumps({{"ids": ids, "session": session}}))
            assert m.admin_get("/ready").status == 418, "deliberate failure"
    """)
    assert result.returncode == 1 and "1 failed" in result.stdout, result.stdout + result.stderr
    assert "deliberate failure" in result.stdout
    assert "logs of <MeshdContainer" in result.stdout          # the failed test's meshd logs are reported
    started = json.loads(record.read_text())
    for container_id in started["ids"]:
        assert_gone(docker_engine, container_id)
    assert docker_engine.containers.list(all=True, filters={"label": f"{LABEL_SESSION}={started['session']}"}) == []


def test_leftovers_of_a_killed_run_are_reaped(docker_engine, meshd_images):
    script = (
        "import os, sys\n"
        "from integration.containers import LoopbackContainer\n"
        f"c = LoopbackContainer({meshd_images.meshd!r}, entrypoint=['sleep'], command=['300']).start()\n"
        "print(c.get_wrapped_container().id, flush=True)\n"
        "os._exit(0)   # no teardown, no atexit: as if the test run was killed\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    orphan = done.stdout.split()[-1]
    assert docker_engine.containers.get(orphan).status == "running"

    removed = reap_leftovers(docker_engine)

    assert orphan in removed
    assert_gone(docker_engine, orphan)


def test_reaping_spares_containers_of_live_processes(zookeeper, docker_engine):
    reap_leftovers(docker_engine)
    assert docker_engine.containers.get(zookeeper.get_wrapped_container().id).status == "running"
