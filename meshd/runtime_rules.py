"""The daemon's runtime rules: the kinds the rule store serves, and the config center built from the config.

Kinds (:mod:`config_center.kinds`):

- the five governance kinds (``flow``, ``circuit_breaker``, ``isolation``, ``hotspot``, ``system``), validated
  by the engine's own rule parsers (as the config file's ``governance`` section is) and applied by
  :meth:`meshd.proxy.governor.Governor.load` (strict: all or nothing; an equal rule keeps its state);
- ``routes``: per route name, an override of the route's ``timeout``, ``retry_policy``, weighted cluster
  weights and ``metadata_match`` (:class:`~meshd.config.RouteOverride`); applying compiles every route
  configuration anew with the overrides and swaps the tables into the listeners at once, dropping the
  listeners' cached routing decisions;
- ``clusters``: per cluster name, an override of ``lb_policy``, ``outlier_detection``, ``circuit_breakers`` and
  ``panic_threshold`` (:class:`~meshd.config.ClusterOverride`), applied by
  :meth:`~meshd.upstream.cluster.ClusterManager.set_overrides` to the cluster now or when discovery creates it.

Both override documents are JSON mappings of names to overrides; ``{}`` removes every override of the kind.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

from pydantic import ValidationError

from configkit import check_name, format_duration
from config_center.catalog import BY_NAME as RULE_SOURCE_TYPES
from config_center.center import ConfigCenter
from config_center.kinds import CLUSTER_KIND, ROUTE_KIND, RuleKind, RuleRejected, mapping_entries, sentinel_kind
from config_center.source import RuleSourceContext
from config_center.store import RuleStore
from governance import RULE_KINDS
from meshd.config import ClusterOverride, Config, RouteConfiguration, RouteOverride, format_errors
from meshd.proxy.governor import Governor
from meshd.routing.table import RouteTable


def governance_kinds(governor: Governor, default_dialect: str) -> list[RuleKind]:
    return [sentinel_kind(kind, governor.sentinel.validate_rules, governor.load, default_dialect,
                          stage=governor.stage, build=governor.sentinel.build_staged, commit=governor.commit)
            for kind in RULE_KINDS]


def _overrides(kind: str, document: Any, model: type, check: Callable[[str, Any], list[str]]) -> dict[str, Any]:
    """Validate a mapping of names to override objects; every problem names the name and the field."""
    if document in (None, "", {}, []):
        return {}
    if not isinstance(document, dict):
        raise RuleRejected([f"{kind}: expected a JSON object of names to overrides, got {type(document).__name__}"])
    problems: list[str] = []
    normal: dict[str, Any] = {}
    for name, value in document.items():
        try:
            check_name(name)
            override = model.model_validate(value)
        except ValidationError as exc:
            problems += [f"{kind}.{name}{'' if line.startswith('<root>') else '.'}{line.removeprefix('<root>')}"
                         for line in format_errors(exc)]
            continue
        except ValueError as exc:
            problems.append(f"{kind}: {exc}")
            continue
        found = check(name, override)
        if found:
            problems += [f"{kind}.{name}: {p}" for p in found]
            continue
        normal[name] = override.model_dump(mode="json", exclude_none=True)
    if problems:
        raise RuleRejected(problems)
    return normal


def route_kind(route_configs: Sequence[RouteConfiguration],
               install: Callable[[dict[str, RouteTable]], None]) -> RuleKind:
    """``routes``: overrides by route name, applied by compiling the route tables anew and ``install``ing them."""
    named: dict[str, list[Any]] = {}
    for rc in route_configs:
        for vh in rc.virtual_hosts:
            for route in vh.routes:
                if route.name:
                    named.setdefault(route.name, []).append(route)

    def check(name: str, override: RouteOverride) -> list[str]:
        routes = named.get(name)
        if not routes:
            return [f"no route is named {name!r} (named routes: {', '.join(sorted(named)) or 'none'})"]
        problems = []
        for route in routes:
            if route.route is None:
                problems.append("the route answers directly (direct_response): nothing to override")
            elif override.weighted_clusters is not None:
                have = {w.cluster for w in route.route.weighted_clusters or ()}
                if not have:
                    problems.append("weighted_clusters: the route has no weighted_clusters")
                elif set(override.weighted_clusters) - have:
                    problems.append(f"weighted_clusters: {sorted(set(override.weighted_clusters) - have)} are not "
                                    f"clusters of the route (have {sorted(have)})")
                elif sum(override.weighted_clusters.get(w.cluster, w.weight)
                         for w in route.route.weighted_clusters) <= 0:
                    problems.append("weighted_clusters: weights must add up to more than 0")
        return problems

    def validate(document: Any, dialect: str) -> Any:
        return _overrides(ROUTE_KIND, document, RouteOverride, check)

    def apply(normal: Any, dialect: str) -> None:
        overrides = {name: RouteOverride.model_validate(v) for name, v in (normal or {}).items()}
        install({rc.name: RouteTable(with_route_overrides(rc, overrides)) for rc in route_configs})

    return RuleKind(ROUTE_KIND, validate, apply, mapping_entries)


def with_route_overrides(rc: RouteConfiguration, overrides: Mapping[str, RouteOverride]) -> RouteConfiguration:
    """``rc`` with each named route's action changed by its override (the config's own objects untouched)."""
    if not overrides:
        return rc
    data = rc.model_dump()
    for vh in data["virtual_hosts"]:
        for route in vh["routes"]:
            override = overrides.get(route.get("name") or "")
            if override is None or route.get("route") is None:
                continue
            action = route["route"]
            if override.timeout is not None:
                action["timeout"] = format_duration(override.timeout)
            if override.retry_policy is not None:
                action["retry_policy"] = override.retry_policy.model_dump()
            if override.metadata_match is not None:
                action["metadata_match"] = dict(override.metadata_match)
            if override.weighted_clusters is not None:
                for wc in action["weighted_clusters"]:
                    wc["weight"] = override.weighted_clusters.get(wc["cluster"], wc["weight"])
    return RouteConfiguration.model_validate(data)


def cluster_kind(set_overrides: Callable[[dict[str, ClusterOverride]], None]) -> RuleKind:
    """``clusters``: overrides by cluster name (clusters discovery creates later get theirs when created)."""

    def validate(document: Any, dialect: str) -> Any:
        return _overrides(CLUSTER_KIND, document, ClusterOverride, lambda name, override: [])

    def apply(normal: Any, dialect: str) -> None:
        set_overrides({name: ClusterOverride.model_validate(v) for name, v in (normal or {}).items()})

    return RuleKind(CLUSTER_KIND, validate, apply, mapping_entries)


def build_config_center(config: Config, kinds: Sequence[RuleKind]) -> ConfigCenter:
    """The store (state under ``config_center.state_dir``) and the configured sources, not started."""
    store = RuleStore(kinds, state_dir=config.resolve_path(config.config_center.state_dir),
                      volatile_sources=(CONFIG_SOURCE,))
    ctx = RuleSourceContext(resolve_path=lambda path: str(config.resolve_path(path)))
    sources = [RULE_SOURCE_TYPES[spec.type].build(spec, ctx) for spec in config.config_center.sources]
    for source in sources:
        if not source.dialect:
            source.dialect = config.governance.dialect
    return ConfigCenter(store, sources)


CONFIG_SOURCE = "config"                     # the config file's governance section, as a rule source


def load_config_rules(store: RuleStore, config: Config, restored: Sequence[str]) -> None:
    """The config file's ``governance`` rules as source ``config``: for every kind that was not restored from
    another source's persisted push (a restored ``config`` document is replaced by the file's current one)."""
    for kind in RULE_KINDS:
        rules = getattr(config.governance, kind)
        current = store.current.get(kind)
        if kind in restored and current is not None and current.source != CONFIG_SOURCE:
            continue
        if rules or current is not None:
            result = store.push(CONFIG_SOURCE, kind, rules, config.governance.dialect)
            if not result.ok:
                raise ValueError(f"governance.{kind}: {'; '.join(result.errors)}")


class RulesCollector:
    """Prometheus families of the rule store: pushes applied and rejected per source and kind, versions."""

    def __init__(self, store: RuleStore) -> None:
        self.store = store

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        for name, counts, what in (("meshd_rules_applied", self.store.applied, "Rule documents applied"),
                                   ("meshd_rules_rejected", self.store.rejected, "Rule documents rejected whole")):
            family = CounterMetricFamily(name, f"{what}, per source and kind", labels=["source", "kind"])
            for (source, kind), n in sorted(counts.items()):
                family.add_metric([source, kind], n)
            yield family
        version = GaugeMetricFamily("meshd_rules_version", "Store version of the document in force, per kind",
                                    labels=["kind"])
        for kind, current in sorted(self.store.current.items()):
            version.add_metric([kind], current.version)
        yield version

    def describe(self) -> list:
        return []
