"""Fixtures of the container e2e suite (ZooKeeper and meshd in containers, real peers on the host).

The Docker fixtures (``zookeeper``, ``meshd``, ``meshd_images``, ...) come from the ``meshd`` pytest plugin
(``integration.pytest_plugin``) and skip with ``Docker engine not available: <what is missing>``.

``mesh_zookeeper``
    The ZooKeeper container the test's mesh uses: the session's shared one here; a module that injects
    faults into ZooKeeper overrides it with a container of its own.
``mesh_chroot``
    A fresh chroot on ``mesh_zookeeper`` per test, deleted afterwards: providers register under it and
    meshd watches it, so no test sees another's providers.
``mesh``
    ``mesh(dubbo=2, bolt=2, **config)`` starts the providers (registered in ZooKeeper), then a meshd
    container discovering them, and returns a :class:`Mesh`. Everything stops at teardown, also when
    the test failed (containers: the plugin; node processes: here).
``steady_load``
    ``steady_load(meshd, "dubbo"|"bolt")`` starts a :class:`~integration.load.SteadyLoad`;
    stopped at teardown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest

from integration import peers
from integration.pytest_plugin import fresh_chroot
from integration.load import SteadyLoad
from tests.e2e.containers.mesh import BoltProvider, DubboProvider, mesh_config, start_all


@pytest.fixture(scope="session")
def real_peers() -> None:
    """Skip when the npm peers cannot run here (node/npm missing) or were not installed by ``make peers``."""
    reason = peers.missing_reason()
    if reason:
        pytest.skip(f"real Dubbo/Bolt peers unavailable: {reason}")
    if not peers.installed():
        pytest.skip("real Dubbo/Bolt peers not installed: run `make peers` (python -m integration.peers install)")


@pytest.fixture
def mesh_zookeeper(zookeeper: Any) -> Any:
    return zookeeper


@pytest.fixture
def mesh_chroot(mesh_zookeeper: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_chroot(mesh_zookeeper, request.node.name) as path:
        yield path


@dataclass
class Mesh:
    """One test's deployment: providers by protocol (registered in ZooKeeper) and the meshd in front."""

    meshd: Any
    dubbo: list[DubboProvider]
    bolt: list[BoltProvider]

    def providers(self, protocol: str) -> list:
        return self.dubbo if protocol == "dubbo" else self.bolt


@pytest.fixture
def mesh(meshd: Callable[..., Any], mesh_zookeeper: Any, mesh_chroot: str, real_peers: None) -> Iterator[Callable[..., Mesh]]:
    # Docker first: without an engine the skip names the engine, whatever else is missing
    started: list = []

    def build(dubbo: int = 2, bolt: int = 2, **config: Any) -> Mesh:
        dubbo_providers = [DubboProvider(mesh_zookeeper, mesh_chroot, f"dubbo-{i + 1}") for i in range(dubbo)]
        bolt_providers = [BoltProvider(mesh_zookeeper, mesh_chroot, f"bolt-{i + 1}") for i in range(bolt)]
        started.extend(dubbo_providers + bolt_providers)
        start_all(dubbo_providers + bolt_providers)
        return Mesh(meshd(mesh_config(mesh_zookeeper, mesh_chroot, **config)), dubbo_providers, bolt_providers)

    try:
        yield build
    finally:
        for provider in started:
            provider.stop()


@pytest.fixture
def steady_load(docker_engine: Any, real_peers: None) -> Iterator[Callable[..., SteadyLoad]]:
    loads: list[SteadyLoad] = []

    def start(meshd: Any, protocol: str, **kwargs: Any) -> SteadyLoad:
        load = SteadyLoad(meshd, protocol, **kwargs)
        loads.append(load)
        return load

    try:
        yield start
    finally:
        for load in loads:
            load.node.stop()
