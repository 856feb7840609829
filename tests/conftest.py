"""Shared fixtures: a background event loop for test servers, HTTP backends, meshd subprocesses."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from integration.process import LoopThread, MeshdProcess
from integration.servers.http_backend import HttpBackend
from integration.servers.rpc_provider import RpcProvider


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture
def http_backend(loop_thread: LoopThread) -> Iterator[Callable[..., HttpBackend]]:
    """``http_backend("v1")`` starts a scriptable HTTP backend on a free port (stopped after the test)."""
    started: list[HttpBackend] = []

    def start(name: str = "backend", **kwargs: Any) -> HttpBackend:
        backend = loop_thread.run(HttpBackend(name, **kwargs).start())
        started.append(backend)
        return backend

    yield start
    for b in started:
        loop_thread.run(b.stop())


@pytest.fixture
def provider(loop_thread):
    """``provider("dubbo"|"bolt", name)`` starts a scriptable RPC provider (stopped after the test)."""
    started = []

    def start(protocol: str, name: str) -> RpcProvider:
        p = loop_thread.run(RpcProvider(protocol, name).start())
        started.append(p)
        return p

    yield start
    for p in started:
        loop_thread.run(p.stop())


@pytest.fixture
def meshd_run(tmp_path) -> Iterator[Callable[..., MeshdProcess]]:
    """``meshd_run(config)`` runs ``meshd run`` as a subprocess until the test ends (its log is shown on failure)."""
    procs: list[MeshdProcess] = []

    def start(config: dict, name: str = "meshd", **kwargs: Any) -> MeshdProcess:
        proc = MeshdProcess(config, tmp_path, name=name, **kwargs).start()
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        p.kill()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        procs = item.funcargs.get("meshd_run")
        closure = getattr(procs, "__closure__", None) if callable(procs) else None
        for cell in closure or ():
            value = cell.cell_contents
            if isinstance(value, list):
                for p in value:
                    if isinstance(p, MeshdProcess):
                        report.sections.append((f"meshd log ({p.name})", p.log()[-6000:]))
