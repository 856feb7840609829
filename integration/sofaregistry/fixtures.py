"""pytest fixtures for the SOFARegistry test session server (exported by the meshd pytest plugin; cheap to import).

``sofaregistry_server_factory`` (function scope)
    ``factory(**SessionServer kwargs)`` → a started :class:`~integration.sofaregistry.server.BlockingSessionServer`
    on ``127.0.0.1`` and a free port, on its own loop thread (``port=`` to reuse one, ``zone=`` for its zone);
    ``factory(peer=server)`` → another session server of the same registry cluster (the same
    :class:`~integration.sofaregistry.server.DataStore`, on the same loop thread). Every server it made is closed
    at teardown.
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

    def make(peer: BlockingSessionServer | None = None, **kwargs: Any) -> BlockingSessionServer:
        if peer is not None:
            kwargs.update(loop_thread=peer.loop_thread, store=peer.server.store)
        server = BlockingSessionServer(**kwargs)
        made.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in reversed(made):        # a server that owns a shared loop thread goes last
            server.close()


@pytest.fixture
def sofaregistry_server(sofaregistry_server_factory: Callable[..., "BlockingSessionServer"]) -> "BlockingSessionServer":
    return sofaregistry_server_factory()
