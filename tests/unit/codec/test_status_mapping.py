"""Dubbo / Bolt statuses ↔ Outcome, and the in-protocol rejects of docs/protocols.md §5."""

from __future__ import annotations

import pytest

from codec_helpers import feed_all
from meshd.codec import bolt, dubbo
from meshd.codec.base import FrameTooLarge
from meshd.codec.bolt import status as bs
from meshd.codec.dubbo import status as ds
from meshd.codec.hessian2 import JavaObject
from meshd.codec.outcome import Outcome

# docs/protocols.md §5: condition → (Dubbo status, Bolt status)
SECTION_5 = {
    Outcome.NO_ROUTE: (60, 6),
    Outcome.NO_HEALTHY_UPSTREAM: (60, 0x10),
    Outcome.BLOCKED: (100, 4),
    Outcome.OVERFLOW: (100, 4),
    Outcome.TIMEOUT: (31, 7),
    Outcome.CONNECT_FAILURE: (80, 0x10),
    Outcome.RESET: (80, 0x10),
    Outcome.BAD_REQUEST: (40, 9),
    Outcome.INTERNAL: (80, 3),
}


@pytest.mark.parametrize("outcome,statuses", SECTION_5.items(), ids=lambda v: getattr(v, "name", None))
def test_local_outcomes_follow_section_5(outcome, statuses):
    assert (ds.status_for(outcome), bs.status_for(outcome)) == statuses


def test_every_outcome_has_a_status_in_both_protocols():
    for outcome in Outcome:
        assert ds.status_for(outcome) in ds.STATUS_NAMES
        assert bs.status_for(outcome) in bs.STATUS_NAMES


@pytest.mark.parametrize("status,outcome", [
    (20, Outcome.OK), (25, Outcome.UPSTREAM_ERROR), (30, Outcome.TIMEOUT), (31, Outcome.TIMEOUT),
    (35, Outcome.RESET), (40, Outcome.CLIENT_ERROR), (50, Outcome.UPSTREAM_ERROR), (60, Outcome.UPSTREAM_ERROR),
    (70, Outcome.UPSTREAM_ERROR), (80, Outcome.UPSTREAM_ERROR), (90, Outcome.CLIENT_ERROR),
    (100, Outcome.OVERLOADED), (123, Outcome.UPSTREAM_ERROR),
])
def test_dubbo_status_outcomes(status, outcome):
    assert ds.status_outcome(status) is outcome


def test_dubbo_exception_results_are_app_errors():
    for rtype in range(6):
        expected = Outcome.APP_ERROR if rtype in (0, 3) else Outcome.OK
        assert ds.response_outcome(20, rtype) is expected
    assert ds.response_outcome(100, None) is Outcome.OVERLOADED
    assert ds.status_name(100) == "SERVER_THREADPOOL_EXHAUSTED_ERROR" and ds.status_name(7) == "UNKNOWN_STATUS_7"


@pytest.mark.parametrize("status,outcome", [
    (0, Outcome.OK), (1, Outcome.UPSTREAM_ERROR), (2, Outcome.APP_ERROR), (3, Outcome.UPSTREAM_ERROR),
    (4, Outcome.OVERLOADED), (5, Outcome.UPSTREAM_ERROR), (6, Outcome.UPSTREAM_ERROR), (7, Outcome.TIMEOUT),
    (8, Outcome.UPSTREAM_ERROR), (9, Outcome.CLIENT_ERROR), (0x10, Outcome.RESET), (0x11, Outcome.UPSTREAM_ERROR),
    (0x12, Outcome.CLIENT_ERROR), (0x99, Outcome.UPSTREAM_ERROR),
])
def test_bolt_status_outcomes(status, outcome):
    assert bs.status_outcome(status) is outcome


def test_bolt_sofa_response_errors_are_app_errors():
    frame = bolt.encode_response(1, None, is_error=True, error_msg="x")
    (resp,) = feed_all(bolt.BoltDecoder(), frame)
    assert bs.response_outcome(0, resp.sofa_response()) is Outcome.APP_ERROR
    exc = JavaObject("java.lang.IllegalStateException", {"detailMessage": "m", "stackTrace": [], "cause": None})
    (resp,) = feed_all(bolt.BoltDecoder(), bolt.encode_response(1, exc))
    assert bs.response_outcome(0, resp.sofa_response()) is Outcome.APP_ERROR
    (resp,) = feed_all(bolt.BoltDecoder(), bolt.encode_response(1, {"ok": 1}))
    assert bs.response_outcome(0, resp.sofa_response()) is Outcome.OK


def test_dubbo_reject_echoes_id_and_skips_oneway():
    (req,) = feed_all(dubbo.DubboDecoder(), dubbo.encode_request(2**40, "S", "m"))
    frame = dubbo.reject(req, Outcome.BLOCKED, "flow control blocked (resource=S:m, type=BlockTypeFlowControl)")
    (resp,) = feed_all(dubbo.DubboDecoder(), frame)
    assert (resp.request_id, resp.status) == (2**40, 100)
    assert resp.error_message() == "meshd: flow control blocked (resource=S:m, type=BlockTypeFlowControl)"
    (oneway,) = feed_all(dubbo.DubboDecoder(), dubbo.encode_request(1, "S", "m", twoway=False))
    assert dubbo.reject(oneway, Outcome.NO_ROUTE) is None


def test_dubbo_reject_from_a_frame_too_large_header():
    dec = dubbo.DubboDecoder(max_frame_size=10)
    dec.receive_data(dubbo.encode_request(5, "S", "m"))
    with pytest.raises(FrameTooLarge) as info:
        dec.next_event()
    (resp,) = feed_all(dubbo.DubboDecoder(), dubbo.reject(info.value.header, Outcome.BAD_REQUEST, "too large"))
    assert (resp.request_id, resp.status, resp.error_message()) == (5, 40, "meshd: too large")


@pytest.mark.parametrize("kw", [{}, {"version": 2}, {"version": 2, "ver1": 2, "crc": True}])
def test_bolt_reject_keeps_version_crc_and_codec(kw):
    (req,) = feed_all(bolt.BoltDecoder(), bolt.encode_request(77, "a:1.0", "m", **kw))
    frame = bolt.reject(req, Outcome.TIMEOUT)
    (resp,) = feed_all(bolt.BoltDecoder(), frame)
    assert (resp.request_id, resp.status, resp.cmdcode) == (77, 7, 2)
    assert (resp.version, resp.ver1, resp.crc, resp.codec) == (req.version, req.ver1, req.crc, req.codec)
    assert resp.class_name() is None and resp.header_map() == {} and resp.content() == b""
    (oneway,) = feed_all(bolt.BoltDecoder(), bolt.encode_request(1, "a:1.0", "m", oneway=True))
    assert bolt.reject(oneway, Outcome.TIMEOUT) is None


def test_bolt_reject_from_a_frame_too_large_header():
    dec = bolt.BoltDecoder(max_frame_size=10)
    dec.receive_data(bolt.encode_request(6, "a:1.0", "m", version=2, ver1=2, crc=True))
    with pytest.raises(FrameTooLarge) as info:
        dec.next_event()
    (resp,) = feed_all(bolt.BoltDecoder(), bolt.reject(info.value.header, Outcome.BAD_REQUEST))
    assert (resp.request_id, resp.status, resp.version, resp.crc) == (6, 9, 2, True)
