"""testcontainers modules for meshd's integration suites (and for users' own suites).

Every container runs with **host networking** and binds ``127.0.0.1`` on ports chosen free here and
passed in as configuration, so a test talks to ``127.0.0.1:<port>`` and never to a bridge address.
Readiness is observed, not slept for: ``ruok`` → ``imok`` and a serving ``stat`` for ZooKeeper,
``GET /healthz`` then ``GET /ready`` for meshd. A container that exits while we wait raises :class:`ContainerNotReady` with
its logs.

Cleanup does not depend on the Ryuk reaper (it cannot be pulled here; ``TESTCONTAINERS_RYUK_DISABLED``
defaults to true): every container carries the labels ``meshd.integration``, ``...session`` (this
process's session id) and ``...owner`` (host, pid and pid start time). :func:`reap_session` removes a
session's containers (fixture teardown, session end); :func:`reap_leftovers` removes those whose owning
process is gone (session start), so a killed test run leaves nothing behind for long.

Images default to the locally built, content-hashed ones (:mod:`integration.images`), built on first
use when missing; ``MESHD_IMAGE_SOURCE=registry`` switches to official images.

    with ZooKeeperContainer() as zk:                      # zk.address == "127.0.0.1:<free port>"
        kazoo = KazooClient(zk.connection_string("/t1"))
    with MeshdContainer({"listeners": [], "clusters": []}) as m:   # admin address chosen free
        assert m.admin_get("/ready").status == 200
"""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker  # noqa: E402  (after the Ryuk default above)
import yaml  # noqa: E402
from testcontainers.core.config import testcontainers_config  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

from integration.images.recipes import REPOSITORY  # noqa: E402
from integration.ports import free_port  # noqa: E402
from integration.zookeeper import four_letter_word, serving  # noqa: E402

if os.environ["TESTCONTAINERS_RYUK_DISABLED"].lower() in ("1", "true", "yes"):
    testcontainers_config.ryuk_disabled = True

LABEL = "meshd.integration"
LABEL_SESSION = "meshd.integration.session"
LABEL_OWNER = "meshd.integration.owner"
SESSION_ID = uuid.uuid4().hex[:16]
LOOPBACK = "127.0.0.1"
MESHD_CONFIG_PATH = "/etc/meshd/meshd.yaml"


class ContainerNotReady(RuntimeError):
    """The container exited or did not become ready in time; the message carries its last logs."""


