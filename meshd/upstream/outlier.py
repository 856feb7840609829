"""Passive outlier detection (Envoy's consecutive-error ejection), a plain object fed with outcomes.

Every finished attempt is recorded against its host. Three consecutive-failure counters:

- ``5xx``: HTTP status >= 500, RPC error statuses (Dubbo 70/80/100/31..., Bolt errors) — and, unless
  ``split_external_local_origin_errors``, the local-origin failures below;
- ``gateway``: HTTP 502/503/504, RPC overload/timeout statuses, and (unless split) local-origin failures;
- ``local``: connect failures, resets and timeouts observed by meshd (counted alone when split).

A success (anything else, including application exceptions and 4xx: the provider worked) resets the
counters it belongs to. Reaching a threshold ejects the host for ``base_ejection_time × n`` (n = its
ejection count, capped at ``max_ejection_time``), unless that would eject more than
``max_ejection_percent`` of the cluster — at least one host may always be ejected, as in Envoy. An
ejected host returns by itself when its time is up; its ejection count decays by one per ``interval``
spent healthy.
"""

from __future__ import annotations

from typing import Callable

from meshd.codec.outcome import Outcome
from meshd.config import OutlierDetection

_LOCAL = (Outcome.CONNECT_FAILURE, Outcome.RESET, Outcome.TIMEOUT)


class OutlierDetector:
    def __init__(self, settings: OutlierDetection, clock: Callable[[], float],
                 hosts: Callable[[], list], on_eject: Callable[[object, float], None]) -> None:
        self.settings = settings
        self.clock = clock
        self.hosts = hosts
        self.on_eject = on_eject

    def record(self, host, outcome: Outcome, status: int | None, http: bool) -> bool:
        """Record one attempt's result; True when this result ejected the host."""
        s = self.settings
        c = host.consecutive
        local = outcome in _LOCAL
        if http and status is not None:
            is_5xx = status >= 500
            is_gateway = status in (502, 503, 504)
        else:
            is_5xx = outcome in (Outcome.UPSTREAM_ERROR, Outcome.OVERLOADED) or (outcome is Outcome.TIMEOUT
                                                                              and status is not None)
            is_gateway = outcome is Outcome.OVERLOADED or (outcome is Outcome.TIMEOUT and status is not None)
        if local and not s.split_external_local_origin_errors:
            is_5xx = is_gateway = True
        kinds = []
        for kind, failed, threshold in (("5xx", is_5xx, s.consecutive_5xx),
                                        ("gateway", is_gateway, s.consecutive_gateway_failure),
                                        ("local", local and s.split_external_local_origin_errors,
                                         s.consecutive_local_origin_failure)):
            if failed:
                c[kind] = c.get(kind, 0) + 1
                if c[kind] >= threshold:
                    kinds.append(kind)
            elif c.get(kind):
                c[kind] = 0
        if kinds and self._may_eject(host):
            self._eject(host)
            return True
        return False

    def _may_eject(self, host) -> bool:
        now = self.clock()
        if host.ejected_until > now:
            return False
        hosts = self.hosts()
        ejected = sum(1 for h in hosts if h.ejected_until > now)
        limit = len(hosts) * self.settings.max_ejection_percent / 100.0
        return ejected == 0 or ejected + 1 <= limit

    def _eject(self, host) -> None:
        s = self.settings
        now = self.clock()
        if host.ejections and host.ejected_until and now > host.ejected_until:
            decay = int((now - host.ejected_until) / s.interval) if s.interval > 0 else 0
            host.ejections = max(0, host.ejections - decay)
        host.ejections += 1
        duration = min(s.base_ejection_time * host.ejections, max(s.base_ejection_time, s.max_ejection_time))
        host.ejected_until = now + duration
        host.consecutive.clear()
        self.on_eject(host, duration)
