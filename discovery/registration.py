"""Registration: what a discovery source implements to publish and subscribe on behalf of the local app.

The app-facing registry APIs (the SOFA mesh API, the Dubbo pub/sub API) let an application without a
registry SDK publish its providers and subscribe to services. They do it through a configured discovery
source that is also a :class:`Registry`; which registry that is (ZooKeeper, Nacos, SOFARegistry) is the
config's choice (``registry_api.<api>.registry: <source name>``), not the API's.

Contract of a :class:`Registry` (every method runs on the event loop that started the source):

- :meth:`~Registry.publish` writes the provider entry the registry's own SDK would write and keeps it
  (re-created after a session or connection is lost) until :meth:`~Registry.unpublish` or
  :meth:`~Registry.shutdown`. Publishing the same service (kind, interface, address, group, version,
  protocol: :attr:`Registration.key`) again returns the existing registration, or replaces its entry when
  other parameters changed.
- :meth:`~Registry.subscribe_consumer` writes the consumer entry (where the registry has one) and starts
  watching the interface's providers, so that its cluster appears in the model. All or nothing: when
  either step fails, nothing of it is left behind. :meth:`~Registry.unsubscribe_consumer` undoes both.
- Bad arguments raise ``ValueError`` naming the argument (the caller's fault); a registry that refuses or
  cannot be reached raises :class:`RegistrationError` (nothing is left behind).
- :meth:`~Registry.shutdown` withdraws every registration; a source's ``stop`` calls it.

:class:`ServiceInfo` is what the application says about a service, whatever the registry.
"""

from __future__ import annotations

import abc
import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

#: A Java interface name (``org.example.DemoService``, ``a.b.Outer$Inner``). Segments are separated by ``.``
#: only: a ``$`` is part of its segment (a ``[.$]`` separator matched the same names, ambiguously, and took
#: exponential time to refuse ``a$a$a...$a!``).
INTERFACE = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``event`` (not at all when ``timeout`` is 0); whether it is set."""
    if not event.is_set() and timeout > 0:
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
    return event.is_set()


class RegistrationError(Exception):
    """Registering or removing an entry failed; the message names the entry and the cause.

    When it is raised nothing of the registration is left behind: the entry was not created, or was removed
    again (or, when the registry could not be reached to remove it, it is removed as soon as it can be).
    """


@dataclass(frozen=True, slots=True)
class Registration:
    """An entry a registry keeps for the local application; the handle to undo it.

    ``url`` is the registry's rendering of the entry (ZooKeeper: the decoded node URL); ``path`` is where the
    registry keeps it, unique per entry (ZooKeeper: the znode path). ``address`` is ``host:port`` for a
    provider and the host for a consumer.
    """

    kind: str            # "provider" | "consumer"
    interface: str
    address: str
    group: str
    version: str
    url: str
    path: str

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        """The identity of the registered service: registering the same key again replaces the entry."""
        return (self.kind, self.interface, self.address, self.group, self.version, self.url.partition("://")[0])

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "interface": self.interface, "address": self.address, "group": self.group,
                "version": self.version, "url": self.url, "path": self.path}


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the application says about a service it provides or consumes (all optional but the interface)."""

    interface: str
    application: str = ""
    group: str = ""                 # Dubbo group; SOFARPC uniqueId
    version: str = ""               # Dubbo version; SOFARPC version (default "1.0")
    methods: Sequence[str] = ()
    weight: int | None = None
    protocol: str = ""              # default: the registry's (ZooKeeper: "dubbo" in the Dubbo layout, "bolt" in SOFARPC's)
    serialization: str = ""         # SOFARPC default "hessian2"; Dubbo: only written when given
    timeout: int | None = None      # SOFARPC provider 0, consumer 3000 (sofa-rpc defaults)
    parameters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not INTERFACE.fullmatch(self.interface or ""):
            raise ValueError(f"interface {self.interface!r} is not a Java interface name")
        if self.weight is not None and (not isinstance(self.weight, int) or self.weight < 0):
            raise ValueError(f"weight {self.weight!r} must be a non-negative integer")
        for method in self.methods:
            if not re.fullmatch(r"[\w$]+|\*", method):
                raise ValueError(f"method name {method!r} is not valid")


class Registry(abc.ABC):
    """A discovery source that can register the local application; see the module docstring."""

    name: str
    kind: str

    @abc.abstractmethod
    async def publish(self, interface: str, address: str, *, application: str = "", group: str = "",
                      version: str = "", methods: Sequence[str] = (), weight: int | None = None,
                      protocol: str = "", serialization: str = "", timeout: int | None = None,
                      parameters: Mapping[str, str] | None = None) -> Registration:
        """Register the local app as a provider of ``interface`` at ``address`` (``host:port``)."""

    @abc.abstractmethod
    async def unpublish(self, registration: Registration) -> None:
        """Remove a provider entry of :meth:`publish` (:class:`RegistrationError` if it is not registered)."""

    @abc.abstractmethod
    async def subscribe_consumer(self, interface: str, host: str, *, application: str = "", group: str = "",
                                 version: str = "", methods: Sequence[str] = (), protocol: str = "",
                                 serialization: str = "", timeout: int | None = None,
                                 parameters: Mapping[str, str] | None = None) -> Registration:
        """Register the local app (at ``host``) as a consumer of ``interface`` and watch its providers."""

    @abc.abstractmethod
    async def unsubscribe_consumer(self, registration: Registration) -> None:
        """Remove a consumer entry of :meth:`subscribe_consumer` (if it is still there) and release its watch."""

    @abc.abstractmethod
    def registrations(self, kind: str | None = None, interface: str | None = None) -> tuple[Registration, ...]:
        """The live registrations, optionally only of one kind ("provider"/"consumer") or interface."""

    @abc.abstractmethod
    async def wait_service(self, interface: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until a watched ``interface`` is in the model; whether it is."""

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Withdraw every registration (failures are logged; entries then expire with the session)."""

    def registered(self, registration: Registration) -> bool:
        """Whether ``registration`` is still one of :meth:`registrations`."""
        return any(r.path == registration.path for r in self.registrations(registration.kind, registration.interface))
