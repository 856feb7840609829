"""Every discovery source type meshd knows: one line per source (see :class:`discovery.source.SourceType`).

The daemon derives the ``discovery:`` config union, the source builder and the list of known types that
``meshd validate`` prints from :data:`SOURCE_TYPES`; the first-listed type comes first in those lists.
"""

from __future__ import annotations

from discovery import file, nacos, sofaregistry, zookeeper
from discovery.source import SourceType
from discovery.xds import config as xds

SOURCE_TYPES: tuple[SourceType, ...] = (
    file.SOURCE,
    zookeeper.SOURCE,
    nacos.SOURCE,
    sofaregistry.SOURCE,
    xds.SOURCE,
)

BY_NAME: dict[str, SourceType] = {t.name: t for t in SOURCE_TYPES}
