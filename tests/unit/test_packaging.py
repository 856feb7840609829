"""Every package folder is in pyproject's explicit package list (an unlisted one is missing from installs and
images, and only the container suites would notice)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    dirs = {name: ROOT / config.get("package-dir", {}).get(name, name) for name in listed if "." not in name}
    found = set()
    for top, folder in dirs.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            found.add(".".join((top, *relative)))
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
