"""The sans-IO ADS client core (:mod:`discovery.xds.ads_state`) as protocol transcripts: responses in,
requests out, no sockets. Time is a hand-moved clock; the handler and ``on_missing`` are recorders."""

from __future__ import annotations

import json
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2 as d
from google.protobuf import any_pb2

from discovery.xds.ads_state import (CLUSTER, ENDPOINT, LISTENER, ROUTE, WILDCARD, AdsState, Update,
                                     resource_name)
from discovery.xds.transport import backoff_delay
from integration.xds import istio

NODE = base_pb2.Node(id="sidecar~127.0.0.1~t.default~default.svc.cluster.local")


def pack(message: Any, type_url: str | None = None) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    if type_url is not None:
        packed.type_url = type_url
    return packed


def cds(*names: str) -> list[any_pb2.Any]:
    return [pack(istio.eds_cluster(n)) for n in names]


def eds(*names: str, port: int = 1) -> list[any_pb2.Any]:
    return [pack(istio.load_assignment(n, istio.locality([istio.lb_endpoint("127.0.0.1", port)]))) for n in names]


def sotw(url: str, version: str, nonce: str, resources: list[any_pb2.Any]) -> d.DiscoveryResponse:
    return d.DiscoveryResponse(type_url=url, version_info=version, nonce=nonce, resources=resources)


def delta(url: str, nonce: str, resources: dict[str, tuple[str, any_pb2.Any]] | None = None,
          removed: tuple[str, ...] = (), version: str = "") -> d.DeltaDiscoveryResponse:
    return d.DeltaDiscoveryResponse(type_url=url, nonce=nonce, system_version_info=version, removed_resources=removed,
                                    resources=[d.Resource(name=n, version=v, resource=p)
                                               for n, (v, p) in (resources or {}).items()])


class Harness:
    """An :class:`AdsState` with a recording handler (answers from ``self.answer``) and a manual clock."""

    def __init__(self, delta: bool = False, timeout: float = 15.0) -> None:
        self.now = 100.0
        self.updates: list[Update] = []
        self.missing: list[tuple[str, str]] = []
        self.answer: Any = None  # None: ACK; a string: NACK; an exception: raised
        self.state = AdsState(NODE, on_update=self._handle, on_missing=lambda u, n: self.missing.append((u, n)),
                              delta=delta, initial_fetch_timeout=timeout, clock=lambda: self.now,
                              wall_clock=lambda: 1234.5)

    def _handle(self, update: Update) -> str | None:
        self.updates.append(update)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def tick(self, seconds: float) -> list[tuple[str, str]]:
        self.now += seconds
        return self.state.expire()


def one(reqs: list[Any]) -> Any:
    assert len(reqs) == 1, reqs
    return reqs[0]


def shape(req: d.DiscoveryRequest) -> tuple[str, str, list[str], str, str | None]:
    err = req.error_detail.message if req.HasField("error_detail") else None
    return req.type_url.rsplit(".", 1)[-1], req.version_info, list(req.resource_names), req.response_nonce, err


# ------------------------------------------------------------------------------------------------ SotW
def test_sotw_first_requests_order_node_ack_and_handler_nack() -> None:
    h = Harness()
    s = h.state
    assert s.subscribe(ENDPOINT, ["A"]) == [] and s.subscribe(ROUTE, ["r"]) == []   # before any stream
    s.subscribe(LISTENER, [WILDCARD])
    s.subscribe(CLUSTER, [WILDCARD])
    first = s.stream_opened()
    assert [shape(r) for r in first] == [("Cluster", "", ["*"], "", None), ("Listener", "", ["*"], "", None),
                                        ("ClusterLoadAssignment", "", ["A"], "", None),
                                        ("RouteConfiguration", "", ["r"], "", None)]
    assert [r.HasField("node") for r in first] == [True, False, False, False] and first[0].node == NODE

    ack = one(s.on_response(sotw(CLUSTER, "1", "n1", cds("A", "B"))))
    assert shape(ack) == ("Cluster", "1", ["*"], "n1", None) and not ack.HasField("node")
    assert repr(h.updates[-1]) == "<Update Cluster v='1' nonce='n1' resources=['A', 'B']>"
    assert h.updates[-1].resources["A"] == cds("A")[0] and s.accepted_version(CLUSTER) == "1"

    h.answer = "cluster B: bad lb_policy"
    nack = one(s.on_response(sotw(CLUSTER, "2", "n2", cds("A", "B", "C"))))
    assert shape(nack) == ("Cluster", "1", ["*"], "n2", "cluster B: bad lb_policy")  # version = last accepted
    assert nack.error_detail.code == 3 and s.accepted_version(CLUSTER) == "1"
    st = s.status()[CLUSTER]
    assert (st["updates_accepted"], st["updates_rejected"], st["resources_known"]) == (1, 1, 2)
    assert st["last_nack"] == {"version": "1", "nonce": "n2", "error": "cluster B: bad lb_policy", "time": 1234.5}
    assert json.loads(json.dumps(s.status()))[CLUSTER] == st                     # JSON-able

    h.answer = KeyError("lb")
    nack = one(s.on_response(sotw(CLUSTER, "3", "n3", cds("A", "D"))))
    assert shape(nack)[1] == "1" and nack.error_detail.message == "handler raised KeyError: 'lb'"


