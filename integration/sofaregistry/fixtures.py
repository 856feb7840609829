"""pytest fixtures for the SOFARegistry test session server (exported by the meshd pytest plugin; cheap to import).

``sofaregistry_server_factory`` (function scope)
    ``factory(**SessionServer kwargs)`` → a started :class:`~integration.sofaregistry.server.BlockingSessionServer`
    on ``127.0.0.1`` and a free port, on its own loop thread (``port=`` to reuse one, ``zone=`` for its zone);
    every server it made is closed at teardown.
``sofaregistry_server`` (function scope)
    One such server. Give clients ``sofaregistry_server.address``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

if TYPE_CHECKING:
    from integration.sofaregistry.server import BlockingSessionServer


@pytest.fixture
def sofaregistry_server_factory() -> Iterator[Callable[..., "BlockingSessionServer"]]:
    from integration.sofaregistry.server import BlockingSessionServer
    made: list[BlockingSessionServer] = []

    def make(**kwargs: Any) -> BlockingSessionServer:
        server = BlockingSessionServer(**kwargs)
        made.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in made:
            server.close()


@pytest.fixture
def sofaregistry_server(sofaregistry_server_factory: Callable[..., "BlockingSessionServer"]) -> "BlockingSessionServer":
    return sofaregistry_server_factory()
