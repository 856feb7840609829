"""The suite's own promises: the README shows the example CI runs, a copy of it gets every fixture from the
plugin alone, and without a Docker engine every test skips naming the engine (no engine needed here).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
EXAMPLE = HERE / "test_example_user_suite.py"


def run_pytest(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
                          cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


def test_the_readme_guide_shows_the_example_that_ci_runs():
    readme = (REPO / "README.md").read_text()
    guide = readme[readme.index("## Testing your service against meshd"):]
    block = re.search(r"```python\n(.*?)```", guide, re.S)
    assert block, "no python example in the README section 'Testing your service against meshd'"
    assert block.group(1) == EXAMPLE.read_text(), "README example and tests/e2e/containers/test_example_user_suite.py differ"


def test_the_example_copied_into_another_project_gets_every_fixture_from_the_plugin(tmp_path):
    copy = tmp_path / "test_my_services.py"
    shutil.copy(EXAMPLE, copy)
    # --setup-plan resolves every fixture of every test without running them: an unknown fixture fails it
    done = run_pytest(["--setup-plan", copy.name], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "fixture 'zk_chroot' not found" not in done.stdout
    for fixture in ("docker_engine", "meshd_images", "zookeeper", "zk_chroot", "zk_client", "meshd", "sidecar"):
        assert re.search(rf"SETUP\s+[SF] {fixture}\b", done.stdout), \
            f"{fixture} not planned:\n{done.stdout[-3000:]}"


def test_without_a_docker_engine_every_test_skips_naming_the_engine(tmp_path):
    nowhere = f"unix://{tmp_path}/no-docker.sock"
    done = run_pytest([str(HERE), f"--ignore={Path(__file__).resolve()}"], cwd=REPO, env={"DOCKER_HOST": nowhere})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    skipped = re.search(r"(\d+) skipped", done.stdout)
    assert skipped and int(skipped.group(1)) >= 9 and not re.search(r" (passed|failed|errors?)\b", done.stdout), \
        done.stdout[-3000:]
    reasons = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert reasons and all("Docker engine not available" in line and nowhere in line for line in reasons), reasons
