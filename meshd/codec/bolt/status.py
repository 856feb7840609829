"""Bolt response status ↔ the shared :class:`~meshd.codec.outcome.Outcome`.

Upstream direction: :func:`status_outcome` (status alone, what a forwarder knows without parsing the
content) and :func:`response_outcome` (adds the SofaResponse: ``isError`` or an exception
``appResponse`` with status SUCCESS is an application error).

Local direction (docs/protocols.md §5): :func:`status_for` gives the status of a status-only response meshd
synthesizes. SOFARPC's FailoverCluster retries only SERVER_THREADPOOL_BUSY (4) and TIMEOUT (7).
"""

from __future__ import annotations

from typing import Any

from meshd.codec.hessian2.values import JavaObject
from meshd.codec.outcome import Outcome

SUCCESS = 0x00
ERROR = 0x01
SERVER_EXCEPTION = 0x02
UNKNOWN = 0x03
SERVER_THREADPOOL_BUSY = 0x04
ERROR_COMM = 0x05
NO_PROCESSOR = 0x06
TIMEOUT = 0x07
CLIENT_SEND_ERROR = 0x08
CODEC_EXCEPTION = 0x09
CONNECTION_CLOSED = 0x10
SERVER_SERIAL_EXCEPTION = 0x11
SERVER_DESERIAL_EXCEPTION = 0x12

STATUS_NAMES = {
    SUCCESS: "SUCCESS", ERROR: "ERROR", SERVER_EXCEPTION: "SERVER_EXCEPTION", UNKNOWN: "UNKNOWN",
    SERVER_THREADPOOL_BUSY: "SERVER_THREADPOOL_BUSY", ERROR_COMM: "ERROR_COMM", NO_PROCESSOR: "NO_PROCESSOR",
    TIMEOUT: "TIMEOUT", CLIENT_SEND_ERROR: "CLIENT_SEND_ERROR", CODEC_EXCEPTION: "CODEC_EXCEPTION",
    CONNECTION_CLOSED: "CONNECTION_CLOSED", SERVER_SERIAL_EXCEPTION: "SERVER_SERIAL_EXCEPTION",
    SERVER_DESERIAL_EXCEPTION: "SERVER_DESERIAL_EXCEPTION",
}

# CODEC_EXCEPTION and SERVER_DESERIAL_EXCEPTION from a provider mean it could not read our request
# (client error); NO_PROCESSOR (no such service there) is a provider condition like Dubbo's 60.
_STATUS_OUTCOME = {
    SUCCESS: Outcome.OK,
    ERROR: Outcome.UPSTREAM_ERROR,
    SERVER_EXCEPTION: Outcome.APP_ERROR,
    UNKNOWN: Outcome.UPSTREAM_ERROR,
    SERVER_THREADPOOL_BUSY: Outcome.OVERLOADED,
    ERROR_COMM: Outcome.UPSTREAM_ERROR,
    NO_PROCESSOR: Outcome.UPSTREAM_ERROR,
    TIMEOUT: Outcome.TIMEOUT,
    CLIENT_SEND_ERROR: Outcome.UPSTREAM_ERROR,
    CODEC_EXCEPTION: Outcome.CLIENT_ERROR,
    CONNECTION_CLOSED: Outcome.RESET,
    SERVER_SERIAL_EXCEPTION: Outcome.UPSTREAM_ERROR,
    SERVER_DESERIAL_EXCEPTION: Outcome.CLIENT_ERROR,
}

# docs/protocols.md §5, "Bolt respStatus" column.
_OUTCOME_STATUS = {
    Outcome.NO_ROUTE: NO_PROCESSOR,
    Outcome.NO_HEALTHY_UPSTREAM: CONNECTION_CLOSED,
    Outcome.BLOCKED: SERVER_THREADPOOL_BUSY,
    Outcome.OVERFLOW: SERVER_THREADPOOL_BUSY,
    Outcome.OVERLOADED: SERVER_THREADPOOL_BUSY,
    Outcome.TIMEOUT: TIMEOUT,
    Outcome.CONNECT_FAILURE: CONNECTION_CLOSED,
    Outcome.RESET: CONNECTION_CLOSED,
    Outcome.BAD_REQUEST: CODEC_EXCEPTION,
    Outcome.INTERNAL: UNKNOWN,
    Outcome.UPSTREAM_ERROR: UNKNOWN,
    Outcome.CLIENT_ERROR: CODEC_EXCEPTION,
    Outcome.APP_ERROR: UNKNOWN,
    Outcome.OK: SUCCESS,
}


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"UNKNOWN_STATUS_{status}")


def status_outcome(status: int) -> Outcome:
    """Outcome of a provider response by status alone (unknown statuses are upstream errors)."""
    return _STATUS_OUTCOME.get(status, Outcome.UPSTREAM_ERROR)


def response_outcome(status: int, sofa_response: Any = None) -> Outcome:
    """Outcome including a decoded :class:`~meshd.codec.bolt.body.SofaResponse` when available."""
    if status == SUCCESS and sofa_response is not None:
        app = getattr(sofa_response, "app_response", None)
        if getattr(sofa_response, "is_error", False):
            return Outcome.APP_ERROR
        if isinstance(app, JavaObject) and "detailMessage" in app and "stackTrace" in app:
            return Outcome.APP_ERROR
    return status_outcome(status)


def status_for(outcome: Outcome) -> int:
    """Status meshd sends in a status-only response for a request it answers itself (docs/protocols.md §5)."""
    return _OUTCOME_STATUS[outcome]
