"""The engine bootstrap: what it reports when an engine answers, and what it names when none does."""

from __future__ import annotations

import pytest

from integration import docker_engine as engine


def test_probe_reports_the_running_engine(docker_engine):
    status = engine.probe()
    assert status.available
    info = docker_engine.info()
    assert info["ServerVersion"] in status.detail and info["Driver"] in status.detail


def test_ensure_with_a_running_engine_starts_nothing(docker_engine, tmp_path):
    status = engine.ensure(install=False, log_dir=tmp_path)
    assert status.available
    assert list(tmp_path.iterdir()) == []          # no lock taken, no dockerd log written


def test_unreachable_docker_host_is_named_and_never_replaced(monkeypatch, tmp_path):
    socket_path = tmp_path / "nothing.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    status = engine.probe()
    assert not status.available
    assert status.detail == f"no Docker daemon listens on unix://{socket_path}"
    with pytest.raises(engine.EngineUnavailable, match="not starting a local dockerd instead"):
        engine.ensure(install=False, log_dir=tmp_path)


def test_storage_driver_can_be_forced(monkeypatch):
    monkeypatch.setenv("MESHD_DOCKER_STORAGE_DRIVER", "vfs")
    assert engine.storage_drivers() == ["vfs"]
    monkeypatch.delenv("MESHD_DOCKER_STORAGE_DRIVER")
    assert engine.storage_drivers()[0] == "overlay2" and engine.storage_drivers()[-1] == "vfs"


def test_fixtures_skip_naming_the_missing_engine(run_pytest, tmp_path):
    result = run_pytest("""
        def test_needs_zookeeper(zookeeper):
            raise AssertionError("must not run without an engine")

        def test_needs_meshd(meshd):
            raise AssertionError("must not run without an engine")

        def test_plain():
            assert 1 + 1 == 2
    """, env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 2 skipped" in result.stdout
    assert f"Docker engine not available: DOCKER_HOST=unix://{tmp_path}/no-engine.sock" in result.stdout
