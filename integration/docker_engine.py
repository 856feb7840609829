"""Make sure a Docker engine answers, starting Debian's ``dockerd`` where it is installed but idle.

``probe()`` only asks (``GET /_ping`` through the ``docker`` SDK, honouring ``DOCKER_HOST``) and
returns an :class:`EngineStatus` whose ``detail`` names what is missing when nothing answers.
``ensure()`` goes further on a Linux host where we are root: it installs ``docker.io`` with apt when
``dockerd`` is missing, then starts ``dockerd`` in the background and waits until it answers.

The daemon is started for loopback-only test machines::

    dockerd --storage-driver=<overlay2|fuse-overlayfs|vfs> --iptables=false --bridge=none

Every test container runs with host networking, so no bridge and no NAT rules are needed (and none
can be made without iptables). Storage drivers are tried in that order (``MESHD_DOCKER_STORAGE_DRIVER``
forces one); the daemon's output goes to ``<cache>/docker/dockerd.log``. The daemon is left running
afterwards: that keeps the built images and makes the next run fast.

Command line: ``python -m integration.docker_engine ensure`` (exit 0 when an engine answers, 1 with the
reason otherwise) and ``python -m integration.docker_engine status``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DRIVERS = ("overlay2", "fuse-overlayfs", "vfs")
DAEMON_FLAGS = ("--iptables=false", "--bridge=none")


class EngineUnavailable(RuntimeError):
    """No Docker engine answers and none could be started; the message says what is missing."""


@dataclass(frozen=True)
class EngineStatus:
    available: bool
    detail: str            # server version and storage driver, or why nothing answers


def probe(timeout: float = 5.0) -> EngineStatus:
    """Ask the engine named by the environment (``DOCKER_HOST`` or the default socket) if it is up."""
    try:
        import docker
    except ImportError:
        return EngineStatus(False, "the Python package 'docker' is not installed (pip install 'meshd[test]')")
    try:
        client = docker.from_env(timeout=timeout)
    except docker.errors.DockerException as exc:
        return EngineStatus(False, _explain(exc))
    try:
        info = client.info()
        return EngineStatus(True, f"Docker {info.get('ServerVersion')} ({info.get('Driver')} storage) at {_where()}")
    except Exception as exc:     # requests/urllib3/docker errors all mean "does not answer"
        return EngineStatus(False, _explain(exc))
    finally:
        client.close()


def _where() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _explain(exc: BaseException) -> str:
    where = _where()
    text = str(exc)
    if "Permission denied" in text:
        return f"permission denied on {where} (run as root or join the docker group)"
    if "No such file" in text or "FileNotFoundError" in text or "Connection refused" in text:
        return f"no Docker daemon listens on {where}"
    return f"{where} does not answer: {text[:300]}"


def ensure(*, install: bool = True, wait: float = 60.0, log_dir: Path | None = None) -> EngineStatus:
    """Return the status of a running engine, starting (and, with ``install``, installing) one if needed.

    Raises :class:`EngineUnavailable` naming what is missing when no engine can be made to answer.
    """
    status = probe()
    if status.available:
        return status
    _check_can_start(status)
    if log_dir is None:
        from integration.images.recipes import cache_dir
        log_dir = cache_dir() / "docker"
    log_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(log_dir / "ensure.lock"):
        status = probe()         # someone else may have started it while we waited for the lock
        if status.available:
            return status
        if not shutil.which("dockerd"):
            _install_docker_io(install)
        return _start_daemon(log_dir / "dockerd.log", wait)


def _check_can_start(status: EngineStatus) -> None:
    host = os.environ.get("DOCKER_HOST", "")
    if host and host not in ("unix:///var/run/docker.sock", "unix:///run/docker.sock"):
        raise EngineUnavailable(f"DOCKER_HOST={host}: {status.detail}; not starting a local dockerd instead")
    if not sys.platform.startswith("linux"):
        raise EngineUnavailable(f"{status.detail}; on {sys.platform} start Docker Desktop (or another engine) "
                                "or point DOCKER_HOST at one")
    if os.geteuid() != 0:
        raise EngineUnavailable(f"{status.detail}; starting dockerd needs root (run `sudo dockerd "
                                f"{' '.join(DAEMON_FLAGS)} &` or run the tests as root)")


def _install_docker_io(install: bool) -> None:
    debian = Path("/etc/debian_version").exists() and shutil.which("apt-get")
    if not (install and debian):
        raise EngineUnavailable("dockerd is not installed (Debian/Ubuntu package docker.io, or Docker Engine "
                                "from docs.docker.com)" + ("" if debian else "; this is not a Debian system"))
    print("docker_engine: installing docker.io with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"]
    for cmd in (["apt-get", "update", "-qq"], install_cmd):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise EngineUnavailable(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}")
    if not shutil.which("dockerd"):
        raise EngineUnavailable("docker.io was installed but dockerd is still not on PATH")


def storage_drivers() -> list[str]:
    forced = os.environ.get("MESHD_DOCKER_STORAGE_DRIVER")
    if forced:
        return [forced]
    return [d for d in DRIVERS if d != "fuse-overlayfs" or shutil.which("fuse-overlayfs")]


def _start_daemon(log_path: Path, wait: float) -> EngineStatus:
    failures = []
    for driver in storage_drivers():
        cmd = ["dockerd", f"--storage-driver={driver}", *DAEMON_FLAGS]
        with open(log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            offset = log.tell()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)     # outlives us: the daemon keeps the images
        print(f"docker_engine: started {' '.join(cmd)} (pid {proc.pid}, log {log_path})", flush=True)
        status = _wait_for_daemon(proc, wait)
        if status.available:
            return status
        failures.append(f"{driver}: {status.detail}; {_log_tail(log_path, offset)}")
        if proc.poll() is None:          # alive but silent: ours to stop before trying another driver
            proc.terminate()
            proc.wait(timeout=30)
    raise EngineUnavailable("dockerd did not come up: " + " | ".join(failures) + f" (full log: {log_path})")


def _wait_for_daemon(proc: subprocess.Popen, wait: float) -> EngineStatus:
    deadline = time.monotonic() + wait
    status = EngineStatus(False, "not started")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return EngineStatus(False, f"dockerd exited with status {proc.returncode}")
        status = probe(timeout=2.0)
        if status.available:
            return status
        time.sleep(0.3)
    return EngineStatus(False, f"dockerd did not answer within {wait:.0f}s ({status.detail})")


def _log_tail(path: Path, offset: int, lines: int = 3) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace").strip().splitlines()
    errors = [line for line in text if "level=error" in line or "level=fatal" in line or "failed" in line]
    return " / ".join((errors or text)[-lines:]) or "no output"


@contextmanager
def file_lock(path: Path):
    """Hold an exclusive ``flock`` on ``path`` (created if missing): one process at a time, across processes."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "ensure"
    if command not in ("ensure", "status"):
        print("usage: python -m integration.docker_engine [ensure|status]", file=sys.stderr)
        return 2
    try:
        status = ensure() if command == "ensure" else probe()
    except EngineUnavailable as exc:
        print(f"Docker engine not available: {exc}", file=sys.stderr)
        return 1
    print(("Docker engine: " if status.available else "Docker engine not available: ") + status.detail)
    return 0 if status.available else 1


if __name__ == "__main__":
    sys.exit(main())
