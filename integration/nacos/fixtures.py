"""pytest fixtures for the test Nacos server (exported by the meshd pytest plugin; importing is cheap).

``nacos_server`` (function scope)
    A started :class:`~integration.nacos.server.BlockingNacosServer`: in-process, on its own background
    loop thread, HTTP on ``127.0.0.1:P`` and gRPC on ``P + 1000``; empty for every test; stopped (and its
    loop thread closed) at teardown. Give clients ``nacos_server.server_addr``.
``nacos_server_factory`` (function scope)
    ``nacos_server_factory(**NacosServer kwargs)`` for tests that need options (``push_timeout``,
    ``ability_negotiation``); every server it made is closed at teardown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

if TYPE_CHECKING:
    from integration.nacos.server import BlockingNacosServer


@pytest.fixture
def nacos_server_factory() -> Iterator[Callable[..., "BlockingNacosServer"]]:
    from integration.nacos.server import BlockingNacosServer   # grpc and aiohttp load only when used
    made: list[BlockingNacosServer] = []

    def make(**kwargs: Any) -> BlockingNacosServer:
        server = BlockingNacosServer(**kwargs)
        made.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in made:
            server.close()


@pytest.fixture
def nacos_server(nacos_server_factory: Callable[..., "BlockingNacosServer"]) -> "BlockingNacosServer":
    return nacos_server_factory()
