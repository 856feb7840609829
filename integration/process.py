"""Run meshd and test servers the way users' suites do: meshd as a subprocess, servers on a loop thread.

- :class:`MeshdProcess` writes a config, starts ``python -m meshd run -c FILE``, waits for ``/ready``
  (readiness, not sleeps), finds the bound listener ports through ``/listeners``, and stops it with
  SIGTERM (a graceful drain) and checks the exit status. With ``admin_ssl`` (a client context) it talks
  HTTPS to an admin with ``admin.tls``; with ``admin_token`` it sends ``Authorization: Bearer`` on every call.
- :class:`LoopThread` runs asyncio servers (HTTP backends, RPC test providers) on a background uvloop
  thread, so that blocking test code can call them and script them.
- :func:`free_port` (from :mod:`integration.ports`) picks a free loopback port.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import yaml

from integration.ports import free_port

T = TypeVar("T")


class LoopThread:
    """A uvloop event loop on a daemon thread; ``run(coro)`` executes a coroutine on it and waits."""

    def __init__(self) -> None:
        import uvloop
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        async def wrapper() -> T:
            return fn()
        return self.run(wrapper(), timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        try:
            self.run(cancel_all(), 5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class MeshdError(RuntimeError):
    pass


class MeshdProcess:
    """``meshd run`` in a subprocess with a generated config; see the module docstring."""

    def __init__(self, config: dict[str, Any], workdir: Path, name: str = "meshd",
                 env: dict[str, str] | None = None, admin_ssl: ssl.SSLContext | None = None,
                 admin_token: str | None = None) -> None:
        self.config = dict(config)
        self.config.setdefault("admin", {"address": f"127.0.0.1:{free_port()}"})
        self.workdir = Path(workdir)
        self.name = name
        self.env = env or {}
        self.admin_ssl = admin_ssl
        self.admin_token = admin_token
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"{name}.log"
        self.config_path = self.workdir / f"{name}.yaml"
        self.ports: dict[str, int] = {}

    @property
    def admin_address(self) -> str:
        return self.config["admin"]["address"]

    def start(self, timeout: float = 20.0) -> "MeshdProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen([sys.executable, "-m", "meshd", "run", "-c", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env)
        log.close()
        self.wait_ready(timeout)
        listeners = self.admin_json("/listeners")["listeners"]
        self.ports = {x["name"]: int(x["bound"].rsplit(":", 1)[1]) for x in listeners}
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise MeshdError(f"meshd exited with {self.proc.returncode} before it was ready:\n{self.log()}")
            try:
                status, body = self.admin("/ready")
                if status == 200:
                    return
                last = body
            except OSError as exc:
                last = str(exc)
            time.sleep(0.05)
        raise MeshdError(f"meshd not ready after {timeout}s ({last}):\n{self.log()}")

    def admin(self, path: str, method: str = "GET", body: bytes | None = None,
              timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """One admin call (``headers`` replace the default ``Authorization`` of ``admin_token``)."""
        scheme = "https" if self.admin_ssl is not None else "http"
        sent = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
        req = urllib.request.Request(f"{scheme}://{self.admin_address}{path}", data=body, method=method,
                                     headers={**sent, **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.admin_ssl) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def admin_json(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        status, text = self.admin(path, method, data)
        if status >= 300:
            raise MeshdError(f"{method} {path}: {status} {text}")
        return json.loads(text)

    def port(self, listener: str) -> int:
        return self.ports[listener]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful drain) and wait; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise MeshdError(f"meshd did not exit within {timeout}s of SIGTERM:\n{self.log()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "MeshdProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill()
