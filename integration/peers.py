"""Install and run the real third-party peers used by conformance tests (Dubbo, Bolt, xDS and Nacos clients).

Contract:
- ``python -m integration.peers install`` installs the pinned npm packages (``NPM_PACKAGES``) with
  ``npm install --prefix <peers_dir()>`` and each PyPI peer (``PYPI_PEERS``: the ``dubbo-py`` provider, the
  nacos-sdk-python 2.0 v1 client, anthunder with protobuf) into a virtualenv of its own (``<peers_dir()>/<name>``,
  interpreter ``venv_python(name)``). A stamp file records what was installed, per PyPI peer; a second run with
  the same pins returns at once without touching the network, a changed or added pin installs that peer only.
  ``python -m integration.peers status`` prints what is there.
- ``peers_dir()`` is ``.cache/peers`` under the repository root, or ``$MESHD_PEERS_DIR``.
- ``available()`` says whether node and npm exist; ``missing_reason()`` names what is missing (tests skip
  with that string). ``installed()`` says whether the npm peers are installed.
- ``run_node(script, *args)`` runs one of the helper scripts in ``integration/peers/`` (or any path) with
  ``NODE_PATH`` pointing at the installed modules; ``start_node(...)`` starts one in the background and
  ``wait_json_line(proc, pred)`` reads its JSON lines until one matches (servers print
  ``{"event": "listening", "port": N}`` when ready). Every script prints one JSON object per line on stdout.
- ``start_python(peer, script, *args)`` / ``run_python(...)`` do the same for a Python helper script
  (``integration/peers/<script>.py``) with the interpreter of PyPI peer ``peer`` (stdin open for commands).

Nothing here is imported by meshd itself; only tests and users' test suites use it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = Path(__file__).resolve().parent / "peers"

# Pinned to the versions known to work (docs/testing.md). sofa-rpc-node pulls sofa-bolt-node
# ^2.0.1 and sofa-hessian-node; apache-dubbo-js pins its own hessian.js 2.5.0 under its own folder.
NPM_PACKAGES: dict[str, str] = {
    "sofa-rpc-node": "2.10.0",
    "sofa-bolt-node": "2.0.1",
    "apache-dubbo-js": "3.0.0-rc6",
    "dubbo-remoting": "2.1.4",
    "hessian.js": "2.11.0",
    "hessian.js-1": "1.12.2",
    "js-to-java": "2.8.0",
    "@grpc/grpc-js": "1.14.7",           # with grpc-js-xds: the xDS client that proves integration.xds
    "@grpc/grpc-js-xds": "1.14.1",
    "nacos": "2.6.3",                    # the npm Nacos v1 client that proves integration.nacos
}
#: PyPI peers, each in a virtualenv of its own (``<peers_dir()>/<name>``): they clash with the project's
#: environment (every PyPI Dubbo package installs a top-level ``dubbo``; nacos-sdk-python 2.0 and 3.x both
#: install ``v2``; anthunder pins opentracing 1.3). A value is one or more pip requirements, space-separated.
#: anthunder 0.8.1 is the newest on PyPI (0.9 exists only in sofastack/sofa-bolt-python); its apps bring
#: their own protobuf.
PYPI_PEERS: dict[str, str] = {"dubbo-py": "dubbo-py==0.2.2", "nacos-v1": "nacos-sdk-python==2.0.11",
                              "anthunder": "anthunder==0.8.1 protobuf==7.36.2"}
_STAMP = ".meshd-peers.json"


def peers_dir() -> Path:
    """Where the peers live: ``$MESHD_PEERS_DIR`` or ``<repo>/.cache/peers``."""
    env = os.environ.get("MESHD_PEERS_DIR")
    return Path(env).resolve() if env else REPO_ROOT / ".cache" / "peers"


def node_modules() -> Path:
    return peers_dir() / "node_modules"


def missing_reason() -> str | None:
    """None when node and npm are on PATH, else a sentence naming the missing program(s)."""
    missing = [prog for prog in ("node", "npm") if shutil.which(prog) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian packages nodejs/npm)"
    return None


def available() -> bool:
    """True when node and npm exist, so the npm peers can be installed and run."""
    return missing_reason() is None


def _wanted_stamp() -> dict[str, Any]:
    return {"npm": NPM_PACKAGES, "pypi": PYPI_PEERS}


def _read_stamp() -> dict[str, Any] | None:
    try:
        return json.loads((peers_dir() / _STAMP).read_text())
    except (OSError, ValueError):
        return None


def installed() -> bool:
    """True when the pinned npm packages are installed (the stamp matches and the folders exist)."""
    stamp = _read_stamp()
    if not stamp or stamp.get("npm") != NPM_PACKAGES:
        return False
    return all((node_modules() / name / "package.json").exists() for name in NPM_PACKAGES)


def venv_python(name: str) -> Path:
    """The interpreter of the virtualenv of PyPI peer ``name`` (exists only after ``install``)."""
    return peers_dir() / name / "bin" / "python"


def dubbo_py_python() -> Path:
    return venv_python("dubbo-py")


def _pypi_missing() -> list[str]:
    """The PyPI peers whose stamped pin differs from ``PYPI_PEERS`` or whose virtualenv is gone."""
    stamped = (_read_stamp() or {}).get("pypi") or {}
    return [name for name, pin in PYPI_PEERS.items() if stamped.get(name) != pin or not venv_python(name).exists()]


def pypi_installed() -> bool:
    return not _pypi_missing()



def install(*, npm: bool = True, pypi: bool = True, log: Callable[[str], None] = print) -> Path:
    """Install what is missing; quick no-op when the stamp matches. Returns ``peers_dir()``."""
    root = peers_dir()
    root.mkdir(parents=True, exist_ok=True)
    stamp = _read_stamp() or {}
    if npm and not installed():
        reason = missing_reason()
        if reason:
            raise RuntimeError(f"cannot install npm peers: {reason}")
        _install_npm(root, log)
        stamp["npm"] = NPM_PACKAGES
        _write_stamp(root, stamp)
    if pypi:
        for name in _pypi_missing():
            _install_venv(root / name, PYPI_PEERS[name], log)
            stamp["pypi"] = {**(stamp.get("pypi") or {}), name: PYPI_PEERS[name]}
            _write_stamp(root, stamp)
    return root


def _write_stamp(root: Path, stamp: dict[str, Any]) -> None:
    tmp = root / (_STAMP + ".tmp")
    tmp.write_text(json.dumps(stamp, sort_keys=True))
    tmp.replace(root / _STAMP)


def _install_npm(root: Path, log: Callable[[str], None]) -> None:
    manifest = {"name": "meshd-peers", "private": True, "version": "0.0.0", "dependencies": NPM_PACKAGES}
    (root / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    specs = [f"{name}@{version}" for name, version in NPM_PACKAGES.items()]
    log(f"installing npm peers into {root}: {' '.join(specs)}")
    cmd = ["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", "--loglevel=error", *specs]
    subprocess.run(cmd, check=True, cwd=root, timeout=900)


def _install_venv(venv: Path, pin: str, log: Callable[[str], None]) -> None:
    if not (venv / "bin" / "python").exists():
        log(f"creating virtualenv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    log(f"installing {pin} into {venv}")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *pin.split()], check=True, timeout=900)


def node_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for running node against the installed peers (``NODE_PATH`` set)."""
    env = dict(os.environ)
    env["NODE_PATH"] = str(node_modules())
    env.setdefault("NODE_NO_WARNINGS", "1")
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def script(name: str) -> Path:
    """Path of a helper script shipped in ``integration/peers/`` (``"bolt_server"`` or ``"bolt_server.js"``)."""
    path = SCRIPTS_DIR / (name if name.endswith(".js") else name + ".js")
    if not path.exists():
        raise FileNotFoundError(f"no peer script {path}")
    return path


