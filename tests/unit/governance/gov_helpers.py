"""Helpers shared by the governance tests (a uniquely named module, importable from every test file)."""

from __future__ import annotations

import pytest

from governance import BlockError, Sentinel

T0 = 1_700_000_000_000  # a multiple of 10 000 ms: the start of a 20 x 500 ms array cycle


def passes(engine: Sentinel, resource: str, **kwargs) -> bool:
    """Enter and immediately exit; True if the entry passed."""
    try:
        entry = engine.entry(resource, **kwargs)
    except BlockError:
        return False
    entry.exit()
    return True


def count_passes(engine: Sentinel, resource: str, attempts: int, **kwargs) -> int:
    return sum(passes(engine, resource, **kwargs) for _ in range(attempts))


def blocked(engine: Sentinel, resource: str, **kwargs) -> BlockError:
    with pytest.raises(BlockError) as info:
        engine.entry(resource, **kwargs)
    return info.value
