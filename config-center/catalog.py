"""Every rule-source type meshd knows: one line per source (see :class:`config_center.source.RuleSourceType`)."""

from __future__ import annotations

from config_center import file, http, nacos, zookeeper
from config_center.source import RuleSourceType

SOURCE_TYPES: tuple[RuleSourceType, ...] = (
    file.SOURCE,
    zookeeper.SOURCE,
    nacos.SOURCE,
    http.SOURCE,
)

BY_NAME: dict[str, RuleSourceType] = {t.name: t for t in SOURCE_TYPES}
