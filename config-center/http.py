"""The ``http`` rule source: documents pushed to the admin API (``PUT /rules/{kind}?dialect=``).

It watches nothing: the admin API hands each request body to :meth:`HttpRuleSource.put`, which pushes it
through the store like any other source's document. Without ``kinds`` it may push every kind that no
other source owns; with ``kinds`` it owns those. The dashboard's pushes (source ``dashboard``) take the
same path.
"""

from __future__ import annotations

from typing import Any, Literal

from configkit import Model, Name
from config_center.kinds import ALL_KINDS
from config_center.source import RuleSource, RuleSourceContext, RuleSourceType, Sink
from config_center.store import PushResult
from governance import DIALECTS


class HttpRuleSourceConfig(Model):
    type: Literal["http"]
    name: Name = "http"
    kinds: list[Literal[ALL_KINDS]] = []  # type: ignore[valid-type]  # owned kinds; [] = any kind nobody owns
    dialect: Literal[DIALECTS] | None = None  # type: ignore[valid-type]  # default: governance.dialect

    @property
    def owned_kinds(self) -> tuple[str, ...]:
        """The kinds this source owns (no other source may push them)."""
        return tuple(dict.fromkeys(self.kinds))


class HttpRuleSource(RuleSource):
    type = "http"

    async def start(self, sink: Sink) -> None:
        self.sink = sink
        self.connected = True

    async def stop(self) -> None:
        self.connected = False

    async def put(self, kind: str, body: Any, dialect: str | None = None) -> PushResult:
        result = await self.sink.push(kind, body, dialect)
        self.last_seen[kind] = f"store version {result.version}" if result.version else "rejected"
        self.last_error = "" if result.ok else "; ".join(result.errors)
        return result


def build(spec: HttpRuleSourceConfig, ctx: RuleSourceContext) -> HttpRuleSource:
    return HttpRuleSource(spec.name, spec.owned_kinds, spec.dialect or "")


SOURCE = RuleSourceType(HttpRuleSourceConfig, HttpRuleSource, build)
