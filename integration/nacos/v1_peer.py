"""nacos-sdk-python 2.0.x (the v1 HTTP ``nacos`` module) in a virtualenv of its own, and its driver process.

2.0.x and 3.x both install the top-level ``v2`` package, so they cannot share one environment; the 2.0.x
client is the PyPI peer ``nacos-v1`` of :mod:`integration.peers` (``<peers_dir()>/nacos-v1``):

- :func:`ensure` installs it the first time (minutes, needs PyPI; ``make test`` does it beforehand through
  ``python -m integration.peers install``), then returns at once; :func:`installed` says whether it is there;
- :class:`V1Client` starts ``integration/peers/nacos_v1_client.py`` with that interpreter and talks to it by
  JSON lines (commands on stdin, answers and events on stdout; see the script's docstring).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Callable

from integration import peers

NAME = "nacos-v1"
SCRIPT = peers.SCRIPTS_DIR / "nacos_v1_client.py"


def python() -> Path:
    return peers.venv_python(NAME)


def installed() -> bool:
    return peers.pypi_installed()


def ensure(log: Callable[[str], None] = print) -> Path:
    """Install the PyPI peers unless the stamp says they are there; returns the 2.0.x client's python."""
    if not installed():
        peers.install(npm=False, log=log)
    return python()


class V1Client:
    """The driver script as a child process; ``do(op, **args)`` sends a command and returns its value."""

    def __init__(self, server_addr: str, log_dir: str, interval: float = 0.5) -> None:
        cmd = [str(python()), str(SCRIPT), "--server", server_addr, "--interval", str(interval), "--log-dir", log_dir]
        # its own process group: the client forks a multiprocessing.Manager that must not outlive it
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=log_dir, start_new_session=True)
        self.proc = peers.NodeProcess(proc)   # a JSON-line reader for any child process
        self._ids = itertools.count(1)
        self.proc.wait_json(lambda o: o.get("event") == "ready", timeout=30)

    def send(self, op: str, **args: Any) -> int:
        cid = next(self._ids)
        stdin = self.proc.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps({"id": cid, "op": op, **args}) + "\n")
        stdin.flush()
        return cid

    def do(self, op: str, timeout: float = 15, **args: Any) -> Any:
        cid = self.send(op, **args)
        line = self.proc.wait_json(lambda o: o.get("event") == "result" and o.get("id") == cid, timeout)
        if not line["ok"]:
            raise RuntimeError(f"{op} failed in the v1 client: {line['error']}")
        return line["value"]

    def wait(self, event: str, pred: Callable[[dict[str, Any]], bool] = lambda o: True,
             timeout: float = 15) -> dict[str, Any]:
        return self.proc.wait_json(lambda o: o.get("event") == event and pred(o), timeout)

    def close(self) -> None:
        try:
            self.send("exit")
            self.proc.proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        try:  # the group of the child started above (the driver and its Manager), never anything else
            os.killpg(self.proc.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.stop()
