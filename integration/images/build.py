"""Build what is missing of the test images, skipping every image whose content-hash tag exists.

Order and inputs (tags from :mod:`integration.images.recipes`)::

    base       debootstrap + docker import                  (local source only)
    zookeeper  zookeeper/Dockerfile on base                  (registry source: pulled, never built)
    meshd      meshd/Dockerfile on base or python:3.11-slim, context = wheels/ (dependencies + meshd's own)

Builds run with ``network_mode=host`` (``docker build --network host``): the engine has no bridge, and
apt inside the build reaches the same mirror as the host. The project's runtime dependencies and its
build backend are fetched on the host by its own pip into a wheelhouse (cached per requirement set),
so the image needs no package index. meshd itself goes in as a wheel built on the host, its hot path
compiled (setup.py) by the host's C compiler: the image needs none. One build at a time per cache folder
(a file lock), so parallel test sessions wait for each other instead of building twice.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from integration.docker_engine import file_lock
from integration.images.recipes import (
    IMAGE_LABEL, RECIPES, RecipeError, Tags, cache_dir, compute_tags, digest, iter_files, project_inputs,
    runtime_requirements, source_dir,
)

IMAGE_PYTHON = (3, 11)      # Debian bookworm's python3 and python:3.11-slim: the wheelhouse must match


@dataclass
class BuildReport:
    tags: Tags
    built: list[str] = field(default_factory=list)          # image names built (or pulled) by this call
    seconds: dict[str, float] = field(default_factory=dict)  # per image, wall time


def build(tags: Tags | None = None, *, client=None, log: Callable[[str], None] = print) -> BuildReport:
    """Make every image of ``tags`` exist locally; a second call with the same inputs does nothing."""
    import docker
    tags = tags or compute_tags()
    client = client or docker.from_env(timeout=600)
    work = cache_dir() / "images"
    work.mkdir(parents=True, exist_ok=True)
    report = BuildReport(tags)
    with file_lock(work / "build.lock"):
        for name, make in _steps(tags):
            tag = getattr(tags, name)
            if exists(client, tag):
                continue
            log(f"building {name} image {tag}")
            started = time.monotonic()
            make(client, tags, work, log)
            report.built.append(name)
            report.seconds[name] = time.monotonic() - started
            log(f"built {tag} in {report.seconds[name]:.0f}s")
    return report


def _steps(tags: Tags):
    if tags.source == "registry":
        return [("zookeeper", _pull_zookeeper), ("meshd", _build_meshd)]
    return [("base", _build_base), ("zookeeper", _build_zookeeper), ("meshd", _build_meshd)]


def exists(client, tag: str) -> bool:
    import docker
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def missing(tags: Tags, client) -> list[str]:
    names = ["zookeeper", "meshd"] if tags.source == "registry" else ["base", "zookeeper", "meshd"]
    return [name for name in names if not exists(client, getattr(tags, name))]


# ------------------------------------------------------------------------------------------- the steps
def _build_base(client, tags: Tags, work: Path, log) -> None:
    from integration.images.base import build_base
    build_base(client, tags.base, work / "base", log)


def _pull_zookeeper(client, tags: Tags, work: Path, log) -> None:
    repository, _, version = tags.zookeeper.rpartition(":")
    log(f"docker pull {tags.zookeeper}")
    client.images.pull(repository, tag=version)


def _build_zookeeper(client, tags: Tags, work: Path, log) -> None:
    context = work / "zookeeper-context"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(RECIPES / "zookeeper", context)
    docker_build(client, context, tags.zookeeper, {"BASE": tags.base}, work / "zookeeper.log", log)


def _build_meshd(client, tags: Tags, work: Path, log) -> None:
    project = source_dir()
    context = work / "meshd-context"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(RECIPES / "meshd", context)
    source = context / "src"
    for path in iter_files(project_inputs(project)):
        target = source / path.relative_to(project)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    wheels = wheelhouse(project, work, log)
    shutil.copytree(wheels, context / "wheels")
    log("pip wheel meshd (the compiled hot path)")
    _pip_wheel(["--no-deps", "--find-links", str(wheels), "--wheel-dir", str(context / "wheels"), str(source)],
               "build meshd's wheel")
    shutil.rmtree(source)
    docker_build(client, context, tags.meshd, {"BASE": tags.python_base}, work / "meshd.log", log)


def wheelhouse(project: Path, work: Path, log) -> Path:
    """Wheels of the runtime dependencies and the build backend, fetched by the host's pip, cached."""
    if sys.version_info[:2] != IMAGE_PYTHON:
        raise RecipeError(f"the meshd image runs Python {'.'.join(map(str, IMAGE_PYTHON))} but this is Python "
                          f"{sys.version_info.major}.{sys.version_info.minor}: run the build with a "
                          f"{'.'.join(map(str, IMAGE_PYTHON))} interpreter (the project venv)")
    build_requires = tomllib.loads((project / "pyproject.toml").read_text())["build-system"]["requires"]
    requirements = [*runtime_requirements(project), *build_requires, "wheel"]
    folder = work / f"wheels-{digest(*requirements)}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    log(f"pip wheel {' '.join(requirements)}")
    _pip_wheel(["--wheel-dir", str(folder), *requirements], "fetch the meshd image's wheels")
    (folder / ".complete").touch()
    return folder


def _pip_wheel(args: list[str], what: str) -> None:
    """``pip wheel --quiet <args>`` with the host's pip; a failure raises, quoting pip's last words."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RecipeError(f"pip could not {what}: {done.stderr.strip()[-800:]}")


def docker_build(client, context: Path, tag: str, buildargs: dict, log_path: Path, log) -> None:
    """``docker build --network host``; the full output goes to ``log_path``, errors quote its tail."""
    image_name = tag.rpartition(":")[0].rpartition("/")[2]
    lines: list[str] = []
    with open(log_path, "w") as out:
        stream = client.api.build(path=str(context), tag=tag, buildargs=buildargs, network_mode="host", rm=True,
                                  forcerm=True, pull=False, decode=True, labels={IMAGE_LABEL: image_name})
        for event in stream:
            text = event.get("stream") or event.get("status") or ""
            if "error" in event:
                out.write(event["error"] + "\n")
                raise RecipeError(f"building {tag} failed: {event['error'].strip()}\n  "
                                  + "\n  ".join(lines[-15:]) + f"\n(full log: {log_path})")
            out.write(text)
            lines += [line for line in text.splitlines() if line.strip()]
            if text.startswith("Step "):
                step = text.strip()
                log("  " + (step if len(step) <= 100 else step[:97] + "..."))
    if not exists(client, tag):
        raise RecipeError(f"building {tag} finished without producing the tag (log: {log_path})")


def prune(tags: Tags, client, log: Callable[[str], None] = print,
          kinds: tuple[str, ...] = ("base", "zookeeper", "meshd")) -> list[str]:
    """Remove our images (of these ``kinds``) whose tags are all outdated; returns the removed tags.

    An image that a container still uses is kept (and named in the log). Not run automatically: on a
    shared engine another test session may still be about to use an older meshd tag.
    """
    import docker
    current = {tags.base, tags.zookeeper, tags.meshd}
    removed = []
    for kind in kinds:
        for image in client.images.list(filters={"label": f"{IMAGE_LABEL}={kind}"}):
            stale = [t for t in image.tags if t not in current]
            if not stale or len(stale) != len(image.tags):
                continue
            try:
                for tag in stale:
                    client.images.remove(tag)
                    removed.append(tag)
            except docker.errors.APIError as exc:
                log(f"kept {', '.join(stale)}: {exc.explanation}")
    return removed