def test_sotw_transport_nacks_without_calling_the_handler() -> None:
    h = Harness()
    s = h.state
    s.subscribe(CLUSTER, [WILDCARD])
    s.subscribe(ENDPOINT, ["A"])
    s.stream_opened()
    one(s.on_response(sotw(CLUSTER, "1", "n1", cds("A"))))
    cases = [
        (sotw(CLUSTER, "2", "n2", cds("A") + [pack(istio.load_assignment("X"))]),
         "resource [1] has type_url 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', "
         "the response is for 'type.googleapis.com/envoy.config.cluster.v3.Cluster'"),
        (sotw(CLUSTER, "3", "n3", cds("A", "B", "A")), "duplicate resource name 'A' in one response"),
        (sotw(CLUSTER, "4", "n4", [pack(istio.eds_cluster("x"))] + [pack(base_pb2.Node(), CLUSTER)]),
         "resource [1] has no name"),
    ]
    for resp, error in cases:
        nack = one(s.on_response(resp))
        assert shape(nack) == ("Cluster", "1", ["*"], resp.nonce, f"Cluster response {resp.nonce!r} rejected: {error}")
    assert len(h.updates) == 1 and s.status()[CLUSTER]["updates_rejected"] == 3

    stray = one(s.on_response(sotw(ROUTE, "1", "r1", [pack(istio.route_config("r"))])))  # never subscribed
    assert shape(stray) == ("RouteConfiguration", "", [], "r1",
                            f"response for type_url {ROUTE!r}, which this client never subscribed")
    assert ROUTE not in s.status() and len(h.updates) == 1


def test_sotw_full_state_removal_unchanged_response_and_reconnect() -> None:
    h = Harness()
    s = h.state
    s.subscribe(CLUSTER, [WILDCARD])
    s.subscribe(ENDPOINT, ["A", "B"])
    s.stream_opened()
    s.on_response(sotw(CLUSTER, "1", "c1", cds("A", "B")))
    s.on_response(sotw(ENDPOINT, "1", "e1", eds("A", "B")))
    s.on_response(sotw(CLUSTER, "2", "c2", cds("A")))
    assert h.updates[-1].removed == frozenset({"B"}) and list(h.updates[-1].resources) == ["A"]
    s.on_response(sotw(ENDPOINT, "2", "e2", eds("A", port=2)))        # EDS/RDS: no removal in SotW
    assert h.updates[-1].removed == frozenset() and s.status()[ENDPOINT]["resources_known"] == 2

    count = len(h.updates)
    ack = one(s.on_response(sotw(CLUSTER, "3", "c3", cds("A"))))      # same content: ACK, handler not called
    assert shape(ack) == ("Cluster", "3", ["*"], "c3", None) and len(h.updates) == count

    s.stream_closed()                                                    # the control plane went away
    assert s.subscribe(ENDPOINT, ["A", "B", "C"]) == []                   # remembered for the next stream
    assert s.status()[CLUSTER]["resources_known"] == 1                    # nothing emptied
    again = s.stream_opened()
    assert [shape(r) for r in again] == [("Cluster", "3", ["*"], "", None),
                                         ("ClusterLoadAssignment", "2", ["A", "B", "C"], "", None)]
    assert again[0].node == NODE
    one(s.on_response(sotw(CLUSTER, "3", "x1", cds("A"))))                # server resends the same: no handler
    assert len(h.updates) == count


