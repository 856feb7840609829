"""The compiled hot path: which modules `make install` builds with Cython, and which of them this process runs.

The modules in :data:`MODULES` are compiled, unchanged, into extension modules beside their sources
(``setup.py``); the ``.py`` files stay the one source and the reference. Compiled code keeps Python's
semantics: no annotation is enforced, and the ``.pxd`` beside a module makes only its ``__slots__``
classes extension types with the same fields, every one a Python object (tests/unit/test_compiled.py
checks they match). The same suites pass either way, and CI runs them both ways.

At import, :func:`install` (called by ``meshd/__init__``) puts a finder in front of the standard one for
these modules only. It loads the sources instead of the extensions when ``MESHD_PURE=1`` is set, or when
any extension is missing or older than its source (a stale build after an edit: ``make install`` rebuilds
it). All or none: the extensions import each other's types (the ``.pxd`` files), so one module from source
and its neighbours compiled would not import. :func:`status` says which way each module was loaded; the
running proxy reports it in ``meshd_build_info`` and logs it at start.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from typing import Any, Sequence

#: the forwarding path: codecs, the RPC proxy, pools, balancing, timers, stats, access log. Not the HTTP exchange
#: and upstream connection (meshd/proxy/http.py, meshd/upstream/http.py): their instances keep per-request
#: fields in a __dict__ over class-level defaults, which CPython 3.11's specialising interpreter reads faster
#: than compiled code's generic attribute lookups (bench.microbench_http: 7.6 µs per request as Python, 9.0
#: compiled).
MODULES = (
    "meshd.accesslog", "meshd.stats", "meshd.timers", "meshd.writebatch",
    "meshd.codec.base", "meshd.codec.http1",
    "meshd.codec.dubbo.body", "meshd.codec.dubbo.decoder", "meshd.codec.dubbo.frame",
    "meshd.codec.bolt.body", "meshd.codec.bolt.decoder", "meshd.codec.bolt.frame",
    "meshd.proxy.context", "meshd.proxy.governor", "meshd.proxy.retry", "meshd.proxy.rpc",
    "meshd.proxy.rpc_protocols",
    "meshd.routing.balancer", "meshd.routing.subset",
    "meshd.upstream.cluster", "meshd.upstream.host", "meshd.upstream.mux",
    "meshd.upstream.pool",
)

COMPILED, PURE, STALE, MISSING = "compiled", "pure", "stale", "missing"
FALLBACK = "fallback"                         # built and current, loaded from source: another one is not
_loaded: dict[str, str] = {}


def pure_requested() -> bool:
    return os.environ.get("MESHD_PURE", "") not in ("", "0")


def how_to_load(fullname: str, folder: str) -> str:
    """How hot module ``fullname`` in package folder ``folder`` would load on its own: compiled, pure, stale,
    missing ("" when there is no source: not ours to decide)."""
    leaf = fullname.rpartition(".")[2]
    source = os.path.join(folder, leaf + ".py")
    if not os.path.exists(source):
        return ""
    if pure_requested():
        return PURE
    extension = next((path for path in (os.path.join(folder, leaf + suffix)
                                        for suffix in importlib.machinery.EXTENSION_SUFFIXES)
                      if os.path.exists(path)), None)
    if extension is None:
        return MISSING
    if os.path.getmtime(source) > os.path.getmtime(extension):
        return STALE
    return COMPILED


def loading(states: dict[str, str]) -> dict[str, str]:
    """How each module loads given every module's :func:`how_to_load` state: all compiled, or all from
    source (those that could have been compiled are a ``fallback``)."""
    if all(how == COMPILED for how in states.values()):
        return dict(states)
    return {name: FALLBACK if how == COMPILED else how for name, how in states.items()}


def _survey() -> dict[str, str]:
    parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # no source at all ("") leaves the module to the standard finders: only an extension can load then
    return loading({name: how_to_load(name, os.path.join(parent, *name.split(".")[:-1])) or COMPILED
                    for name in MODULES})


class _Finder:
    """Loads the hot modules' sources instead of their extensions when it must (see the module docstring)."""

    plan: dict[str, str] = {}

    @classmethod
    def find_spec(cls, fullname: str, path: Sequence[str] | None, target: Any = None) -> Any:
        how = cls.plan.get(fullname)
        if how is None or not path:
            return None
        _loaded[fullname] = how
        if how == COMPILED:
            return None                        # the standard finder loads the extension
        return importlib.util.spec_from_file_location(fullname, os.path.join(path[0],
                                                                             fullname.rpartition(".")[2] + ".py"))


def install() -> None:
    if _Finder not in sys.meta_path:
        _Finder.plan = _survey()
        sys.meta_path.insert(0, _Finder)


def status() -> dict[str, str]:
    """Module → how it was loaded (compiled, pure, stale, missing, fallback), for the modules imported so far."""
    return {name: _loaded[name] for name in MODULES if name in _loaded}


def probe() -> str:
    """Import every hot module, then :func:`summary` (``meshd version``)."""
    import importlib
    for name in MODULES:
        importlib.import_module(name)
    return summary()


def summary() -> str:
    """One word for the process: ``compiled`` when every hot module loaded so far is, ``pure`` when
    MESHD_PURE asked for it, else ``source`` (some extension missing or stale: all run from source)."""
    states = set(status().values())
    if states <= {COMPILED}:
        return COMPILED if states else MISSING
    if states == {PURE}:
        return PURE
    return "source"
