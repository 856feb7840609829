"""The adapter protocol every discovery source implements.

A source runs on the asyncio loop that owns the :class:`~discovery.model.ClusterModel`. ``start``
begins feeding the model and returns quickly (it must not wait for the registry); ``synced`` becomes
true after the first complete view was applied, or after the source gave up waiting and fell back to
a snapshot. ``/ready`` waits on every source's first sync (or its timeout).
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from discovery.model import ClusterModel


class Source(abc.ABC):
    """Base class: a name, a sync event, a status dictionary for the admin API."""

    kind: str = "source"

    def __init__(self, name: str) -> None:
        self.name = name
        self.model: ClusterModel | None = None
        self._synced = asyncio.Event()
        self.last_error: str = ""

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def mark_synced(self) -> None:
        self._synced.set()

    async def wait_synced(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    @abc.abstractmethod
    async def start(self, model: ClusterModel) -> None:
        """Begin feeding ``model``; return without waiting for the first sync."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop watching and release every resource (sessions, tasks, files)."""

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.kind, "synced": self.synced,
            "stale": bool(self.model and self.model.is_stale(self.name)), "last_error": self.last_error,
        }