def _script_path(name: str | os.PathLike[str]) -> str:
    text = os.fspath(name)
    return text if os.sep in text else str(script(text))


def run_node(name: str | os.PathLike[str], *args: Any, env: dict[str, str] | None = None,
             timeout: float = 60.0, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run a node script to completion and return the completed process (stdout as text)."""
    cmd = ["node", _script_path(name), *map(str, args)]
    return subprocess.run(cmd, env=node_env(env), capture_output=True, text=True, timeout=timeout,
                          input=input.decode() if input is not None else None, cwd=peers_dir())


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every JSON object printed one per line (other lines are ignored)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


class NodeProcess:
    """A background node script whose stdout JSON lines are collected by a reader thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            for obj in json_lines(line):
                self.lines.put(obj)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_json(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """Return the first JSON line (from now on) for which ``pred`` is true; raise on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"node script gave no matching line in {timeout}s; stderr: {''.join(self.stderr)[-2000:]}")
            try:
                obj = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise RuntimeError(f"node script exited with {self.proc.returncode}; "
                                       f"stderr: {''.join(self.stderr)[-2000:]}") from None
                continue
            if pred(obj):
                return obj

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)

    def __enter__(self) -> "NodeProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_node(name: str | os.PathLike[str], *args: Any, env: dict[str, str] | None = None) -> NodeProcess:
    """Start a node script in the background; use ``wait_json`` for its readiness line."""
    cmd = ["node", _script_path(name), *map(str, args)]
    proc = subprocess.Popen(cmd, env=node_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=peers_dir() if peers_dir().exists() else None)
    return NodeProcess(proc)


def python_script(name: str) -> Path:
    """Path of a Python helper script shipped in ``integration/peers/`` (``"anthunder_provider"`` or with ``.py``)."""
    path = SCRIPTS_DIR / (name if name.endswith(".py") else name + ".py")
    if not path.exists():
        raise FileNotFoundError(f"no peer script {path}")
    return path


def _python_cmd(peer: str, name: str, args: tuple[Any, ...]) -> list[str]:
    python = venv_python(peer)
    if not python.exists():
        raise RuntimeError(f"PyPI peer {peer!r} is not installed (no {python}): "
                           "run `python -m integration.peers install`")
    return [str(python), str(python_script(name)), *map(str, args)]


def run_python(peer: str, name: str, *args: Any, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a Python helper script with PyPI peer ``peer``'s interpreter to completion (stdout as text)."""
    return subprocess.run(_python_cmd(peer, name, args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def start_python(peer: str, name: str, *args: Any) -> NodeProcess:
    """Start a Python helper script in the background (stdin open for its commands); ``wait_json`` reads it."""
    proc = subprocess.Popen(_python_cmd(peer, name, args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return NodeProcess(proc)


def start_server(name: str, *args: Any, env: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[NodeProcess, int]:
    """Start a server script and wait for its ``{"event": "listening", "port": N}`` line."""
    node = start_node(name, *args, env=env)
    try:
        ready = node.wait_json(lambda o: o.get("event") == "listening", timeout=timeout)
    except BaseException:
        node.stop()
        raise
    return node, int(ready["port"])


class ByteTap:
    """A loopback TCP relay that records every chunk in both directions (the byte tap of docs/testing.md, in a thread).

    ``start()`` returns the port to connect to; bytes go on to ``target_port``. ``records`` holds
    ``(connection index, "C>S" | "S>C", bytes)`` in arrival order; ``stream(direction, conn)`` joins them.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.records: list[tuple[int, str, bytes]] = []
        self._lock = threading.Lock()
        self._loop: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._conns = 0
        self.port = 0

    def start(self) -> int:
        import asyncio
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self.port = fut.result(timeout=10)
        return self.port

    async def _serve(self) -> int:
        import asyncio
        self._server = await asyncio.start_server(self._on_conn, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _on_conn(self, cr: Any, cw: Any) -> None:
        import asyncio
        index = self._conns
        self._conns += 1
        try:
            sr, sw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(self._pump(index, "C>S", cr, sw), self._pump(index, "S>C", sr, cw))

    async def _pump(self, index: int, tag: str, reader: Any, writer: Any) -> None:
        try:
            while data := await reader.read(65536):
                with self._lock:
                    self.records.append((index, tag, data))
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def stream(self, direction: str, conn: int | None = None) -> bytes:
        with self._lock:
            return b"".join(d for c, t, d in self.records if t == direction and (conn is None or c == conn))

    def write_log(self, path: str | os.PathLike[str]) -> None:
        """One line per chunk: ``<conn> <C>S|S>C> <hex>``."""
        with self._lock, open(path, "w") as f:
            for conn, tag, data in self.records:
                f.write(f"{conn} {tag} {data.hex()}\n")

    def stop(self) -> None:
        if self._loop is None:
            return
        async def close() -> None:
            self._server.close()
        import asyncio
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=5)
        self._loop = None


def read_tap_log(path: str | os.PathLike[str]) -> list[tuple[int, str, bytes]]:
    """Parse a :meth:`ByteTap.write_log` file."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            conn, tag, hexdata = line.split()
            out.append((int(conn), tag, bytes.fromhex(hexdata)))
    return out


# Capture scenarios for tests/fixtures/captures: (file, server script, server args, [client script + args]).
CAPTURES: list[tuple[str, str, list[str], list[tuple[str, list[str]]]]] = [
    ("dubbo_js_to_sofa_dubbo.tap", "dubbo_provider", [], [
        ("dubbo_consumer", ["--method", "sayHello", "--args", '["world",7]', "--count", "2"]),
        ("dubbo_consumer", ["--method", "fail", "--args", '["boom"]']),
        ("dubbo_consumer", ["--method", "add", "--args", "[3,4]", "--types", "int,long", "--group", "blue"]),
        ("dubbo_consumer", ["--method", "echo", "--args", '["h\\u00e9llo \\u4e16\\u754c \\ud83d\\ude00"]']),
    ]),
    ("sofa_node_bolt_draft.tap", "bolt_server", [], [
        ("bolt_client", ["--method", "add", "--args", "[1,2]", "--count", "2"]),
        ("bolt_client", ["--method", "greet", "--args", '["bolt"]', "--types", "java.lang.String"]),
        ("bolt_client", ["--method", "fail", "--args", '["boom"]']),
        ("bolt_client", ["--method", "echo", "--args", '[{"k":[1,2.5,"x",true,null]}]']),
        ("bolt_client", ["--interface", "no.Such", "--method", "add", "--args", "[1,2]"]),
    ]),
    ("sofa_node_bolt_final.tap", "bolt_server", ["--hessian", "4.0"], [
        ("bolt_client", ["--hessian", "4.0", "--method", "add", "--args", "[1,2]"]),
        ("bolt_client", ["--hessian", "4.0", "--method", "greet", "--args", '["bolt"]', "--types", "java.lang.String"]),
    ]),
]


def capture(out_dir: str | os.PathLike[str], log: Callable[[str], None] = print) -> list[Path]:
    """Run every scenario in :data:`CAPTURES` through a :class:`ByteTap`; write one tap log per scenario."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, server, server_args, clients in CAPTURES:
        node, port = start_server(server, *server_args)
        tap = ByteTap(port)
        try:
            tap_port = tap.start()
            for client, args in clients:
                proc = run_node(client, "--address", f"127.0.0.1:{tap_port}", *args, timeout=60)
                log(f"{filename}: {client} {' '.join(args)} -> {proc.stdout.strip().splitlines()[-1:]}")
            time.sleep(0.2)
        finally:
            node.stop()
            tap.stop()
        tap.write_log(out / filename)
        written.append(out / filename)
    return written


def fingerprint() -> str:
    """A short hash of the pins (for cache keys in CI)."""
    return hashlib.sha256(json.dumps(_wanted_stamp(), sort_keys=True).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integration.peers", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install the npm and PyPI peers (idempotent)")
    inst.add_argument("--npm-only", action="store_true")
    inst.add_argument("--pypi-only", action="store_true")
    sub.add_parser("status", help="print what is installed")
    cap = sub.add_parser("capture", help="record real peer traffic into tap logs (tests/fixtures/captures)")
    cap.add_argument("out_dir")
    args = parser.parse_args(argv)
    if args.command == "status":
        print(json.dumps({"dir": str(peers_dir()), "node_npm": missing_reason() or "ok", "npm_installed": installed(),
                          "pypi_installed": pypi_installed(), "pins": _wanted_stamp()}, indent=2))
        return 0
    if args.command == "capture":
        install(pypi=False)
        capture(args.out_dir)
        return 0
    reason = missing_reason()
    if reason and not args.pypi_only:
        print(f"skipping npm peers: {reason}", file=sys.stderr)
    root = install(npm=not args.pypi_only and reason is None, pypi=not args.npm_only)
    print(f"peers ready in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
