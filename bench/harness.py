"""Benchmark plumbing shared by the scenarios: processes, CPU pinning, CPU accounting, load generators.

Layout on a 2-core machine (one proxy core, as every number in bench/RESULTS.md): the proxy under test
(meshd, nginx, haproxy or the byte relay) is pinned to CPU 1; backends and load generators to CPU 0. Every target is measured in
the same invocation, in interleaved rounds (A B C A B C ...), and the median round is reported, so that
a noisy neighbour hits every target alike. CPU per request is the proxy process's utime+stime over the
round divided by the requests it served.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
PROXY_CPU = "1" if NCPU > 1 else "0"
LOAD_CPU = "0"


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def pinned(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if shutil.which("taskset") and NCPU > 1 else argv


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def ensure_tools(packages: dict[str, str]) -> dict[str, bool]:
    """Install missing Debian packages (root only) for tools the harness compares against."""
    missing = [pkg for tool, pkg in packages.items() if not shutil.which(tool)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["sh", str(ROOT / "integration" / "provision.sh"),
                        *[f"{pkg}:{tool}" for tool, pkg in packages.items()]], check=False)
    return {tool: shutil.which(tool) is not None for tool in packages}


class Proc:
    """A subprocess we own (killed on close), with its log in the work dir."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict | None = None) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        with open(self.log, "wb") as log:
            self.p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                      env={**os.environ, **(env or {})}, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.p.pid

    def worker_pid(self) -> int:
        """The process that does the work: for nginx/haproxy masters, their single child."""
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            children = []
        return int(children[0]) if children else self.pid

    def close(self) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, 15)
                self.p.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.p.pid, 9)
                except ProcessLookupError:
                    pass


@dataclass
class Round:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    proxy_cpu_s: float = 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.proxy_cpu_s / self.requests if self.requests else 0.0


@dataclass
class Target:
    name: str
    port: int
    cpu_pid: int | None = None           # process whose CPU is charged to this target
    rounds: list[Round] = field(default_factory=list)

    def median(self) -> Round:
        ordered = sorted(self.rounds, key=lambda r: r.rps)
        return ordered[len(ordered) // 2]

    def summary(self) -> dict[str, Any]:
        m = self.median()
        return {"rps": round(m.rps), "p50_ms": round(m.p50_ms, 3), "p99_ms": round(m.p99_ms, 3),
                "errors": sum(r.errors for r in self.rounds),
                "cpu_us_per_request": round(m.cpu_us_per_request, 1) if self.cpu_pid else None,
                "rounds_rps": [round(r.rps) for r in self.rounds]}


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def run_wrk(port: int, connections: int, seconds: float, path: str = "/", script: str | None = None,
            scheme: str = "http", headers: tuple[str, ...] = ()) -> Round:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if script:
        argv += ["-s", script]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run(pinned(LOAD_CPU, argv + [f"{scheme}://127.0.0.1:{port}{path}"]), capture_output=True,
                         text=True, timeout=seconds + 30).stdout
    if "requests in" not in out:
        raise RuntimeError(f"wrk against port {port} produced no result:\n{out}")
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    secs = _ms(re.search(r"requests in ([\d.]+\w+)", out).group(1)) / 1000.0
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))
    errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs += int(non2xx.group(1)) if non2xx else 0
    return Round(reqs, secs, reqs / secs if secs else 0.0, p50, p99, errs)


def run_builtin_http(port: int, connections: int, seconds: float, path: str = "/") -> Round:
    """The fallback load generator when wrk is missing (bench/loadgen.py in a pinned subprocess)."""
    out = subprocess.run(pinned(LOAD_CPU, [PY, str(ROOT / "bench" / "loadgen.py"), "http", str(port),
                                           str(connections), str(seconds), path]),
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    d = json.loads(out.strip().splitlines()[-1])
    return Round(d["requests"], d["seconds"], d["rps"], d["p50_ms"], d["p99_ms"], d["errors"])


def interleave(targets: list[Target], rounds: int, measure: Callable[[Target], Round], warmup: float = 1.0,
               warm: Callable[[Target], Any] | None = None) -> None:
    """Warm every target, then run ``rounds`` rounds of A B C ..., charging proxy CPU to each round."""
    for t in targets:
        if warm is not None:
            warm(t)
    for _ in range(rounds):
        for t in targets:
            before = cpu_seconds(t.cpu_pid) if t.cpu_pid else 0.0
            r = measure(t)
            if t.cpu_pid:
                r.proxy_cpu_s = cpu_seconds(t.cpu_pid) - before
            t.rounds.append(r)


def meshd_proc(config: dict, workdir: Path, name: str = "meshd") -> Proc:
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Proc(name, pinned(PROXY_CPU, [PY, "-m", "meshd", "run", "-c", str(path), "--log-level", "warning"]),
                workdir, env={"PYTHONPATH": str(ROOT)})


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="meshd-bench-"))


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cpus": NCPU, "python": sys.version.split()[0], "loadavg_at_start": [round(x, 2) for x in load],
            "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
