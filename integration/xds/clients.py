"""Drive real proxyless-xDS clients (grpcio, grpc-js-xds) in subprocesses and count where their RPCs land.

Contract:
- :func:`start_grpcio_client` runs ``python -m integration.xds.echo`` with this interpreter;
  :func:`start_node_client` runs ``integration/peers/xds_client.js`` with the npm peers of
  :mod:`integration.peers` (``NODE_PATH``). Both get the bootstrap JSON in ``GRPC_XDS_BOOTSTRAP_CONFIG``
  (grpc reads it once per process, so every client is a process of its own) and open one channel to
  ``xds:///<listener>`` that lives as long as the process.
- :meth:`XdsClient.call` makes ``n`` sequential RPCs (each with its own deadline) and returns a
  :class:`CallResult` of ``{backend name: count}`` and ``{status: count}``; :meth:`XdsClient.call_until`
  repeats small batches until a predicate holds (bounded by ``timeout``): this is how tests wait for a
  pushed config to take effect, without sleeping.
- :meth:`XdsClient.close` asks the process to exit, then terminates it; every wait is bounded.
- :func:`missing_node_packages` names what is missing to run the node client (for precise skips).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from integration import peers

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
NODE_PACKAGES = ("@grpc/grpc-js", "@grpc/grpc-js-xds")


@dataclass
class CallResult:
    """Where a batch of RPCs went: per backend name, per error status, and the first error message."""

    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + sum(self.errors.values())

    def share(self, name: str) -> float:
        return self.counts.get(name, 0) / self.total if self.total else 0.0

    @property
    def only(self) -> str | None:
        """The one backend that took every call, if there is exactly one and no errors."""
        return next(iter(self.counts)) if len(self.counts) == 1 and not self.errors else None


class XdsClient:
    """One client process speaking the JSON-lines protocol of ``integration.xds.echo`` / ``xds_client.js``."""

    def __init__(self, proc: subprocess.Popen[str], kind: str, ready_timeout: float = 20.0) -> None:
        self.kind = kind
        self.io = peers.NodeProcess(proc)  # a JSON-line reader for any process, not only node
        self._ids = itertools.count(1)
        try:
            self.info = self.io.wait_json(lambda o: o.get("event") == "ready", timeout=ready_timeout)
        except BaseException:
            self.io.stop()
            raise

    def __repr__(self) -> str:
        return f"<XdsClient {self.kind} {self.info.get('version')} pid={self.io.proc.pid}>"

    def _send(self, obj: Mapping[str, Any]) -> None:
        assert self.io.proc.stdin is not None
        self.io.proc.stdin.write(json.dumps(obj) + "\n")
        self.io.proc.stdin.flush()

    def call(self, n: int = 1, metadata: Mapping[str, str] | None = None, rpc_timeout: float = 2.0) -> CallResult:
        """``n`` sequential RPCs; waits at most about ``n * rpc_timeout`` (+ slack) for the summary."""
        cid = next(self._ids)
        self._send({"id": cid, "cmd": "call", "n": n, "timeout": rpc_timeout, "metadata": dict(metadata or {})})
        line = self.io.wait_json(lambda o: o.get("id") == cid, timeout=n * rpc_timeout + 10)
        if line.get("event") != "calls":
            raise RuntimeError(f"{self!r}: {line}")
        return CallResult(line["counts"], line["errors"], line.get("error", ""))

    def call_until(self, predicate: Callable[[CallResult], bool], n: int = 10, timeout: float = 10.0,
                   metadata: Mapping[str, str] | None = None, rpc_timeout: float = 1.0) -> CallResult:
        """Batches of ``n`` RPCs until ``predicate(batch)``; raise TimeoutError with the last batch."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.call(n, metadata, rpc_timeout)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self!r}: condition not met within {timeout}s; last batch {result}")

    def close(self, timeout: float = 5.0) -> None:
        """Ask the process to exit, terminate it if it does not, and close its pipes."""
        proc = self.io.proc
        if proc.poll() is None:
            try:
                self._send({"cmd": "exit"})
                proc.wait(timeout=timeout)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self.io.stop()
        for reader in getattr(self.io, "_threads", ()):  # they end at EOF, now that the process is gone
            reader.join(timeout=2)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def __enter__(self) -> "XdsClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _popen(cmd: list[str], env: Mapping[str, str], cwd: Path | None) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, env=dict(env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)


def _bootstrap_env(bootstrap: Mapping[str, Any], extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GRPC_XDS_BOOTSTRAP", "http_proxy", "https_proxy",
                                                            "HTTP_PROXY", "HTTPS_PROXY", "grpc_proxy")}
    env["GRPC_XDS_BOOTSTRAP_CONFIG"] = json.dumps(bootstrap)
    env.update(extra or {})
    return env


def start_grpcio_client(target: str, bootstrap: Mapping[str, Any], env: Mapping[str, str] | None = None
                        ) -> XdsClient:
    """The grpcio (C-core) proxyless client in a subprocess of this interpreter."""
    full_env = _bootstrap_env(bootstrap, env)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), full_env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "integration.xds.echo", target]
    return XdsClient(_popen(cmd, full_env, REPO_ROOT), "grpcio")


def missing_node_packages() -> str | None:
    """None when node, npm and the grpc-js xDS packages are installed, else what is missing."""
    reason = peers.missing_reason()
    if reason:
        return reason
    absent = [p for p in NODE_PACKAGES if not (peers.node_modules() / p / "package.json").exists()]
    if absent:
        return (f"npm packages {', '.join(absent)} not installed in {peers.peers_dir()} "
                f"(add them to integration.peers.NPM_PACKAGES and run `python -m integration.peers install`)")
    return None


def start_node_client(target: str, bootstrap: Mapping[str, Any], env: Mapping[str, str] | None = None
                      ) -> XdsClient:
    """The @grpc/grpc-js-xds client (``integration/peers/xds_client.js``) in a node subprocess."""
    full_env = peers.node_env(_bootstrap_env(bootstrap, env))
    full_env.pop("GRPC_XDS_BOOTSTRAP", None)  # it would win over GRPC_XDS_BOOTSTRAP_CONFIG
    cmd = ["node", str(peers.script("xds_client")), "--target", target]
    return XdsClient(_popen(cmd, full_env, peers.peers_dir()), "grpc-js-xds")
