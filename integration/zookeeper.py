"""A real ZooKeeper server for tests (modelled on kazoo's ``kazoo/testing/harness.py``).

:class:`ZooKeeperServer` runs Debian's ZooKeeper 3.8 (package ``zookeeper``, jars in ``/usr/share/java``) as a
standalone Java process bound to ``127.0.0.1`` on a free port, with a fresh temporary ``dataDir``::

    reason = ZooKeeperServer.available()          # None, or why it cannot run ("Debian package 'zookeeper' ...")
    with ZooKeeperServer() as zk:                 # start() waits for `ruok` → `imok` and a serving `stat`
        client = KazooClient(zk.hosts("/my-chroot")); client.start()
        zk.stop(); zk.start()                     # same port and data dir: sessions resume (or expire)
        zk.expire_session(client)                 # real server-side expiry, then waits for the reconnect
        zk.drop_connection(client)                # the client's TCP connection is cut; it reconnects
        zk.kazoo_client()                         # a started client as the superuser: ACLs do not apply
        with fresh_chroot(zk, "my test") as chroot:   # /meshd-it/my_test-<id>, deleted with its contents after
        with ZooKeeperProxy(zk.address) as proxy:  # clients connect to proxy.address instead ...
            proxy.partition()                     # ... and lose their connections until proxy.heal()

Faults are real: ``expire_session`` uses the standard trick (a second client attaches to the same session id and
password and closes it, so the server ends the session) and ``drop_connection`` shuts the client's socket down.
``stop()`` kills only the process this object started (by its PID). :class:`ZooKeeperProxy` is a loopback TCP
forwarder: ``partition()`` cuts every connection through it and refuses new ones (the server stays up, so a
long enough partition expires sessions server-side), ``heal()`` lets clients back in. The server and proxy
objects are meant to be driven from one test thread.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from integration.ports import free_port

JAR_DIR = Path("/usr/share/java")
#: The classpath of the Debian 3.8 server (docs/testing.md); each jar comes from the package named beside it,
#: all of which the Debian package ``zookeeper`` depends on.
CLASSPATH: tuple[tuple[str, str], ...] = (
    ("zookeeper.jar", "libzookeeper-java"), ("zookeeper-jute.jar", "libzookeeper-java"),
    ("slf4j-api.jar", "libslf4j-java"), ("slf4j-simple.jar", "libslf4j-java"),
    ("commons-cli.jar", "libcommons-cli-java"), ("metrics-core.jar", "libdropwizard-metrics-java"),
    ("snappy-java.jar", "libsnappy-java"), ("jackson-databind.jar", "libjackson2-databind-java"),
    ("jackson-core.jar", "libjackson2-core-java"), ("jackson-annotations.jar", "libjackson2-annotations-java"),
)
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
#: Digest credentials of the server's superuser (bypasses ACLs), for fixtures that must clean up anything.
SUPER_AUTH = ("digest", "super:meshd-test")
#: Where :func:`fresh_chroot` puts the per-test chroots.
CHROOT_ROOT = "/meshd-it"


class ZooKeeperError(RuntimeError):
    """The server could not be started, or a fault could not be injected; the message says why."""


def four_letter_word(host: str, port: int, word: str, timeout: float = 1.0) -> str:
    """Send a ZooKeeper four-letter command (``ruok``, ``stat``) and return the reply ("" if none)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(word.encode())
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode(errors="replace")


def serving(host: str, port: int) -> bool:
    """Whether the server serves sessions: ``ruok`` answers imok already before it does, ``stat`` tells
    (its first line is the version only once the server is running)."""
    return four_letter_word(host, port, "ruok", timeout=0.5) == "imok" and \
        four_letter_word(host, port, "stat", timeout=0.5).startswith("Zookeeper version")


