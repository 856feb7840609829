"""App-facing registry APIs (filled in by its issue)."""

from __future__ import annotations

from typing import Any


def build_registry_apis(config: Any) -> list[Any]:
    """The registry API components ``config.registry_api`` asks for (none yet)."""
    return []
