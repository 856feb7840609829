"""One outcome vocabulary for every protocol.

Each codec maps its own statuses (HTTP status codes, Dubbo status bytes and result types, Bolt response
status) to an :class:`Outcome`. Governance (breaker errors), retries (``retry_on``), outlier detection,
metrics and the access log consume only this vocabulary, never a protocol's raw status.

Upstream outcomes describe what a provider did with one attempt; local outcomes describe requests meshd
answered itself (no route, blocked, ...). ``response_flag`` follows Envoy's access-log flags.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.Enum):
    """What happened to one request attempt (or to the request, for the local outcomes)."""

    OK = "ok"                                 # a normal answer (HTTP 1xx-3xx, Dubbo 20 value, Bolt SUCCESS)
    CLIENT_ERROR = "client_error"             # the provider refused the request itself (HTTP 4xx, Dubbo 40)
    APP_ERROR = "app_error"                   # an exception result (Dubbo result type 0/3, Bolt SERVER_EXCEPTION)
    UPSTREAM_ERROR = "upstream_error"         # an error status from the provider (HTTP 5xx, Dubbo 70/80, Bolt ERROR)
    OVERLOADED = "overloaded"                 # the provider said it is busy (HTTP 429/503, Dubbo 100, Bolt 4)
    TIMEOUT = "timeout"                       # no answer in time (local timer or Dubbo 30/31, Bolt 7)
    RESET = "reset"                           # connection lost before a complete answer
    CONNECT_FAILURE = "connect_failure"       # could not connect to the provider
    # local outcomes: meshd answered without a provider answer
    NO_ROUTE = "no_route"
    NO_HEALTHY_UPSTREAM = "no_healthy_upstream"
    BLOCKED = "blocked"                       # governance (flow, isolation, hotspot, system, breaker)
    OVERFLOW = "overflow"                     # cluster circuit-breaker thresholds (pending/active/connections)
    BAD_REQUEST = "bad_request"               # undecodable or oversized request
    INTERNAL = "internal"

    @property
    def is_error(self) -> bool:
        """True for outcomes a circuit breaker counts as an error."""
        return self in _ERRORS

    @property
    def is_gateway_error(self) -> bool:
        """Envoy's ``gateway-error``: the provider or the path to it failed, not the request."""
        return self in (Outcome.CONNECT_FAILURE, Outcome.RESET, Outcome.TIMEOUT, Outcome.OVERLOADED)

    @property
    def is_local_origin(self) -> bool:
        """Failures observed locally (no bytes from the provider): outlier detection counts these apart."""
        return self in (Outcome.CONNECT_FAILURE, Outcome.RESET, Outcome.TIMEOUT)

    @property
    def response_flag(self) -> str:
        return _FLAGS.get(self, "-")


_ERRORS = frozenset({
    Outcome.APP_ERROR, Outcome.UPSTREAM_ERROR, Outcome.OVERLOADED, Outcome.TIMEOUT, Outcome.RESET,
    Outcome.CONNECT_FAILURE, Outcome.INTERNAL,
})

for _o in Outcome:
    _o.failed = _o in _ERRORS           # a plain attribute: ``is_error`` without a property call on hot paths

_FLAGS = {
    Outcome.NO_ROUTE: "NR",
    Outcome.NO_HEALTHY_UPSTREAM: "UH",
    Outcome.CONNECT_FAILURE: "UF",
    Outcome.RESET: "UR",
    Outcome.TIMEOUT: "UT",
    Outcome.OVERFLOW: "UO",
    Outcome.BLOCKED: "RL",
    Outcome.BAD_REQUEST: "DPE",
    Outcome.INTERNAL: "LR",
}


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one attempt plus the protocol detail retries and logs need.

    ``status`` is the protocol's own status (HTTP code, Dubbo status byte, Bolt response status) when the
    provider answered, else None. ``detail`` is a short human-readable reason for local outcomes.
    """

    outcome: Outcome
    status: int | None = None
    detail: str = ""


def http_outcome(status: int) -> Outcome:
    """Map an HTTP response status to an Outcome."""
    if status < 400:
        return Outcome.OK
    if status == 429 or status == 503:
        return Outcome.OVERLOADED
    if status >= 500:
        return Outcome.UPSTREAM_ERROR
    return Outcome.CLIENT_ERROR