class ZooKeeperServer:
    """One standalone ZooKeeper on ``127.0.0.1:port``; see the module docstring."""

    def __init__(self, port: int = 0, *, tick_time_ms: int = 2000, jar_dir: Path | str = JAR_DIR,
                 java: str | None = None, startup_timeout: float = 30.0) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.tick_time_ms = tick_time_ms
        self.jar_dir = Path(jar_dir)
        self.java = java or shutil.which("java") or "java"
        self.startup_timeout = startup_timeout
        self._dir = Path(tempfile.mkdtemp(prefix="meshd-zk-"))
        self.data_dir = self._dir / "data"
        self.data_dir.mkdir()
        self.log_path = self._dir / "zookeeper.log"
        self._proc: subprocess.Popen | None = None
        self._log = None

    # -- availability ---------------------------------------------------------------------------------
    @staticmethod
    def available(jar_dir: Path | str = JAR_DIR) -> str | None:
        """None when the server can run here, else the reason (naming the missing package)."""
        jar_dir = Path(jar_dir)
        missing = [f"{jar} ({pkg})" for jar, pkg in CLASSPATH if not (jar_dir / jar).exists()]
        if missing:
            return (f"Debian package 'zookeeper' not installed: missing {', '.join(missing)} in {jar_dir} "
                    "(`make test` installs it with apt)")
        if shutil.which("java") is None:
            return "no `java` on PATH (Debian package 'zookeeper' pulls in a JRE: openjdk-17-jre-headless)"
        return None

    # -- lifecycle --------------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def hosts(self, chroot: str = "") -> str:
        """A kazoo ``hosts`` string for this server, optionally with a chroot (``"/tests-1"``)."""
        return self.address + chroot

    def kazoo_client(self, chroot: str = "", **kwargs: Any):
        """A started ``KazooClient`` on this server as the superuser (ACLs a test set never block it); the
        caller stops and closes it."""
        from kazoo.client import KazooClient
        client = KazooClient(hosts=self.hosts(chroot), auth_data=[SUPER_AUTH], **kwargs)
        client.start(timeout=15)
        return client

    @staticmethod
    def _super_digest() -> str:
        user, _, _ = SUPER_AUTH[1].partition(":")
        digest = base64.b64encode(hashlib.sha1(SUPER_AUTH[1].encode()).digest()).decode()
        return f"{user}:{digest}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "ZooKeeperServer":
        """Start the Java process (same port and data dir as before) and wait until it serves sessions
        (``ruok`` → ``imok`` and ``stat`` reports a running server)."""
        if self.running:
            return self
        reason = self.available(self.jar_dir)
        if reason:
            raise ZooKeeperError(reason)
        config = self._dir / "zoo.cfg"
        config.write_text(
            f"tickTime={self.tick_time_ms}\ndataDir={self.data_dir}\nclientPort={self.port}\n"
            f"clientPortAddress={self.host}\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,stat\n"
        )
        classpath = os.pathsep.join(str(self.jar_dir / jar) for jar, _ in CLASSPATH)
        self._log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            [self.java, "-Xmx256m", "-Dzookeeper.jmx.log4j.disable=true",
             f"-Dzookeeper.DigestAuthenticationProvider.superDigest={self._super_digest()}",
             "-cp", classpath, MAIN_CLASS, str(config)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ZooKeeperError(f"ZooKeeper exited with {self._proc.returncode} on {self.address}: {self.log_tail()}")
            if serving(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise ZooKeeperError(f"ZooKeeper on {self.address} not ready after {self.startup_timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        """Kill the server process (SIGKILL, like a crash: sessions survive in the data dir) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the server and delete its data directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "ZooKeeperServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- faults -----------------------------------------------------------------------------------------
    def expire_session(self, client, timeout: float = 20.0) -> int:
        """Make the server expire ``client``'s session, wait until it has reconnected with a new session, and
        return the expired session id.

        The standard trick (a second client attaches to the same session id and password and closes it),
        shared with the container suites: :func:`integration.faults.expire_session`, which raises
        ``FaultError`` when the expiry or the reconnection does not happen in time.
        """
        from integration.faults import expire_session

        return expire_session(client, self, timeout=timeout)

    def drop_connection(self, client, timeout: float = 20.0, wait_reconnect: bool = True) -> None:
        """Cut ``client``'s TCP connection (the session survives); by default wait until it is back."""
        from kazoo.protocol.states import KazooState

        suspended, back = threading.Event(), threading.Event()

        def listener(state):
            if state == KazooState.SUSPENDED:
                suspended.set()
            elif state == KazooState.CONNECTED and suspended.is_set():
                back.set()
                return True
            return None

        client.add_listener(listener)
        sock = getattr(getattr(client, "_connection", None), "_socket", None)
        if sock is None:
            client.remove_listener(listener)
            raise ZooKeeperError("client has no open connection to drop")
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            client.remove_listener(listener)
            raise ZooKeeperError(f"could not shut the client's socket down: {exc}") from exc
        if not suspended.wait(timeout):
            raise ZooKeeperError(f"client did not notice the dropped connection within {timeout}s")
        if wait_reconnect and not back.wait(timeout):
            raise ZooKeeperError(f"client did not reconnect within {timeout}s")
        if not wait_reconnect:
            client.remove_listener(listener)

    def __repr__(self) -> str:
        return f"<ZooKeeperServer {self.address} {'running' if self.running else 'stopped'} data={self.data_dir}>"


@contextmanager
def fresh_chroot(server: Any, name: str) -> Iterator[str]:
    """Create ``/meshd-it/<name>-<id>`` (empty), yield its path, delete it with everything below it.
    ``server``: anything with ``kazoo_client()`` (:class:`ZooKeeperServer`, ``ZooKeeperContainer``)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
    path = f"{CHROOT_ROOT}/{safe}-{uuid.uuid4().hex[:8]}"
    admin = server.kazoo_client()
    try:
        admin.ensure_path(path)
        yield path
    finally:
        try:
            admin.delete(path, recursive=True)
        finally:
            admin.stop()
            admin.close()


class ZooKeeperProxy:
    """A TCP forwarder on a free 127.0.0.1 port in front of ``target`` (``host:port``), for partitions."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept_loop, name="zk-proxy", daemon=True)
        self._acceptor.start()

    def hosts(self, chroot: str = "") -> str:
        return self.address + chroot

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def partition(self) -> None:
        """Cut every connection and refuse new ones until :meth:`heal`."""
        self._open.clear()
        self.drop()

    def heal(self) -> None:
        self._open.set()

    def drop(self) -> None:
        """Cut every current connection (clients may reconnect at once unless partitioned)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _close(sock)

    def close(self) -> None:
        self._closed = True
        self.drop()
        _close(self._listener)
        self._acceptor.join(timeout=5)

    def __enter__(self) -> "ZooKeeperProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                _close(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._pairs.append((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)
            with self._lock:
                self._pairs = [p for p in self._pairs if src not in p]


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
