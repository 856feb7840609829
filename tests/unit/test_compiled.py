"""The compiled hot path (meshd/compiled.py, setup.py): this run uses what it says, and the finder falls back
to the source when it must. `make test` runs every suite twice: compiled, then with MESHD_PURE=1."""

from __future__ import annotations

import glob
import importlib.machinery
import os
import re
import shutil
import subprocess

import pytest

from meshd import cli, compiled

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_this_run_loads_every_hot_module_the_way_it_asked_for():
    expected = compiled.PURE if compiled.pure_requested() else compiled.COMPILED   # make install built them all
    assert compiled.probe() == expected
    assert set(compiled.status()) == set(compiled.MODULES)
    assert set(compiled.status().values()) == {expected}
    rpc = importlib.import_module("meshd.proxy.rpc")
    assert rpc.__file__.endswith(".py") == (expected == compiled.PURE)


def test_meshd_version_names_the_hot_path(capsys):
    assert cli.main(["version"]) in (0, None)
    assert re.fullmatch(r"meshd \S+ \(hot path: (compiled|pure)\)\n", capsys.readouterr().out)


@pytest.fixture
def package(tmp_path, monkeypatch):
    monkeypatch.delenv("MESHD_PURE", raising=False)
    source = tmp_path / "rpc.py"
    source.write_text("VALUE = 1\n")
    extension = tmp_path / ("rpc" + importlib.machinery.EXTENSION_SUFFIXES[0])
    return source, extension


def test_the_extension_is_loaded_when_it_is_newer_than_its_source(package):
    source, extension = package
    extension.write_bytes(b"\0")
    os.utime(source, (1_000, 1_000))
    assert compiled.how_to_load("meshd.proxy.rpc", str(source.parent)) == compiled.COMPILED


def test_a_source_edited_after_the_build_is_loaded_instead_of_the_stale_extension(package):
    source, extension = package
    extension.write_bytes(b"\0")
    os.utime(extension, (1_000, 1_000))
    assert compiled.how_to_load("meshd.proxy.rpc", str(source.parent)) == compiled.STALE


def test_the_source_is_loaded_without_an_extension_or_when_meshd_pure_is_set(package, monkeypatch):
    source, extension = package
    assert compiled.how_to_load("meshd.proxy.rpc", str(source.parent)) == compiled.MISSING
    extension.write_bytes(b"\0")
    monkeypatch.setenv("MESHD_PURE", "1")
    assert compiled.how_to_load("meshd.proxy.rpc", str(source.parent)) == compiled.PURE
    monkeypatch.setenv("MESHD_PURE", "0")
    assert compiled.how_to_load("meshd.proxy.rpc", str(source.parent)) == compiled.COMPILED


def test_one_stale_or_missing_extension_sends_every_module_to_its_source():
    """The extensions import each other's types: all compiled or none."""
    fresh = {"a": compiled.COMPILED, "b": compiled.COMPILED}
    assert compiled.loading(fresh) == fresh
    assert compiled.loading({**fresh, "c": compiled.STALE}) == {
        "a": compiled.FALLBACK, "b": compiled.FALLBACK, "c": compiled.STALE}
    assert compiled.loading({"a": compiled.PURE, "b": compiled.PURE}) == {"a": compiled.PURE, "b": compiled.PURE}


def test_a_folder_without_the_source_is_left_to_the_standard_finders(tmp_path):
    assert compiled.how_to_load("meshd.proxy.rpc", str(tmp_path)) == ""


def test_the_makefile_rebuilds_when_a_hot_module_changes():
    """make install's stamp depends on every compiled source (the list is read from meshd/compiled.py)."""
    import subprocess
    out = subprocess.run(["make", "-p", "-n", "-C", ROOT, "install"], capture_output=True, text=True).stdout
    hot = next(line for line in out.splitlines() if line.startswith("HOT := ")).split()[2:]
    assert hot == [name.replace(".", "/") + ".py" for name in compiled.MODULES]
    assert all(os.path.exists(os.path.join(ROOT, path)) for path in hot)


def _pxd_fields(text: str) -> dict[str, set[str]]:
    fields: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        if match := re.match(r"cdef class (\w+)", line):
            current = fields.setdefault(match[1], set())
        elif current is not None and (match := re.match(r"\s+cdef public object (.+)", line)):
            current.update(name.strip() for name in match[1].split(","))
    return fields


def test_every_extension_type_has_exactly_the_fields_of_its_slots():
    """A .pxd beside a hot module makes its classes extension types; the Python class must declare the same
    __slots__, so that the compiled and the pure module accept the same attributes."""
    import ast
    checked = 0
    for name in compiled.MODULES:
        base = os.path.join(ROOT, *name.split("."))
        if not os.path.exists(base + ".pxd"):
            continue
        with open(base + ".py") as f:
            classes = {node.name: node for node in ast.parse(f.read()).body if isinstance(node, ast.ClassDef)}
        with open(base + ".pxd") as f:
            declared = _pxd_fields(f.read())
        for cls, fields in declared.items():
            slots = next(ast.literal_eval(stmt.value) for stmt in classes[cls].body if isinstance(stmt, ast.Assign)
                         and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in stmt.targets))
            assert set(slots) == fields, f"{name}.{cls}: __slots__ and the .pxd differ"
            checked += 1
    assert checked >= 8


def test_git_tracks_every_pxd_beside_the_hot_modules():
    """A .pxd left out of a commit builds here and breaks a clean clone's build (its cimports fail there)."""
    inside = shutil.which("git") and subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT,
                                                     capture_output=True, text=True).stdout.strip() == "true"
    if not inside:
        pytest.skip("not a git work tree: no commit to compare the .pxd files with")
    tracked = set(subprocess.run(["git", "ls-files", "--", "*.pxd"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split())
    present = {os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "meshd", "**", "*.pxd"),
                                                                   recursive=True)}
    assert len(present) >= 10
    assert present <= tracked, f"not in git: {sorted(present - tracked)}"
