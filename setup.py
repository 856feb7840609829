"""Builds the compiled hot path (meshd/compiled.py lists the modules); everything else is in pyproject.toml.

``MESHD_PURE=1 pip install .`` installs without compiling (no C compiler needed); meshd then runs the same
modules as Python.
"""

import os
import runpy

from setuptools import setup

COMPILED = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "meshd", "compiled.py"))


def extensions() -> list:
    if COMPILED["pure_requested"]():
        return []
    from Cython.Build import cythonize
    sources = [name.replace(".", "/") + ".py" for name in COMPILED["MODULES"]]
    # annotations are documentation here, not C types: the compiled module keeps Python's semantics
    return cythonize(sources, build_dir="build/cython", quiet=True, nthreads=os.cpu_count() or 1,
                     compiler_directives={"language_level": 3, "annotation_typing": False})


setup(ext_modules=extensions(), options={"build_ext": {"parallel": os.cpu_count() or 1}})
