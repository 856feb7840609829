"""The config center: the rule store and the sources that feed it, started and stopped together.

:class:`ConfigCenter` claims each source's kinds in the store (a kind has one owner), starts the sources
(they deliver through a :class:`~config_center.source.Sink` bound to their name), and answers the admin
API's questions: per source its connection, what it saw last and its last error, beside the store's own
status (versions in force, restored kinds, persistence errors).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from config_center.http import HttpRuleSource
from config_center.source import RuleSource, Sink
from config_center.store import RuleStore

log = logging.getLogger("meshd.config_center")


class ConfigCenter:
    def __init__(self, store: RuleStore, sources: Iterable[RuleSource]) -> None:
        self.store = store
        self.sources = list(sources)
        for source in self.sources:
            if source.kinds:
                store.claim(source.name, source.kinds)

    @property
    def http(self) -> HttpRuleSource | None:
        """The source ``PUT /rules/{kind}`` pushes through (None when none is configured)."""
        return next((s for s in self.sources if isinstance(s, HttpRuleSource)), None)

    def sink(self, source: str, dialect: str = "") -> Sink:
        """A sink for a producer that is not a configured source (the Sentinel dashboard's ``setRules``)."""
        return Sink(self.store, source, dialect)

    async def start(self) -> None:
        for source in self.sources:
            await source.start(Sink(self.store, source.name, source.dialect))

    async def stop(self) -> None:
        for source in self.sources:
            try:
                await source.stop()
            except Exception:  # noqa: BLE001 - one source failing to stop must not keep the others running
                log.exception("rule source %s: error while stopping", source.name)
        await self.store.flush()

    def status(self) -> dict[str, Any]:
        records = self.store.source_records
        sources = [{**s.status(), **_store_view(records.get(s.name, {}))} for s in self.sources]
        known = {s.name for s in self.sources}
        sources += [{"name": name, "type": name, **_store_view(record)}
                    for name, record in records.items() if name not in known]
        return {**self.store.status(), "sources": sources}


def _store_view(record: dict[str, Any]) -> dict[str, Any]:
    """What the store knows of a source's pushes, under names that do not collide with the source's own."""
    return {"last_push": record.get("last_push"), "last_result": record.get("last_result"),
            "last_version": record.get("last_version"), "last_rejection": record.get("last_error")}