def test_sotw_subscription_changes_send_the_full_set_with_the_latest_nonce() -> None:
    h = Harness()
    s = h.state
    s.subscribe(ENDPOINT, [])
    assert s.stream_opened() == []                                        # an empty set is never sent first
    assert s.subscribe(ENDPOINT, []) == []
    first = one(s.subscribe(ENDPOINT, ["A"]))
    assert shape(first) == ("ClusterLoadAssignment", "", ["A"], "", None) and first.node == NODE
    s.on_response(sotw(ENDPOINT, "1", "e1", eds("A")))
    assert shape(one(s.subscribe(ENDPOINT, ["B", "A"]))) == ("ClusterLoadAssignment", "1", ["A", "B"], "e1", None)
    assert s.subscribe(ENDPOINT, ("A", "B")) == []                        # same set: nothing sent
    assert shape(one(s.subscribe(ENDPOINT, ["B"]))) == ("ClusterLoadAssignment", "1", ["B"], "e1", None)
    assert s.status()[ENDPOINT]["resources_known"] == 0                   # A was dropped with its subscription
    assert shape(one(s.subscribe(ENDPOINT, []))) == ("ClusterLoadAssignment", "1", [], "e1", None)
    one(s.on_response(sotw(ENDPOINT, "2", "e2", [])))                     # an empty answer is fine
    nack = one(s.on_response(sotw(ENDPOINT, "3", "e3", eds("A"))))       # resources nobody asked for
    assert "not subscribed" in nack.error_detail.message

    with pytest.raises(ValueError, match="wildcard is for CDS and LDS only"):
        s.subscribe(ENDPOINT, [WILDCARD])
    with pytest.raises(TypeError):
        s.subscribe(CLUSTER, "*")
    with pytest.raises(ValueError, match="non-empty"):
        s.subscribe(CLUSTER, [""])


@pytest.mark.parametrize("is_delta", [False, True])
def test_subscriptions_made_by_the_handler_follow_the_ack(is_delta: bool) -> None:
    h = Harness(delta=is_delta)
    s = h.state
    s.subscribe(CLUSTER, [WILDCARD])
    s.stream_opened()
    h.answer = None
    h.state.on_update = lambda u: s.subscribe(ENDPOINT, sorted(u.resources))  # a CDS handler wanting EDS
    resp = (delta(CLUSTER, "c1", {"A": ("1", cds("A")[0])}) if is_delta else sotw(CLUSTER, "1", "c1", cds("A")))
    ack, sub = s.on_response(resp)
    assert (ack.type_url, ack.response_nonce, sub.type_url, sub.response_nonce) == (CLUSTER, "c1", ENDPOINT, "")
    assert list(sub.resource_names_subscribe if is_delta else sub.resource_names) == ["A"]


def test_does_not_exist_deadlines() -> None:
    h = Harness(timeout=5)
    s = h.state
    s.subscribe(CLUSTER, [WILDCARD])
    s.subscribe(ENDPOINT, ["A", "ghost"])
    assert s.next_deadline() is None                                      # no stream, no deadline
    s.stream_opened()
    assert s.next_deadline() == 105.0                                     # named only, not the wildcard
    s.on_response(sotw(ENDPOINT, "1", "e1", eds("A")))
    assert h.tick(4.9) == [] and h.tick(0.2) == [(ENDPOINT, "ghost")] and h.missing == [(ENDPOINT, "ghost")]
    assert h.tick(100) == [] and s.status()[ENDPOINT]["missing"] == ["ghost"]     # once

    s.subscribe(ENDPOINT, ["A", "ghost", "late"])                        # armed when requested
    h.tick(2)
    s.stream_closed()                                                     # a closed stream drops deadlines
    assert s.next_deadline() is None
    h.tick(10)
    s.stream_opened()                                                     # re-armed on the new stream
    assert s.next_deadline() == h.now + 5 and h.missing == [(ENDPOINT, "ghost")]
    h.answer = "bad"
    s.on_response(sotw(ENDPOINT, "2", "e2", eds("late")))                 # it exists, even if rejected
    assert s.next_deadline() is None and h.tick(10) == []


