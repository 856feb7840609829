"""Helpers for the peer tests (kept out of conftest.py so that test modules can import them)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def meshd_call(*args: Any, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m meshd call ...`` as a user would."""
    return subprocess.run([sys.executable, "-m", "meshd", "call", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def result_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
