"""Dubbo2 status bytes and result types ↔ the shared :class:`~meshd.codec.outcome.Outcome`.

Upstream direction (what a provider's answer means): :func:`status_outcome` for the status byte,
:func:`response_outcome` adding the result type of an OK response (exception results are ``APP_ERROR``).

Local direction (what meshd answers itself, docs/protocols.md §5): :func:`status_for` maps an Outcome to the
status byte of a synthesized error response; :func:`error_for` adds the message convention.

Retry note: Dubbo's FailoverClusterInvoker retries *every* non-OK status (default 2 retries), so a
synthesized error normally comes back through the sidecar up to twice more.
"""

from __future__ import annotations

from meshd.codec.outcome import Outcome

OK = 20
SERIALIZATION_ERROR = 25
CLIENT_TIMEOUT = 30
SERVER_TIMEOUT = 31
CHANNEL_INACTIVE = 35
BAD_REQUEST = 40
BAD_RESPONSE = 50
SERVICE_NOT_FOUND = 60
SERVICE_ERROR = 70
SERVER_ERROR = 80
CLIENT_ERROR = 90
SERVER_THREADPOOL_EXHAUSTED_ERROR = 100

STATUS_NAMES = {
    OK: "OK", SERIALIZATION_ERROR: "SERIALIZATION_ERROR", CLIENT_TIMEOUT: "CLIENT_TIMEOUT",
    SERVER_TIMEOUT: "SERVER_TIMEOUT", CHANNEL_INACTIVE: "CHANNEL_INACTIVE", BAD_REQUEST: "BAD_REQUEST",
    BAD_RESPONSE: "BAD_RESPONSE", SERVICE_NOT_FOUND: "SERVICE_NOT_FOUND", SERVICE_ERROR: "SERVICE_ERROR",
    SERVER_ERROR: "SERVER_ERROR", CLIENT_ERROR: "CLIENT_ERROR",
    SERVER_THREADPOOL_EXHAUSTED_ERROR: "SERVER_THREADPOOL_EXHAUSTED_ERROR",
}

# Provider statuses. SERVICE_NOT_FOUND counts as an upstream error, not a client error: a provider that
# lacks the export (unexporting, wrong version routed) is a provider condition another provider may not share.
_STATUS_OUTCOME = {
    OK: Outcome.OK,
    SERIALIZATION_ERROR: Outcome.UPSTREAM_ERROR,
    CLIENT_TIMEOUT: Outcome.TIMEOUT,
    SERVER_TIMEOUT: Outcome.TIMEOUT,
    CHANNEL_INACTIVE: Outcome.RESET,
    BAD_REQUEST: Outcome.CLIENT_ERROR,
    BAD_RESPONSE: Outcome.UPSTREAM_ERROR,
    SERVICE_NOT_FOUND: Outcome.UPSTREAM_ERROR,
    SERVICE_ERROR: Outcome.UPSTREAM_ERROR,
    SERVER_ERROR: Outcome.UPSTREAM_ERROR,
    CLIENT_ERROR: Outcome.CLIENT_ERROR,
    SERVER_THREADPOOL_EXHAUSTED_ERROR: Outcome.OVERLOADED,
}

# docs/protocols.md §5, "Dubbo2 status" column.
_OUTCOME_STATUS = {
    Outcome.NO_ROUTE: SERVICE_NOT_FOUND,
    Outcome.NO_HEALTHY_UPSTREAM: SERVICE_NOT_FOUND,
    Outcome.BLOCKED: SERVER_THREADPOOL_EXHAUSTED_ERROR,
    Outcome.OVERFLOW: SERVER_THREADPOOL_EXHAUSTED_ERROR,
    Outcome.OVERLOADED: SERVER_THREADPOOL_EXHAUSTED_ERROR,
    Outcome.TIMEOUT: SERVER_TIMEOUT,
    Outcome.CONNECT_FAILURE: SERVER_ERROR,
    Outcome.RESET: SERVER_ERROR,
    Outcome.BAD_REQUEST: BAD_REQUEST,
    Outcome.INTERNAL: SERVER_ERROR,
    Outcome.UPSTREAM_ERROR: SERVER_ERROR,
    Outcome.CLIENT_ERROR: BAD_REQUEST,
    Outcome.APP_ERROR: SERVICE_ERROR,
    Outcome.OK: OK,
}


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"UNKNOWN_STATUS_{status}")


def status_outcome(status: int) -> Outcome:
    """Outcome of a provider response by status byte alone (unknown statuses are upstream errors)."""
    return _STATUS_OUTCOME.get(status, Outcome.UPSTREAM_ERROR)


def response_outcome(status: int, result_type: int | None) -> Outcome:
    """Outcome of a response: an OK status whose result type is 0 or 3 (exception) is ``APP_ERROR``."""
    if status == OK and result_type in (0, 3):
        return Outcome.APP_ERROR
    return status_outcome(status)


def status_for(outcome: Outcome) -> int:
    """Status byte meshd sends for a request it answers itself with this outcome (docs/protocols.md §5)."""
    return _OUTCOME_STATUS[outcome]


def error_for(outcome: Outcome, detail: str) -> tuple[int, str]:
    """(status, message) of a synthesized error: message ``"meshd: <detail>"``."""
    return status_for(outcome), f"meshd: {detail}" if detail else f"meshd: {outcome.value}"