class ImageMissing(RuntimeError):
    """The image is not present and cannot be built or pulled here; the message says what to run."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str        # stdout and stderr, interleaved


# ---------------------------------------------------------------------------------------------- labels
def _process_start(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def owner_label(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def labels() -> dict[str, str]:
    return {LABEL: "true", LABEL_SESSION: SESSION_ID, LABEL_OWNER: owner_label()}


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True          # another machine's container: not ours to judge
    return Path(f"/proc/{pid}").exists() and _process_start(int(pid)) == started


def reap_session(session: str = SESSION_ID, client=None) -> list[str]:
    """Force-remove every container of ``session`` (default: this process's); returns their ids."""
    return _remove(client, {"label": f"{LABEL_SESSION}={session}"}, lambda c: True)


def reap_leftovers(client=None) -> list[str]:
    """Force-remove labelled containers whose owning process (on this host) no longer exists."""
    return _remove(client, {"label": LABEL}, lambda c: not _owner_alive(c.labels.get(LABEL_OWNER, "")))


def _remove(client, filters: dict, doomed) -> list[str]:
    client = client or docker.from_env()
    removed = []
    for container in client.containers.list(all=True, filters=filters):
        if doomed(container):
            try:
                container.remove(force=True, v=True)
                removed.append(container.id)
            except docker.errors.NotFound:
                pass
    return removed


# ---------------------------------------------------------------------------------------------- images
_tags = None
_tags_lock = threading.Lock()


def default_images():
    """The current :class:`integration.images.Tags`, building missing images once per process.

    Makes sure an engine answers first (it may start an installed dockerd, never installs one) and
    raises :class:`integration.docker_engine.EngineUnavailable` naming what is missing otherwise.
    """
    global _tags
    with _tags_lock:
        if _tags is None:
            from integration.docker_engine import ensure
            from integration.images import ensure_images
            ensure(install=False)
            _tags = ensure_images(log=lambda line: print(f"images: {line}", flush=True))
        return _tags


# ------------------------------------------------------------------------------------------- the base
class LoopbackContainer(DockerContainer):
    """A labelled container on the host network whose ``start()`` returns once ``probe()`` says ready.

    Subclasses override :meth:`probe` (one readiness check, no waiting) and :meth:`describe_wait`.
    """

    ready_timeout = 60.0

    def __init__(self, image: str, *, ready_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        self.with_kwargs(network="host", labels=labels())
        if ready_timeout is not None:
            self.ready_timeout = ready_timeout

    def start(self) -> "LoopbackContainer":
        self._check_image()
        super().start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_image(self) -> None:
        try:
            self.get_docker_client().client.images.get(self.image)
        except docker.errors.ImageNotFound:
            if self.image.startswith(f"{REPOSITORY}/"):      # ours: built here, never pulled
                raise ImageMissing(f"image {self.image} is not built: run `make images` "
                                   "(python -m integration.images build)") from None
            # anything else is a registry image that testcontainers pulls

    def run_once(self, timeout: float = 60.0) -> "CommandResult":
        """Run the container's command to completion (no readiness wait), return its exit code and logs."""
        self._check_image()
        DockerContainer.start(self)
        try:
            exit_code = self.get_wrapped_container().wait(timeout=timeout)["StatusCode"]
            return CommandResult(exit_code, self.logs_text(tail=1000))
        finally:
            self.stop()

    def probe(self) -> bool:
        return True

    def describe_wait(self) -> str:
        return "ready"

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll :meth:`probe` until it answers; raise :class:`ContainerNotReady` if the container exits."""
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            status = self.status_now()
            if status in ("exited", "dead"):
                raise ContainerNotReady(f"{self!r} exited before it was {self.describe_wait()} "
                                        f"(exit code {self.exit_code()}); logs:\n{self.logs_text()}")
            if status == "running" and self.probe():
                return
            if time.monotonic() > deadline:
                raise ContainerNotReady(f"{self!r} not {self.describe_wait()} after {timeout:.0f}s; "
                                        f"logs:\n{self.logs_text()}")
            time.sleep(0.1)

    def status_now(self) -> str:
        container = self.get_wrapped_container()
        container.reload()
        return container.status

    def exit_code(self) -> int | None:
        return self.get_wrapped_container().attrs.get("State", {}).get("ExitCode")

    def logs_text(self, tail: int = 200) -> str:
        """The last ``tail`` lines of stdout+stderr (empty when the container is gone)."""
        if self._container is None:
            return ""
        try:
            data = self._container.logs(stdout=True, stderr=True, tail=tail)
        except docker.errors.NotFound:
            return ""
        return data.decode(errors="replace")

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        """Remove the container (idempotent: an already removed container is fine)."""
        try:
            super().stop(force=force, delete_volume=delete_volume)
        except docker.errors.NotFound:
            pass
        self._container = None

    def __repr__(self) -> str:
        short = self._container.short_id if self._container else "not started"
        return f"<{type(self).__name__} {self.image} {short}>"


# ------------------------------------------------------------------------------------------- ZooKeeper
class ZooKeeperContainer(LoopbackContainer):
    """A standalone ZooKeeper 3.8 on ``127.0.0.1:<port>`` (free port unless given).

    ``official`` selects the official image's layout (``zkServer.sh``); by default it follows the image
    source. The zoo.cfg (docs/testing.md) reaches the container as ``$ZK_CONFIG``.
    """

    DATA_DIR = "/tmp/zookeeper-data"
    OFFICIAL_START = ('mkdir -p /run/zk && printf "%s\\n" "$ZK_CONFIG" > /run/zk/zoo.cfg '
                      '&& exec zkServer.sh start-foreground /run/zk/zoo.cfg')

    def __init__(self, image: str | None = None, *, port: int | None = None, tick_time_ms: int = 2000,
                 official: bool | None = None, **kwargs: Any) -> None:
        if image is None:
            tags = default_images()
            image, official = tags.zookeeper, tags.zookeeper_official if official is None else official
        super().__init__(image, **kwargs)
        self.port = port or free_port()
        self.tick_time_ms = tick_time_ms
        self.with_env("ZK_CONFIG", self.zoo_cfg())
        if official:
            self.with_command(["sh", "-c", self.OFFICIAL_START])

    def zoo_cfg(self) -> str:
        return "\n".join([
            f"tickTime={self.tick_time_ms}", f"dataDir={self.DATA_DIR}", f"clientPort={self.port}",
            f"clientPortAddress={LOOPBACK}", "admin.enableServer=false", "4lw.commands.whitelist=ruok,stat,srvr",
        ])

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def connection_string(self, chroot: str = "") -> str:
        """``127.0.0.1:<port>[/chroot]`` for kazoo and meshd's ``servers``."""
        if chroot and not chroot.startswith("/"):
            raise ValueError(f"chroot must start with '/': {chroot!r}")
        return self.address + chroot.rstrip("/")

    def four_letter_word(self, word: str, timeout: float = 1.0) -> str:
        return four_letter_word(LOOPBACK, self.port, word, timeout)

    def probe(self) -> bool:
        return serving(LOOPBACK, self.port)

    def describe_wait(self) -> str:
        return f"serving sessions on {self.address} (ruok answers imok and stat reports the version)"

    def kazoo_client(self, chroot: str = "", **kwargs: Any):
        """A started ``KazooClient`` on this server; the caller stops and closes it."""
        from kazoo.client import KazooClient
        client = KazooClient(hosts=self.connection_string(chroot), **kwargs)
        client.start(timeout=15)
        return client


# ------------------------------------------------------------------------------------------------ meshd
@dataclass(frozen=True)
class AdminResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def load_config(config: dict | str | Path | None) -> dict:
    """A deep copy of ``config`` as a dict: a mapping, YAML/JSON text, or a path to a file."""
    if config is None:
        return {"listeners": [], "clusters": []}
    if isinstance(config, Path):
        config = config.read_text()
    if isinstance(config, str):
        config = yaml.safe_load(config)
    if not isinstance(config, dict):
        raise TypeError(f"meshd config must be a mapping, YAML/JSON text or a Path, got {type(config).__name__}")
    return copy.deepcopy(config)


def assign_ports(config: dict, pick=free_port) -> dict:
    """Fill in free loopback ports: ``admin.address`` when absent, and every address ending in ``:0``."""
    admin = config.setdefault("admin", {})
    if not admin.get("address"):
        admin["address"] = f"{LOOPBACK}:{pick()}"
    places = [admin, *config.get("listeners", [])]
    places += [api for api in (config.get("registry_api") or {}).values() if isinstance(api, dict)]
    for place in places:
        address = place.get("address")
        if isinstance(address, str) and address.rsplit(":", 1)[-1] == "0":
            place["address"] = f"{address.rsplit(':', 1)[0]}:{pick()}"
    return config


class MeshdContainer(LoopbackContainer):
    """``meshd run -c /etc/meshd/meshd.yaml`` with ``config`` written into the container.

    ``config`` is a dict, YAML/JSON text or a Path; missing ``admin.address`` and addresses ending in
    ``:0`` get free loopback ports (read them back with :attr:`admin_address`, :meth:`listener_address`).
    """

    def __init__(self, config: dict | str | Path | None = None, *, image: str | None = None,
                 log_level: str = "info", command: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(image or default_images().meshd, **kwargs)
        self.config = assign_ports(load_config(config))
        self.config_text = yaml.safe_dump(self.config, sort_keys=False)
        self.with_copy_into_container(self.config_text.encode(), MESHD_CONFIG_PATH)
        self.with_command(command or ["run", "-c", MESHD_CONFIG_PATH, "--log-level", log_level])
        self._last_wait = "not probed yet"

    # -- addresses ----------------------------------------------------------------------------------
    @property
    def admin_address(self) -> str:
        return self.config["admin"]["address"]

    def listener_address(self, name: str) -> str:
        for listener in self.config.get("listeners", []):
            if listener.get("name") == name:
                return listener["address"]
        raise KeyError(f"no listener named {name!r} in the config (have "
                       f"{[x.get('name') for x in self.config.get('listeners', [])]})")

    def listener_port(self, name: str) -> int:
        return int(self.listener_address(name).rsplit(":", 1)[1])

    def registry_api_address(self, kind: str) -> str:
        """``sofa`` or ``dubbo``: the app-facing registry API's address."""
        return self.config["registry_api"][kind]["address"]

    # -- admin API ----------------------------------------------------------------------------------
    def admin_url(self, path: str) -> str:
        return f"http://{self.admin_address}/{path.lstrip('/')}"

    def admin_request(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> AdminResponse:
        """One request to the admin API; 4xx/5xx come back as responses, connection errors raise OSError."""
        data, headers = None, {}
        if body is not None:
            data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
            headers["Content-Type"] = "application/json" if not isinstance(body, (bytes, str)) else "text/plain"
        request = urllib.request.Request(self.admin_url(path), data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return AdminResponse(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as error:
            return AdminResponse(error.code, error.read(), dict(error.headers))

    def admin_get(self, path: str, timeout: float = 5.0) -> AdminResponse:
        return self.admin_request("GET", path, timeout=timeout)

    def admin_put(self, path: str, body: Any, timeout: float = 5.0) -> AdminResponse:
        return self.admin_request("PUT", path, body, timeout=timeout)

    def admin_post(self, path: str, body: Any = None, timeout: float = 5.0) -> AdminResponse:
        return self.admin_request("POST", path, body, timeout=timeout)

    # -- readiness ----------------------------------------------------------------------------------
    def probe(self) -> bool:
        """``GET /healthz`` must answer 200, then ``GET /ready`` 200."""
        try:
            for path in ("/healthz", "/ready"):
                response = self.admin_get(path, timeout=1.0)
                if response.status != 200:
                    self._last_wait = f"{path} answered {response.status}: {response.text.strip()[:300]}"
                    return False
        except (OSError, urllib.error.URLError) as exc:
            self._last_wait = f"admin API not answering: {exc}"
            return False
        return True

    def describe_wait(self) -> str:
        return f"ready on {self.admin_address} (last: {self._last_wait})"


def run_meshd(args: list[str], config: dict | str | Path | None = None, *, image: str | None = None,
              timeout: float = 60.0) -> "CommandResult":
    """Run one ``meshd <args>`` in a throw-away container (config, when given, at /etc/meshd/meshd.yaml)."""
    container = LoopbackContainer(image or default_images().meshd)
    if config is not None:
        text = config if isinstance(config, str) else yaml.safe_dump(load_config(config), sort_keys=False)
        container.with_copy_into_container(text.encode(), MESHD_CONFIG_PATH)
    return container.with_command(args).run_once(timeout)


# ------------------------------------------------------------------------------------------------ Nacos
NACOS_IMAGE = "nacos/nacos-server:v2.4.3"     # the official image, standalone mode


class NacosContainer(LoopbackContainer):
    """The official Nacos server (``nacos/nacos-server``) in standalone mode on ``127.0.0.1``: HTTP on ``port``
    (a free one unless given), gRPC on ``port + 1000`` as the clients expect.

    It has no Debian package and cannot be built from one, so it is only pulled from an image registry
    (``MESHD_IMAGE_SOURCE=registry``); the ``nacos`` fixture skips, saying so, where none is reachable. The
    in-process test server (``integration.nacos``, fixture ``nacos_server``) is what runs everywhere.
    """

    ready_timeout = 120.0

    def __init__(self, image: str = NACOS_IMAGE, *, port: int | None = None, **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        self.port = port or free_port()
        self.with_env("MODE", "standalone").with_env("NACOS_APPLICATION_PORT", str(self.port))
        self.with_env("NACOS_AUTH_ENABLE", "false").with_env("JVM_XMS", "256m").with_env("JVM_XMX", "256m")

    @property
    def server_addr(self) -> str:
        """``127.0.0.1:<port>``: what the clients and meshd's ``server_addresses`` take."""
        return f"{LOOPBACK}:{self.port}"

    def probe(self) -> bool:
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://{self.server_addr}/nacos/v1/console/health/readiness",
                                        timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def describe_wait(self) -> str:
        return f"ready on {self.server_addr} (/nacos/v1/console/health/readiness answers 200)"