# ----------------------------------------------------------------------------------------------- Delta
def test_delta_subscribe_ack_nack_removed_and_does_not_exist() -> None:
    h = Harness(delta=True)
    s = h.state
    s.subscribe(ENDPOINT, ["A", "ghost"])
    s.subscribe(CLUSTER, [WILDCARD])
    c0, e0 = s.stream_opened()
    assert (c0.type_url, list(c0.resource_names_subscribe), c0.response_nonce, c0.node) == (CLUSTER, ["*"], "", NODE)
    assert (list(e0.resource_names_subscribe), dict(e0.initial_resource_versions), e0.HasField("node")) == \
        (["A", "ghost"], {}, False)

    ack = one(s.on_response(delta(CLUSTER, "d1", {"A": ("1", cds("A")[0]), "B": ("1", cds("B")[0])}, version="1")))
    assert (ack.type_url, ack.response_nonce, ack.HasField("error_detail")) == (CLUSTER, "d1", False)
    assert list(ack.resource_names_subscribe) == [] and s.accepted_version(CLUSTER) == "1"

    one(s.on_response(delta(ENDPOINT, "d2", {"A": ("1", eds("A")[0])}, removed=("ghost",))))
    assert h.missing == [(ENDPOINT, "ghost")]                             # Delta's explicit does-not-exist
    assert h.updates[-1].removed == frozenset() and s.next_deadline() is None

    one(s.on_response(delta(CLUSTER, "d3", removed=("B", "never-had"), version="2")))
    assert h.updates[-1].removed == frozenset({"B"}) and h.updates[-1].resources == {}

    h.answer = "endpoint A: no port"
    nack = one(s.on_response(delta(ENDPOINT, "d4", {"A": ("2", eds("A", port=0)[0])})))
    assert (nack.response_nonce, nack.error_detail.code, nack.error_detail.message) == ("d4", 3, "endpoint A: no port")
    h.answer = None

    count = len(h.updates)
    one(s.on_response(delta(ENDPOINT, "d5", {"A": ("1", eds("A")[0])})))   # the version it has: no handler call
    assert len(h.updates) == count

    sub = one(s.subscribe(ENDPOINT, ["A", "new"]))                         # spontaneous: no nonce
    assert (list(sub.resource_names_subscribe), list(sub.resource_names_unsubscribe), sub.response_nonce) == \
        (["new"], ["ghost"], "")
    unsub = one(s.subscribe(ENDPOINT, ["new"]))
    assert (list(unsub.resource_names_subscribe), list(unsub.resource_names_unsubscribe)) == ([], ["A"])

    s.stream_closed()
    s.subscribe(ENDPOINT, ["new", "A"])
    c1, e1 = s.stream_opened()
    assert dict(c1.initial_resource_versions) == {"A": "1"} and c1.node == NODE   # what is accepted now
    assert (list(e1.resource_names_subscribe), dict(e1.initial_resource_versions)) == (["A", "new"], {})


def test_delta_transport_nacks() -> None:
    h = Harness(delta=True)
    s = h.state
    s.subscribe(CLUSTER, [WILDCARD])
    s.stream_opened()
    a = cds("A")[0]
    cases = [
        (delta(CLUSTER, "1", {"A": ("1", pack(istio.load_assignment("A")))}), "resource 'A' has type_url"),
        (d.DeltaDiscoveryResponse(type_url=CLUSTER, nonce="2", resources=[d.Resource(name="A", resource=a),
                                                                          d.Resource(name="A", resource=a)]),
         "duplicate resource name 'A'"),
        (delta(CLUSTER, "3", {"A": ("1", a)}, removed=("A",)), "both updated and removed"),
        (d.DeltaDiscoveryResponse(type_url=CLUSTER, nonce="4", resources=[d.Resource(name="A", version="1")]),
         "has no body"),
    ]
    for resp, error in cases:
        nack = one(s.on_response(resp))
        assert nack.response_nonce == resp.nonce and error in nack.error_detail.message, nack
    assert h.updates == []
    stray = one(s.on_response(delta(LISTENER, "5", {"l": ("1", pack(istio.api_listener("h", 1)))})))
    assert "never subscribed" in stray.error_detail.message
    assert list(stray.resource_names_unsubscribe) == ["*"]                  # never the legacy wildcard


def test_resource_names_and_backoff() -> None:
    assert resource_name(cds("outbound|80||a")[0]) == "outbound|80||a"
    assert resource_name(eds("e")[0]) == "e"
    assert resource_name(pack(istio.api_listener("h", 80))) == "h:80"
    assert resource_name(pack(istio.route_config("r"))) == "r"
    assert [round(backoff_delay(n, 0.1, 5.0, 0.5), 3) for n in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff_delay(0, 0.1, 5.0, 0.0) == pytest.approx(0.08)
    assert backoff_delay(0, 0.1, 5.0, 0.999) == pytest.approx(0.11996)
    assert backoff_delay(100, 0.1, 5.0, 0.999) == 5.0
