"""The compiled hot path: which modules `make install` builds with Cython, and which of them this process runs.

The modules in :data:`MODULES` are compiled, unchanged, into extension modules beside their sources
(``setup.py``); the ``.py`` files stay the one source and the reference. Compiled code keeps Python's
semantics (no type annotations are enforced, no class becomes a C type), so the same suites pass either
way, and CI runs them both ways.

At import, :func:`install` (called by ``meshd/__init__``) puts a finder in front of the standard one for
these modules only. It loads the source instead of the extension when ``MESHD_PURE=1`` is set, when there
is no extension, or when the source is newer than its extension (a stale build after an edit: ``make
install`` rebuilds it). :func:`status` says which way each module was loaded; the running proxy reports it
in ``meshd_build_info`` and logs it at start.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from typing import Any, Sequence

#: the forwarding path of every protocol: codecs, the proxy, pools, balancing, timers, stats, access log
MODULES = (
    "meshd.accesslog", "meshd.stats", "meshd.timers", "meshd.writebatch",
    "meshd.codec.base", "meshd.codec.http1",
    "meshd.codec.dubbo.body", "meshd.codec.dubbo.decoder", "meshd.codec.dubbo.frame",
    "meshd.codec.bolt.body", "meshd.codec.bolt.decoder", "meshd.codec.bolt.frame",
    "meshd.proxy.context", "meshd.proxy.governor", "meshd.proxy.http", "meshd.proxy.retry", "meshd.proxy.rpc",
    "meshd.proxy.rpc_protocols",
    "meshd.routing.balancer", "meshd.routing.subset",
    "meshd.upstream.cluster", "meshd.upstream.host", "meshd.upstream.http", "meshd.upstream.mux",
    "meshd.upstream.pool",
)

COMPILED, PURE, STALE, MISSING = "compiled", "pure", "stale", "missing"
_loaded: dict[str, str] = {}


def pure_requested() -> bool:
    return os.environ.get("MESHD_PURE", "") not in ("", "0")


def how_to_load(fullname: str, folder: str) -> tuple[str, str]:
    """(how, source path) for hot module ``fullname`` in package folder ``folder``; how is one of
    compiled, pure, stale, missing ("" when there is no source: not ours to decide)."""
    leaf = fullname.rpartition(".")[2]
    source = os.path.join(folder, leaf + ".py")
    if not os.path.exists(source):
        return "", source
    if pure_requested():
        return PURE, source
    extension = next((path for path in (os.path.join(folder, leaf + suffix)
                                        for suffix in importlib.machinery.EXTENSION_SUFFIXES)
                      if os.path.exists(path)), None)
    if extension is None:
        return MISSING, source
    if os.path.getmtime(source) > os.path.getmtime(extension):
        return STALE, source
    return COMPILED, source


class _Finder:
    """Loads a hot module's source instead of its extension when it must (see the module docstring)."""

    names = frozenset(MODULES)

    @classmethod
    def find_spec(cls, fullname: str, path: Sequence[str] | None, target: Any = None) -> Any:
        if fullname not in cls.names or not path:
            return None
        how, source = how_to_load(fullname, path[0])
        if not how:
            return None
        _loaded[fullname] = how
        if how == COMPILED:
            return None                        # the standard finder loads the extension
        return importlib.util.spec_from_file_location(fullname, source)


def install() -> None:
    if _Finder not in sys.meta_path:
        sys.meta_path.insert(0, _Finder)


def status() -> dict[str, str]:
    """Module → how it was loaded (compiled, pure, stale, missing), for the modules imported so far."""
    return {name: _loaded[name] for name in MODULES if name in _loaded}


def probe() -> str:
    """Import every hot module, then :func:`summary` (``meshd version``)."""
    import importlib
    for name in MODULES:
        importlib.import_module(name)
    return summary()


def summary() -> str:
    """One word for the process: ``compiled`` when every hot module loaded so far is, ``pure`` when
    MESHD_PURE asked for it, else ``partial`` (some missing or stale)."""
    states = set(status().values())
    if states <= {COMPILED}:
        return COMPILED if states else MISSING
    if states == {PURE}:
        return PURE
    return "partial"
