"""pytest plugin ``meshd`` (entry point ``pytest11``): container fixtures for integration suites.

Fixtures (the Docker ones skip with ``Docker engine not available: <what is missing>`` when no engine
answers and none can be started; the session never breaks because of a missing engine):

``docker_engine`` (session)
    A ``docker`` SDK client for a running engine (``integration.docker_engine.ensure(install=False)``:
    it may start an installed dockerd, it never installs). Removes leftover containers of dead test
    processes first, and this session's containers at the end.
``meshd_images`` (session)
    :class:`integration.images.Tags` of the current inputs, building what is missing.
``zookeeper`` (session)
    A :class:`~integration.containers.ZooKeeperContainer` shared by the session.
``zk_chroot`` (function)
    A fresh, empty chroot path (``/meshd-it/<test>-<id>``) created before and deleted after the test:
    pass ``zookeeper.connection_string(zk_chroot)`` to whatever the test starts.
``zk_client`` (function)
    A started kazoo client rooted at ``zk_chroot``.
``meshd`` (function; also ``meshd_container``)
    A factory: ``meshd(config, **kwargs) -> MeshdContainer`` (started and ready); all of a test's
    containers are removed at its teardown, also when it failed.
``xds_server``, ``xds_backends``, ``xds_client`` (function)
    An ADS control plane in-process (SotW and Delta, a snapshot API, the ACK/NACK log), real gRPC
    backends, and the grpcio / grpc-js-xds clients that route by it (:mod:`integration.xds.fixtures`).
``nacos_server``, ``nacos_server_factory`` (function)
    A Nacos server in-process (gRPC on P+1000 and the v1 HTTP API on P, with test controls)
    (:mod:`integration.nacos.fixtures`).
``sofaregistry_server``, ``sofaregistry_server_factory`` (function)
    A SOFARegistry session server in-process (Bolt + hessian2, the classes of sofa-registry's session server,
    with test controls) (:mod:`integration.sofaregistry.fixtures`).
``nacos`` (session)
    The official ``nacos/nacos-server`` in a container (:class:`~integration.containers.NacosContainer`);
    skips, saying why, unless ``MESHD_IMAGE_SOURCE=registry`` (no image registry is reachable otherwise).

Isolation per test: own chroot, own meshd containers, fresh free ports. On a failed test the logs of
its meshd containers are attached to the report. Tests using these fixtures get the ``docker`` marker.
Importing this module is cheap: docker, testcontainers and kazoo are imported inside the fixtures.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from integration.nacos.fixtures import nacos_server, nacos_server_factory  # noqa: F401  (exported fixtures)
from integration.sofaregistry.fixtures import sofaregistry_server, sofaregistry_server_factory  # noqa: F401
from integration.xds.fixtures import xds_backends, xds_client, xds_server  # noqa: F401  (exported fixtures)
from integration.zookeeper import fresh_chroot

_containers_key = pytest.StashKey[list]()
_engine_state: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a running Docker engine and locally built images")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # every Docker fixture depends on docker_engine, and fixturenames is the closure of what a test
        # uses, so a ``meshd`` fixture overridden by a conftest (not container-backed) is not marked
        if "docker_engine" in getattr(item, "fixturenames", ()):
            item.add_marker("docker")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for container in item.stash.get(_containers_key, []):
            report.sections.append((f"logs of {container!r}", container.logs_text() or "(no output)"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    client = _engine_state.get("client")
    if client is not None:
        from integration.containers import reap_session
        reap_session(client=client)


# -------------------------------------------------------------------------------------------- engine
def _engine() -> Any:
    """The docker client, or ``pytest.skip`` naming what is missing (decided once per session)."""
    if "skip" in _engine_state:
        pytest.skip(_engine_state["skip"])
    if "client" not in _engine_state:
        try:
            import docker
            import testcontainers  # noqa: F401
            from integration import docker_engine
        except ImportError as exc:
            _engine_state["skip"] = f"Docker engine not available: Python package {exc.name!r} is not installed"
            pytest.skip(_engine_state["skip"])
        try:
            docker_engine.ensure(install=False)
        except docker_engine.EngineUnavailable as exc:
            _engine_state["skip"] = f"Docker engine not available: {exc}"
            pytest.skip(_engine_state["skip"])
        from integration.containers import reap_leftovers
        client = docker.from_env(timeout=120)
        reap_leftovers(client)
        _engine_state["client"] = client
    return _engine_state["client"]


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    return _engine()


@pytest.fixture(scope="session")
def meshd_images(docker_engine: Any) -> Any:
    from integration.containers import default_images
    return default_images()


# ---------------------------------------------------------------------------------------------- nacos
@pytest.fixture(scope="session")
def nacos(docker_engine: Any) -> Iterator[Any]:
    """The official Nacos server in a container (where an image registry is reachable)."""
    from integration.containers import NacosContainer
    from integration.images.recipes import image_source
    if image_source() != "registry":
        pytest.skip("nacos/nacos-server is only pulled from an image registry and none is reachable here "
                    "(MESHD_IMAGE_SOURCE=local); use the in-process nacos_server fixture, or set "
                    "MESHD_IMAGE_SOURCE=registry where a registry is reachable")
    container = NacosContainer().start()
    try:
        yield container
    finally:
        container.stop()


# ----------------------------------------------------------------------------------------- zookeeper
@pytest.fixture(scope="session")
def zookeeper(meshd_images: Any) -> Iterator[Any]:
    from integration.containers import ZooKeeperContainer
    container = ZooKeeperContainer().start()
    try:
        yield container
    finally:
        container.stop()


@pytest.fixture
def zk_chroot(zookeeper: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_chroot(zookeeper, request.node.name) as path:
        yield path


@pytest.fixture
def zk_client(zookeeper: Any, zk_chroot: str) -> Iterator[Any]:
    client = zookeeper.kazoo_client(zk_chroot)
    try:
        yield client
    finally:
        client.stop()
        client.close()


# --------------------------------------------------------------------------------------------- meshd
@pytest.fixture
def meshd_container(meshd_images: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``meshd_container(config, **kwargs)`` starts a MeshdContainer and waits for /healthz and /ready."""
    from integration.containers import MeshdContainer
    started: list[Any] = []
    request.node.stash[_containers_key] = started

    def start(config: Any = None, **kwargs: Any) -> Any:
        container = MeshdContainer(config, **kwargs)
        started.append(container)
        return container.start()

    try:
        yield start
    finally:
        for container in started:
            container.stop()


@pytest.fixture
def meshd(meshd_container: Callable[..., Any]) -> Callable[..., Any]:
    """The same factory as ``meshd_container`` (that name survives a conftest that defines its own ``meshd``)."""
    return meshd_container
