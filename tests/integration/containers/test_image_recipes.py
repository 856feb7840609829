"""Image inputs and tags (pure: no engine needed): what changes a tag, what does not, where apt points."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from integration.images.recipes import (
    AptSource, RecipeError, compute_tags, debian_sources, parse_deb822, parse_one_line, project_inputs,
)

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://one.example/debian bookworm main non-free
deb-src http://src.example/debian bookworm main
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
"""
APT = [AptSource("http://mirror.example/debian", "bookworm", ("main",))]


def make_project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "other-dir").mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "1"\ndependencies = ["PyYAML>=6"]\n'
        '[build-system]\nrequires = ["setuptools>=68"]\n'
        '[tool.setuptools]\npackages = ["pkg", "mapped"]\n'
        '[tool.setuptools.package-dir]\nmapped = "other-dir"\n')
    (root / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / "other-dir" / "__init__.py").write_text("")
    (root / "unrelated.txt").write_text("not an input\n")
    return root


def test_deb822_stanzas_skip_disabled_and_keep_every_suite():
    found = parse_deb822(DEB822)
    assert [(s.uri, s.suite) for s in found] == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://mirror.example/debian", "bookworm-updates"),
        ("http://security.example/debian-security", "bookworm-security"),
    ]
    assert found[0].components == ("main", "contrib")


def test_one_line_format_skips_options_comments_and_sources():
    found = parse_one_line(ONE_LINE)
    assert [(s.uri, s.suite, s.components) for s in found] == [
        ("http://one.example/debian", "bookworm", ("main", "non-free")),
        ("https://packages.cloud.google.com/apt", "cloud-sdk-bookworm", ("main",)),
    ]


def test_debian_sources_pick_the_suite_family_main_only(monkeypatch):
    monkeypatch.delenv("MESHD_DEBIAN_MIRROR", raising=False)
    picked = debian_sources("bookworm", parse_deb822(DEB822) + parse_one_line(ONE_LINE))
    assert [m.line() for m in picked] == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://security.example/debian-security bookworm-security main",
        "deb http://one.example/debian bookworm main",
    ]


def test_debian_sources_without_the_suite_name_the_fix(monkeypatch):
    monkeypatch.delenv("MESHD_DEBIAN_MIRROR", raising=False)
    with pytest.raises(RecipeError, match="no apt source for Debian bookworm main.*MESHD_DEBIAN_MIRROR"):
        debian_sources("bookworm", parse_one_line(ONE_LINE.replace(" bookworm main non-free", " trixie main")))
    monkeypatch.setenv("MESHD_DEBIAN_MIRROR", "http://override.example/debian")
    assert [m.line() for m in debian_sources("bookworm", [])] == ["deb http://override.example/debian bookworm main"]


def test_project_inputs_follow_pyproject_packages_and_package_dir(tmp_path):
    project = make_project(tmp_path)
    assert project_inputs(project) == [project / "pyproject.toml", project / "other-dir", project / "pkg"]
    (project / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    assert project_inputs(project)[-1] == project / "setup.py"


def test_meshd_tag_follows_sources_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.delenv("MESHD_IMAGE_SOURCE", raising=False)
    project = make_project(tmp_path)
    first = compute_tags(project=project, apt_sources=APT)
    assert compute_tags(project=project, apt_sources=APT) == first

    (project / "unrelated.txt").write_text("changed\n")
    (project / "pkg" / "__pycache__").mkdir()
    (project / "pkg" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (project / "pkg" / "hot.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\0")   # built from the sources
    assert compute_tags(project=project, apt_sources=APT) == first

    (project / "pkg" / "__init__.py").write_text("VALUE = 2\n")
    second = compute_tags(project=project, apt_sources=APT)
    assert second.meshd != first.meshd
    assert (second.base, second.zookeeper) == (first.base, first.zookeeper)

    os.chmod(project / "pkg" / "__init__.py", 0o755)
    assert compute_tags(project=project, apt_sources=APT).meshd != second.meshd


def test_a_different_mirror_rebuilds_every_local_image(tmp_path):
    project = make_project(tmp_path)
    here = compute_tags("local", project, APT)
    there = compute_tags("local", project, [AptSource("http://elsewhere.example/debian", "bookworm", ("main",))])
    assert here.base != there.base and here.zookeeper != there.zookeeper and here.meshd != there.meshd
    assert here.base.startswith("meshd-it/base:") and here.python_base == here.base
    assert not here.zookeeper_official


def test_registry_source_uses_official_images(tmp_path, monkeypatch):
    project = make_project(tmp_path)
    monkeypatch.setenv("MESHD_IMAGE_SOURCE", "registry")
    tags = compute_tags(project=project)
    assert (tags.source, tags.base, tags.zookeeper, tags.python_base) == \
        ("registry", None, "zookeeper:3.8", "python:3.11-slim")
    assert tags.zookeeper_official and tags.meshd.startswith("meshd-it/meshd:")
    assert tags.lines() == [f"zookeeper {tags.zookeeper}", f"meshd {tags.meshd}"]

    monkeypatch.setenv("MESHD_REGISTRY_PYTHON_IMAGE", "python:3.11-bookworm")
    assert compute_tags(project=project).meshd != tags.meshd
    monkeypatch.setenv("MESHD_IMAGE_SOURCE", "dockerhub")
    with pytest.raises(RecipeError, match="MESHD_IMAGE_SOURCE='dockerhub': expected 'local' or 'registry'"):
        compute_tags(project=project)


def test_missing_sources_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHD_SOURCE_DIR", str(tmp_path))
    with pytest.raises(RecipeError, match=f"meshd sources not found: {tmp_path}/pyproject.toml is missing"):
        compute_tags(apt_sources=APT)


def test_every_package_of_the_tree_is_declared_for_the_image_install():
    """The meshd image installs the project non-editable: a package missing from pyproject is missing there."""
    import tomllib
    from integration.images.recipes import source_dir
    root = source_dir()
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, mapping = set(tool["packages"]), tool.get("package-dir", {})
    on_disk = set()
    for top in {name.split(".")[0] for name in listed}:
        folder = root / mapping.get(top, top)
        on_disk |= {".".join((top, *init.parent.relative_to(folder).parts)) for init in folder.rglob("__init__.py")
                    if not {"node_modules", "__pycache__"} & set(init.parts)}
    assert sorted(on_disk - listed) == [], "add these to [tool.setuptools] packages in pyproject.toml"
