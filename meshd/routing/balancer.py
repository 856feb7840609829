"""Load balancers: pure pickers over a host list, with injected randomness.

Each balancer is built for one list of candidate hosts (a cluster's healthy set, or a subset's) and
rebuilt when that list changes. ``pick(exclude)`` returns a host not in ``exclude`` when one exists
(retries avoid hosts they already tried), else any host, else None. Hosts of weight 0 are never picked.
``run`` is how many requests of one read one pick may serve (the cluster's ``requests_per_pick``; the RPC
read loop sends that many consecutive requests of one route to the host it picked): 1 for ``least_request``,
whose picks depend on the requests just sent.

- ``round_robin``: in turn, ignoring weights.
- ``random``: uniform.
- ``weighted_round_robin``: earliest-deadline-first over ``1/weight`` (Envoy's EDF scheduler): smooth,
  exact proportions, O(log n) per pick.
- ``least_request``: power of two choices on active requests, normalised by weight.
"""

from __future__ import annotations

import heapq
import random
from typing import Collection, Sequence

from meshd.upstream.host import Host


class Balancer:
    name = "base"
    by_load = False                           # picks read the hosts' active requests: one pick per request

    def __init__(self, hosts: Sequence[Host], rng: random.Random, run: int = 1) -> None:
        self.hosts = [h for h in hosts if h.weight > 0]
        self.rng = rng
        self.run = 1 if self.by_load else run

    def pick(self, exclude: Collection[Host] = ()) -> Host | None:
        if not self.hosts:
            return None
        host = self._next()
        if not exclude or host not in exclude:
            return host
        for _ in range(len(self.hosts)):
            host = self._next()
            if host not in exclude:
                return host
        fresh = [h for h in self.hosts if h not in exclude]
        return self.rng.choice(fresh) if fresh else host

    def _next(self) -> Host:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {[h.address for h in self.hosts]}>"


class RoundRobin(Balancer):
    name = "round_robin"

    def __init__(self, hosts: Sequence[Host], rng: random.Random, run: int = 1) -> None:
        super().__init__(hosts, rng, run)
        self._i = rng.randrange(len(self.hosts)) if self.hosts else 0   # spread sidecars' first picks

    def _next(self) -> Host:
        self._i = (self._i + 1) % len(self.hosts)
        return self.hosts[self._i]

    def pick(self, exclude: Collection[Host] = ()) -> Host | None:
        hosts = self.hosts
        if exclude or not hosts:
            return super().pick(exclude)
        i = self._i = (self._i + 1) % len(hosts)     # the common case, without the _next call
        return hosts[i]


class Random(Balancer):
    name = "random"

    def _next(self) -> Host:
        return self.hosts[int(self.rng.random() * len(self.hosts))]


class WeightedRoundRobin(Balancer):
    """EDF: each host's next deadline advances by 1/weight when picked."""

    name = "weighted_round_robin"

    def __init__(self, hosts: Sequence[Host], rng: random.Random, run: int = 1) -> None:
        super().__init__(hosts, rng, run)
        # offset start deadlines randomly inside the first period so sidecars don't all start alike
        self._heap = [(rng.random() / h.weight, i, h) for i, h in enumerate(self.hosts)]
        heapq.heapify(self._heap)
        self._seq = len(self._heap)

    def _next(self) -> Host:
        deadline, _, host = self._heap[0]
        self._seq += 1
        heapq.heapreplace(self._heap, (deadline + 1.0 / host.weight, self._seq, host))
        return host


class LeastRequest(Balancer):
    """Power of two choices; with unequal weights compares ``(active + 1) / weight``."""

    name = "least_request"
    by_load = True

    def _next(self) -> Host:
        hosts = self.hosts
        n = len(hosts)
        if n == 1:
            return hosts[0]
        rnd = self.rng.random
        a = hosts[int(rnd() * n)]
        b = hosts[int(rnd() * n)]
        if (a.active_requests + 1) * b.weight <= (b.active_requests + 1) * a.weight:
            return a
        return b


BALANCERS: dict[str, type[Balancer]] = {
    cls.name: cls for cls in (RoundRobin, Random, WeightedRoundRobin, LeastRequest)
}


def make_balancer(policy: str, hosts: Sequence[Host], rng: random.Random, run: int = 1) -> Balancer:
    return BALANCERS[policy](hosts, rng, run)
