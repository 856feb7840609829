"""Pure pool decisions and retry decisions."""

from __future__ import annotations

import random

from meshd.codec.outcome import Outcome, Result
from meshd.config import RetryPolicy
from meshd.proxy.retry import RetryState
from meshd.upstream.pool import CONNECT, OVERFLOW, USE, WAIT, PoolState


def test_pool_reuses_idle_lifo_and_connects_up_to_max():
    s = PoolState(max_connections=2, max_pending=1)
    assert s.acquire("w1") == (CONNECT, None)
    assert s.acquire("w2") == (CONNECT, None)
    assert s.acquire("w3") == (WAIT, None)
    assert s.acquire("w4") == (OVERFLOW, None)
    assert s.connected("c1") == "w1"
    assert s.connected("c2") == "w2"
    assert s.release("c1", True) == (USE, "w3")
    assert s.release("c2", True) == ("", None)
    assert s.release("c1", True) == ("", None)
    assert s.acquire("w5") == (USE, "c1"), "most recently used first"
    assert s.total == 2 and len(s.idle) == 1


def test_pool_connect_failure_fails_oldest_waiter_and_refills():
    s = PoolState(max_connections=1)
    assert s.acquire("w1") == (CONNECT, None)
    assert s.acquire("w2") == (WAIT, None)
    assert s.connect_failed() == "w1"
    assert s.refill() is True, "w2 still waits and there is room: open another"
    assert s.connected("c") == "w2"


def test_pool_not_reusable_release_opens_for_waiter_and_cancel():
    s = PoolState(max_connections=1)
    s.acquire("w1")
    s.connected("c1")
    s.acquire("w2")
    assert s.release("c1", False) == (CONNECT, None)
    assert s.cancel("w2") is True and s.cancel("w2") is False
    assert s.discard("c-unknown") == ("", None)


def policy(**kw):
    return RetryPolicy(**{"retry_back_off": {"base_interval": "10ms"}, **kw})


def test_retry_conditions():
    rng = random.Random(1)
    st = RetryState(policy(retry_on="5xx", num_retries=3), rng, http=True)
    assert st.retriable(Result(Outcome.UPSTREAM_ERROR, 500))
    assert st.retriable(Result(Outcome.CONNECT_FAILURE))
    assert not st.retriable(Result(Outcome.CLIENT_ERROR, 404))
    gw = RetryState(policy(retry_on="gateway-error"), rng, http=True)
    assert gw.retriable(Result(Outcome.OVERLOADED, 503)) and not gw.retriable(Result(Outcome.UPSTREAM_ERROR, 500))
    codes = RetryState(policy(retry_on="retriable-status-codes", retriable_status_codes=[418]), rng, http=True)
    assert codes.retriable(Result(Outcome.CLIENT_ERROR, 418))
    cf = RetryState(policy(retry_on="connect-failure"), rng, http=True)
    assert cf.retriable(Result(Outcome.CONNECT_FAILURE)) and not cf.retriable(Result(Outcome.RESET))
    rpc = RetryState(policy(retry_on="overloaded,app-error"), rng, http=False)
    assert rpc.retriable(Result(Outcome.OVERLOADED, 100)) and rpc.retriable(Result(Outcome.APP_ERROR))
    assert not rpc.retriable(Result(Outcome.UPSTREAM_ERROR, 80))


def test_retry_budget_of_attempts_and_backoff_bounds():
    st = RetryState(policy(retry_on="reset", num_retries=2), random.Random(2), http=True)
    d1 = st.next_delay(Result(Outcome.RESET))
    d2 = st.next_delay(Result(Outcome.RESET))
    assert 0 <= d1 <= 0.010 and 0 <= d2 <= 0.020
    assert st.next_delay(Result(Outcome.RESET)) is None and st.attempts == 3


def test_non_idempotent_not_retried_unless_allowed():
    assert not RetryState(policy(retry_on="5xx"), random.Random(), http=True, idempotent=False).enabled
    assert RetryState(policy(retry_on="5xx", retry_non_idempotent=True), random.Random(), http=True,
                      idempotent=False).enabled
