"""Dubbo configurators: ``override://`` URLs that change provider parameters at runtime (pure).

A node under ``/{root}/{interface}/configurators`` names an override URL::

    override://0.0.0.0/org.example.DemoService?category=configurators&dynamic=false&enabled=true&weight=200
    override://10.0.0.5:20880/org.example.DemoService?category=configurators&dynamic=false&disabled=true

Semantics (Dubbo ``AbstractConfigurator`` / ``OverrideConfigurator``, 2.6/2.7 "deprecated" style):

- the host selects providers: ``0.0.0.0`` = every provider, ``ip`` = every port on that host, ``ip:port`` =
  that provider; more specific rules are applied later, so they win (then by ``priority``, then by name);
- ``enabled=false`` switches the *rule* off (it is ignored); to take a provider out, a rule says ``disabled=true``;
- ``application``, ``side`` and ``~key`` parameters are conditions that must equal the provider's parameter
  (``*`` matches anything); ``providerAddresses`` (a list) must contain the provider's ``ip:port``;
  ``group``/``version`` select providers of that group/version (a comma list; ``*`` = all);
- every other parameter is copied onto the provider URL (``weight``, ``disabled``, ``timeout``, ...), except the
  bookkeeping keys Dubbo strips (``category``, ``check``, ``dynamic``, ``enabled``, ``configVersion``, ...);
- ``absent://`` rules only fill in parameters the provider does not set; ``empty://`` is a client-side marker
  and is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from discovery.model import parse_int
from discovery.zookeeper.urls import RegistryURL, URLError, decode_name, parse_url

ANYHOST = "0.0.0.0"
#: Keys that condition or describe a rule rather than set a provider parameter (Dubbo's ``conditionKeys``).
CONDITION_KEYS = frozenset({
    "category", "check", "dynamic", "enabled", "group", "version", "application", "side", "configVersion",
    "compatible_config", "interfaces", "providerAddresses", "anyhost",
})
#: Provider parameters that must stay integers after an override (validated when the rule is parsed).
INTEGER_KEYS = ("weight", "warmup", "timestamp")


@dataclass(frozen=True, slots=True)
class Override:
    """One configurator rule, validated."""

    name: str                       # the znode name (identity)
    host: str
    port: int | None
    params: Mapping[str, str]       # what it sets on matching providers
    conditions: Mapping[str, str]   # application / side / ~key conditions
    groups: frozenset[str] | None   # None: any group
    versions: frozenset[str] | None
    addresses: frozenset[str] | None
    priority: int
    absent: bool

    @property
    def specificity(self) -> int:
        return 0 if self.host == ANYHOST else (2 if self.port else 1)

    def sort_key(self) -> tuple:
        return (self.specificity, self.priority, self.name)

    def matches(self, host: str, port: int, params: Mapping[str, str]) -> bool:
        """Does this rule select the provider at ``host:port`` with ``params``?"""
        if self.host != ANYHOST and (self.host != host or (self.port and self.port != port)):
            return False
        if self.addresses is not None and not ({f"{host}:{port}", ANYHOST} & self.addresses):
            return False
        if self.groups is not None and params.get("group", "") not in self.groups:
            return False
        if self.versions is not None and params.get("version", "") not in self.versions:
            return False
        for key, want in self.conditions.items():
            if want not in ("", "*") and params.get(key.lstrip("~"), "") != want:
                return False
        return True


def _selector(value: str | None) -> frozenset[str] | None:
    if value is None or value in ("", "*"):
        return None
    return frozenset(v.strip() for v in value.split(","))


def parse_override(name: str) -> Override | None:
    """Parse a configurator znode name; None for rules that do nothing (``empty://``, ``enabled=false``).

    Raises :class:`URLError` (a ValueError) naming the node when the rule is malformed.
    """
    try:
        url: RegistryURL = parse_url(decode_name(name))
    except (URLError, UnicodeDecodeError) as exc:
        raise URLError(f"configurator {name!r}: {exc}") from None
    if url.scheme == "empty" or url.params.get("enabled", "true").lower() == "false":
        return None
    if url.scheme not in ("override", "absent"):
        raise URLError(f"configurator {name!r}: scheme {url.scheme!r} is not override:// or absent://")
    params = {k: v for k, v in url.params.items() if k not in CONDITION_KEYS and not k.startswith("~")}
    for key in INTEGER_KEYS:
        if key in params and parse_int(params[key].strip()) is None:
            raise URLError(f"configurator {name!r}: {key}={params[key]!r} is not an integer")
    priority = url.params.get("priority", "0")
    return Override(
        name=name, host=url.host, port=url.port, params=params,
        conditions={k: v for k, v in url.params.items() if k.startswith("~") or k in ("application", "side")},
        groups=_selector(url.params.get("group")), versions=_selector(url.params.get("version")),
        addresses=_selector(url.params.get("providerAddresses")),
        priority=parse_int(priority.strip()) or 0, absent=url.scheme == "absent",
    )


def apply_overrides(overrides: Iterable[Override], host: str, port: int, params: Mapping[str, str]) -> dict[str, str]:
    """The provider's parameters after every matching rule, least specific first (so the most specific wins).

    Like Dubbo, each rule is matched against the parameters as the previous rules left them.
    """
    result = dict(params)
    for rule in sorted(overrides, key=Override.sort_key):
        if not rule.matches(host, port, result):
            continue
        for key, value in rule.params.items():
            if not rule.absent or key not in result:
                result[key] = value
    return result
