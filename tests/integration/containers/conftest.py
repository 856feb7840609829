"""Fixtures of the container-infrastructure suite (the shared ones come from integration.pytest_plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def own_zookeeper(meshd_images):
    """A ZooKeeperContainer of this test alone: faults (pause, stop) must not hit the shared one."""
    from integration.containers import ZooKeeperContainer
    container = ZooKeeperContainer().start()
    try:
        yield container
    finally:
        container.stop()


@pytest.fixture
def run_pytest(tmp_path: Path):
    """Run a separate pytest session (a new process, with the meshd plugin) on one test file."""

    def run(source: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
        test_file = tmp_path / "test_inner.py"
        test_file.write_text(textwrap.dedent(source))
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", str(test_file)],
            cwd=tmp_path, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)

    return run
