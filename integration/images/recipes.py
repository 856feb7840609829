"""What each test image is made of, and the content-hash tag that names it.

Pure functions only (no Docker, no network): they read the recipe files next to this module, the
project sources and the host's apt configuration, and answer "which tag would this image have". A tag
changes exactly when one of the image's inputs changes, so a build is skipped when the tag exists.

Two sources of images (``MESHD_IMAGE_SOURCE``):

``local`` (default)
    Everything is built here, because no container registry is reachable: a Debian base made with
    ``debootstrap`` from the host's own apt mirror, then ``zookeeper`` and ``meshd`` on top of it.
``registry``
    For machines that can pull: the official ``zookeeper:3.8`` image is used as is and the ``meshd``
    image is built on ``python:3.11-slim`` (override with ``MESHD_REGISTRY_ZOOKEEPER_IMAGE`` and
    ``MESHD_REGISTRY_PYTHON_IMAGE``).
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

RECIPES = Path(__file__).resolve().parent
REPOSITORY = "meshd-it"                     # local image names: meshd-it/<image>:<hash>
IMAGE_LABEL = "meshd.integration.image"     # every image we build carries it (value: base|zookeeper|meshd)
SKIPPED_PARTS = {"__pycache__", "node_modules", ".pytest_cache", ".hypothesis", ".mypy_cache"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".swp", ".so")      # .so: the compiled hot path, rebuilt from source


class RecipeError(RuntimeError):
    """An input an image needs is missing or unusable; the message names it."""


@dataclass(frozen=True)
class Tags:
    """The image references for one image source; ``base`` is None when the source needs none."""

    source: str
    zookeeper: str
    meshd: str
    base: str | None = None
    python_base: str | None = None       # the FROM image of meshd when it is not our base
    zookeeper_official: bool = False     # True: the official image's layout (zkServer.sh), not ours

    def lines(self) -> list[str]:
        named = [("base", self.base), ("zookeeper", self.zookeeper), ("meshd", self.meshd)]
        return [f"{name} {tag}" for name, tag in named if tag]


def image_source() -> str:
    source = os.environ.get("MESHD_IMAGE_SOURCE", "local").strip() or "local"
    if source not in ("local", "registry"):
        raise RecipeError(f"MESHD_IMAGE_SOURCE={source!r}: expected 'local' or 'registry'")
    return source


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:12]


def tree_digest(root: Path, paths: list[Path]) -> str:
    """Hash of the relative names, executable bits and contents of every file under ``paths``."""
    parts: list[bytes | str] = []
    for path in sorted(set(iter_files(paths))):
        parts += [path.relative_to(root).as_posix(), "x" if os.access(path, os.X_OK) else "-", path.read_bytes()]
    return digest(*parts)


def iter_files(paths: list[Path]):
    for path in paths:
        if path.is_file():
            yield path
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_PARTS and not d.endswith(".egg-info"))
            for name in filenames:
                if not name.endswith(SKIPPED_SUFFIXES):
                    yield Path(dirpath) / name


# ------------------------------------------------------------------------------------- project sources
def cache_dir() -> Path:
    """Scratch space for builds and the engine log: ``MESHD_CACHE_DIR`` or ``<repository>/.cache``."""
    return Path(os.environ.get("MESHD_CACHE_DIR") or RECIPES.parents[1] / ".cache").resolve()


def source_dir() -> Path:
    """The meshd checkout the ``meshd`` image installs (``MESHD_SOURCE_DIR`` or this repository)."""
    root = Path(os.environ.get("MESHD_SOURCE_DIR") or RECIPES.parents[1]).resolve()
    if not (root / "pyproject.toml").is_file():
        raise RecipeError(f"meshd sources not found: {root}/pyproject.toml is missing "
                          "(set MESHD_SOURCE_DIR to a meshd checkout)")
    return root


def project_inputs(root: Path) -> list[Path]:
    """pyproject.toml, setup.py, README and the top-level package folders it declares (package-dir honoured)."""
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    tool = meta.get("tool", {}).get("setuptools", {})
    mapping = tool.get("package-dir", {})
    tops = {pkg.split(".")[0] for pkg in tool.get("packages", [])}
    folders = {mapping.get(top, top) for top in tops}
    inputs = [root / "pyproject.toml", *(root / f for f in sorted(folders) if (root / f).is_dir())]
    if (root / "setup.py").is_file():
        inputs.append(root / "setup.py")
    readme = meta.get("project", {}).get("readme")
    if isinstance(readme, str) and (root / readme).is_file():
        inputs.append(root / readme)
    return inputs


def runtime_requirements(root: Path) -> list[str]:
    """The project's runtime dependencies (no extras): what the image's wheelhouse must hold."""
    return list(tomllib.loads((root / "pyproject.toml").read_text()).get("project", {}).get("dependencies", []))


# ---------------------------------------------------------------------------------------- apt mirror
@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]

    def line(self) -> str:
        return f"deb {self.uri} {self.suite} {' '.join(self.components)}"


def parse_one_line(text: str) -> list[AptSource]:
    """``deb [options] uri suite component...`` lines of a ``.list`` file."""
    found = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 3:
            found.append(AptSource(words[0], words[1], tuple(words[2:])))
    return found


def parse_deb822(text: str) -> list[AptSource]:
    """Stanzas of a ``.sources`` file (``Types``, ``URIs``, ``Suites``, ``Components``, ``Enabled``)."""
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:
                fields[key] += " " + raw.strip()
            elif ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        components = tuple(fields.get("components", "main").split())
        for uri in fields.get("uris", "").split():
            found += [AptSource(uri, suite, components) for suite in fields.get("suites", "").split()]
    return found


def host_apt_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """What apt on this host reads: sources.list, sources.list.d/*.list and *.sources."""
    found = []
    main = etc / "sources.list"
    if main.is_file():
        found += parse_one_line(main.read_text())
    folder = etc / "sources.list.d"
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        if path.suffix == ".list":
            found += parse_one_line(path.read_text())
        elif path.suffix == ".sources":
            found += parse_deb822(path.read_text())
    return found


def debian_sources(suite: str, sources: list[AptSource]) -> list[AptSource]:
    """The host's entries for ``suite`` and its companions (``-updates``, ``-security``), main only.

    ``MESHD_DEBIAN_MIRROR`` replaces the host's choice with one mirror for the plain suite.
    """
    override = os.environ.get("MESHD_DEBIAN_MIRROR")
    if override:
        return [AptSource(override, suite, ("main",))]
    wanted = {suite, f"{suite}-updates", f"{suite}-security"}
    picked = [AptSource(s.uri, s.suite, ("main",)) for s in sources if s.suite in wanted and "main" in s.components]
    if not any(s.suite == suite for s in picked):
        raise RecipeError(f"no apt source for Debian {suite} main in /etc/apt/sources.list(.d); "
                          "set MESHD_DEBIAN_MIRROR to a Debian mirror URL")
    return list(dict.fromkeys(picked))


# --------------------------------------------------------------------------------------------- recipes
def read_recipe_conf(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def base_recipe() -> dict[str, str]:
    return read_recipe_conf(RECIPES / "base" / "debootstrap.conf")


def compute_tags(source: str | None = None, project: Path | None = None,
                 apt_sources: list[AptSource] | None = None) -> Tags:
    """The tags every image would have now; nothing is built or pulled."""
    source = source or image_source()
    project = project or source_dir()
    meshd_inputs = tree_digest(project, project_inputs(project))
    meshd_recipe = tree_digest(RECIPES, [RECIPES / "meshd"])
    if source == "registry":
        python = os.environ.get("MESHD_REGISTRY_PYTHON_IMAGE", "python:3.11-slim")
        zookeeper = os.environ.get("MESHD_REGISTRY_ZOOKEEPER_IMAGE", "zookeeper:3.8")
        meshd = f"{REPOSITORY}/meshd:{digest(python, meshd_recipe, meshd_inputs)}"
        return Tags(source, zookeeper=zookeeper, meshd=meshd, python_base=python, zookeeper_official=True)
    recipe = base_recipe()
    mirrors = debian_sources(recipe["suite"], host_apt_sources() if apt_sources is None else apt_sources)
    base = f"{REPOSITORY}/base:{digest(tree_digest(RECIPES, [RECIPES / 'base']), *(m.line() for m in mirrors))}"
    zookeeper = f"{REPOSITORY}/zookeeper:{digest(base, tree_digest(RECIPES, [RECIPES / 'zookeeper']))}"
    meshd = f"{REPOSITORY}/meshd:{digest(base, meshd_recipe, meshd_inputs)}"
    return Tags(source, zookeeper=zookeeper, meshd=meshd, base=base, python_base=base)
