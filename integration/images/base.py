"""The Debian base image: ``debootstrap --variant=minbase`` from the host's apt mirror, then ``docker import``.

No registry is reachable, so nothing can be ``FROM debian``: the root file system is made here from the
same Debian mirror the host's apt uses (so it works wherever apt works), finished by
``base/finish-rootfs.sh`` (sources.list, no service starts, small apt layers) and imported as an image.
Needs root (debootstrap creates device nodes and chowns files) and the ``debootstrap`` package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator

from integration.images.recipes import IMAGE_LABEL, RECIPES, RecipeError, base_recipe, debian_sources, host_apt_sources

CHUNK = 1 << 20
IMAGE_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
    f"LABEL {IMAGE_LABEL}=base",
]


def build_base(client, tag: str, work: Path, log: Callable[[str], None]) -> None:
    """Make ``tag`` from a fresh debootstrap tree under ``work`` (removed afterwards)."""
    recipe = base_recipe()
    mirrors = debian_sources(recipe["suite"], host_apt_sources())
    _check_tools()
    rootfs = work / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    try:
        log(f"debootstrap --variant={recipe['variant']} {recipe['suite']} {rootfs} {mirrors[0].uri}")
        _run(["debootstrap", f"--variant={recipe['variant']}", recipe["suite"], str(rootfs), mirrors[0].uri],
             work / "debootstrap.log", rootfs / "debootstrap" / "debootstrap.log")
        _run([str(RECIPES / "base" / "finish-rootfs.sh"), str(rootfs)], work / "finish-rootfs.log",
             env={**os.environ, "APT_SOURCES": "\n".join(m.line() for m in mirrors)})
        log(f"docker import {tag}")
        import_rootfs(client, rootfs, tag)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise RecipeError("building the Debian base image needs root (debootstrap); run `make images` as root "
                          "or use MESHD_IMAGE_SOURCE=registry on a machine that can pull images")
    if not shutil.which("debootstrap"):
        raise RecipeError("debootstrap is not installed (Debian package debootstrap; `make system-deps`)")


def _run(cmd: list[str], log_path: Path, detail_log: Path | None = None, env: dict | None = None) -> None:
    with open(log_path, "wb") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        tail_from = detail_log if detail_log and detail_log.exists() else log_path
        tail = tail_from.read_text(errors="replace").strip().splitlines()[-15:]
        raise RecipeError(f"`{' '.join(cmd)}` failed with status {done.returncode}:\n  " + "\n  ".join(tail))


def import_rootfs(client, rootfs: Path, tag: str) -> None:
    """Stream ``tar -C rootfs .`` into ``POST /images/create?fromSrc=-`` (what ``docker import -`` does)."""
    repository, _, version = tag.rpartition(":")
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", "-", "."],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        client.api.import_image(src=_chunks(tar), repository=repository, tag=version,
                                changes=IMAGE_CHANGES, stream_src=True)
    finally:
        tar.stdout.close()
        stderr = tar.stderr.read().decode(errors="replace")
        if tar.wait() != 0:
            raise RecipeError(f"tar of {rootfs} failed: {stderr.strip()[-500:]}")
    client.images.get(tag)       # raises ImageNotFound if the import did not produce the tag


def _chunks(proc: subprocess.Popen) -> Iterator[bytes]:
    while chunk := proc.stdout.read(CHUNK):
        yield chunk
