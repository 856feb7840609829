"""meshd's ADS client (:class:`discovery.xds.transport.AdsClient`) against the real test control plane
(:class:`integration.xds.server.AdsServer`), both on one asyncio loop, 127.0.0.1 port 0 or a unix socket.
Every scenario runs for SotW and Delta; the server's ACK/NACK log is the witness of what the client sent."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import pytest
from envoy.config.core.v3 import base_pb2

from discovery.xds.transport import CLUSTER, ENDPOINT, WILDCARD, AdsClient, Update
from integration.xds import istio
from integration.xds.server import AdsServer
from integration.xds.snapshot import StoredResource

NODE = base_pb2.Node(id=istio.sidecar_node_id(pod="meshd"))
T = TypeVar("T")
VARIANTS = pytest.mark.parametrize("variant", ["sotw", "delta"])


class Probe:
    """The client's callbacks, recorded; ``reject(update)`` decides the handler's answer; ``until`` waits."""

    def __init__(self) -> None:
        self.updates: list[Update] = []
        self.missing: list[tuple[str, str]] = []
        self.connection: list[bool] = []
        self.reject: Callable[[Update], str | None] = lambda update: None
        self._poked = asyncio.Event()

    def client(self, server: str, variant: str, **kwargs: Any) -> AdsClient:
        return AdsClient(server, NODE, on_update=self._update, on_missing=self._missing,
                         on_connection=self._connection, delta=variant == "delta", rng=lambda: 0.5, **kwargs)

    def _update(self, update: Update) -> str | None:
        self.updates.append(update)
        self._poked.set()
        return self.reject(update)

    def _missing(self, type_url: str, name: str) -> None:
        self.missing.append((type_url, name))
        self._poked.set()

    def _connection(self, connected: bool) -> None:
        self.connection.append(connected)
        self._poked.set()

    def of(self, type_url: str) -> list[Update]:
        return [u for u in self.updates if u.type_url == type_url]

    async def until(self, predicate: Callable[[], T], what: str, timeout: float = 5.0) -> T:
        """Wait (bounded) for a truthy ``predicate()``: re-checked on every callback, and every 20 ms for
        state that has no callback (the client's attempt counter)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := predicate()):
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout}s; updates={self.updates[-6:]} "
                                     f"missing={self.missing} connection={self.connection}")
            self._poked.clear()
            try:
                await asyncio.wait_for(self._poked.wait(), min(left, 0.02))
            except asyncio.TimeoutError:
                pass
        return result


def run(scenario: Callable[[AdsServer, Probe], Awaitable[None]], unix: bool = False) -> None:
    async def main() -> None:
        sock_dir = Path(tempfile.mkdtemp(prefix="meshd-ads-"))  # short: AF_UNIX paths are limited
        server = await AdsServer(unix_path=sock_dir / "ads.sock" if unix else None).start()
        try:
            await asyncio.wait_for(scenario(server, Probe()), 10)
        finally:
            await server.stop()
            shutil.rmtree(sock_dir, ignore_errors=True)
    asyncio.run(main())


async def started(client: AdsClient, clusters: list[str], endpoints: list[str]) -> AdsClient:
    client.subscribe(CLUSTER, clusters)
    client.subscribe(ENDPOINT, endpoints)
    await client.start()
    return client


@VARIANTS
def test_ack_handler_nack_and_removal(variant: str) -> None:
    async def scenario(server: AdsServer, probe: Probe) -> None:
        server.upsert(istio.eds_cluster("A"), istio.eds_cluster("B"), istio.load_assignment("A"))
        probe.reject = lambda u: "cluster 'bad' rejected" if "bad" in u.resources else None
        client = await started(probe.client(server.address, variant), [WILDCARD], ["A"])
        try:
            ack = await server.wait_ack("cds", "1", variant=variant)
            cds = probe.of(CLUSTER)[0]
            assert (sorted(cds.resources), cds.version if variant == "sotw" else "1") == (["A", "B"], "1")
            assert (ack.nonce, ack.node_id) == (cds.nonce, NODE.id)           # ACK = version + that nonce
            eds_ack = await server.wait_ack("eds", "1", variant=variant)
            assert eds_ack.nonce == probe.of(ENDPOINT)[0].nonce and list(probe.of(ENDPOINT)[0].resources) == ["A"]
            assert client.accepted_version(CLUSTER) == "1" and probe.connection == [True]

            server.upsert(istio.eds_cluster("bad"))                            # CDS version 2: the handler says no
            nack = await server.wait_nack("cds")
            assert (nack.error_detail, nack.error_code, nack.nonce) == ("cluster 'bad' rejected", 3,
                                                                        probe.of(CLUSTER)[-1].nonce)
            if variant == "sotw":
                assert nack.version == "1"                                      # the last ACCEPTED version
            status = client.status()["types"][CLUSTER]
            assert client.accepted_version(CLUSTER) == "1" and status["updates_rejected"] == 1
            assert status["last_nack"]["error"] == "cluster 'bad' rejected" and status["last_nack"]["version"] == "1"

            server.remove("cds", "bad")                                        # back to what was accepted:
            await server.wait_ack("cds", "3", variant=variant)                 # ACKed, the handler not called
            assert len(probe.of(CLUSTER)) == 2
            server.remove("cds", "B")
            await server.wait_ack("cds", "4", variant=variant)
            last = probe.of(CLUSTER)[-1]
            assert (last.removed, sorted(last.resources)) == (frozenset({"B"}), [] if variant == "delta" else ["A"])
            assert client.status()["types"][CLUSTER]["resources_known"] == 1
        finally:
            await client.stop()
    run(scenario)


@VARIANTS
def test_the_transport_nacks_wrong_types_and_duplicate_names(variant: str) -> None:
    async def scenario(server: AdsServer, probe: Probe) -> None:
        server.upsert(istio.eds_cluster("A"), istio.load_assignment("A"))
        client = await started(probe.client(server.address, variant), [WILDCARD], ["A"])
        try:
            await server.wait_ack("cds", "1", variant=variant)
            def served() -> Any:  # the live store (a new dict after every change): malformed data goes in here
                return server.snapshot.resources(CLUSTER)
            served()["A"].packed.type_url = ENDPOINT
            server.bump("cds")
            nack = await server.wait_nack("cds")
            assert f"has type_url {ENDPOINT!r}, the response is for {CLUSTER!r}" in nack.error_detail
            assert len(probe.of(CLUSTER)) == 1                                   # the handler never saw it
            served()["A"].packed.type_url = CLUSTER
            server.bump("cds")
            await server.wait_ack("cds", "3", variant=variant)
            if variant == "sotw":  # Delta names come from Resource.name: this server cannot repeat one
                served()["A-twin"] = StoredResource("A-twin", "3", served()["A"].packed)
                server.bump("cds")
                nack = await server.wait_nack("cds", since=len(server.log.requests))
                assert "duplicate resource name 'A' in one response" in nack.error_detail and nack.version == "3"
            assert client.status()["types"][CLUSTER]["updates_rejected"] == (2 if variant == "sotw" else 1)
        finally:
            await client.stop()
    run(scenario)


@VARIANTS
def test_restart_reconnects_with_backoff_and_restates_what_it_has(variant: str) -> None:
    async def scenario(server: AdsServer, probe: Probe) -> None:
        server.upsert(istio.eds_cluster("A"), istio.eds_cluster("B"), istio.load_assignment("A"))
        client = await started(probe.client(server.address, variant, backoff_initial=0.05, backoff_max=0.4),
                               [WILDCARD], ["A"])
        try:
            await server.wait_ack("cds", "1", variant=variant)
            await server.wait_ack("eds", "1", variant=variant)
            before = len(probe.updates)
            await server.stop()
            await probe.until(lambda: probe.connection == [True, False], "disconnect")
            await probe.until(lambda: client.attempts >= 2, "failed reconnect attempts")    # backing off
            status = client.status()
            assert not status["connected"] and status["types"][CLUSTER]["resources_known"] == 2  # nothing emptied
            assert client.accepted_version(ENDPOINT) == "1" and len(probe.updates) == before

            mark = len(server.log.requests)
            await server.start()                                                # same port
            await probe.until(lambda: probe.connection == [True, False, True], "reconnect")
            first = {r.type_url: r for r in [
                await server.wait_request(lambda r, u=url: r.type_url == u and r.kind == "request", since=mark)
                for url in (CLUSTER, ENDPOINT)]}
            cds, eds = first[CLUSTER], first[ENDPOINT]
            assert server.log.requests.index(cds) < server.log.requests.index(eds)   # CDS first
            assert (cds.resource_names, eds.resource_names, cds.node_id, cds.nonce) == (("*",), ("A",), NODE.id, "")
            if variant == "sotw":   # the last accepted versions, empty nonces
                assert (cds.version, eds.version, eds.nonce) == ("1", "1", "")
                await server.wait_ack("eds", "1", variant=variant, timeout=5)
            else:                   # the versions of what it holds
                cds_versions = {n: r.version for n, r in server.snapshot.resources(CLUSTER).items()}
                assert cds.initial_resource_versions == cds_versions == {"A": "1", "B": "1"}
                assert eds.initial_resource_versions == {"A": "1"}
            assert client.streams_opened == 2

            server.upsert(istio.load_assignment("A", istio.locality([istio.lb_endpoint("127.0.0.1", 7)])))
            await server.wait_ack("eds", "2", variant=variant)
            # converged: the only call since the restart is the real change (nothing resent was re-applied)
            assert [(u.type_url, sorted(u.resources)) for u in probe.updates[before:]] == [(ENDPOINT, ["A"])]
        finally:
            await client.stop()
    run(scenario)


@VARIANTS
def test_does_not_exist_and_subscription_changes(variant: str) -> None:
    async def scenario(server: AdsServer, probe: Probe) -> None:
        server.upsert(istio.eds_cluster("A"), istio.load_assignment("A"), istio.load_assignment("B"))
        client = await started(probe.client(server.address, variant, initial_fetch_timeout=0.3), [WILDCARD],
                               ["A", "ghost"])
        try:
            await probe.until(lambda: probe.missing, "does-not-exist")
            assert probe.missing == [(ENDPOINT, "ghost")]                     # not A, which arrived
            assert client.status()["types"][ENDPOINT]["missing"] == ["ghost"]

            sotw = variant == "sotw"
            client.subscribe(ENDPOINT, ["A", "ghost", "B"])                   # SotW: the full set; Delta: the new name
            change = await server.wait_request(
                (lambda r: r.type_url == ENDPOINT and r.resource_names == ("A", "B", "ghost")) if sotw else
                (lambda r: r.type_url == ENDPOINT and r.kind == "request" and r.resource_names == ("B",)),
                what="re-subscription", timeout=5)
            assert (change.version, bool(change.nonce)) == (("1", True) if sotw else ("", False))
            await probe.until(lambda: any("B" in u.resources for u in probe.of(ENDPOINT)), "EDS B")

            server.upsert(istio.load_assignment("ghost"))                      # served once it appears
            await probe.until(lambda: any("ghost" in u.resources for u in probe.of(ENDPOINT)), "EDS ghost")
            assert client.status()["types"][ENDPOINT]["missing"] == []

            client.subscribe(ENDPOINT, ["B"])
            await server.wait_request(
                (lambda r: r.type_url == ENDPOINT and r.resource_names == ("B",)) if sotw else
                (lambda r: r.type_url == ENDPOINT and r.kind == "request" and r.unsubscribed == ("A", "ghost")),
                what="unsubscription", timeout=5)
            assert client.status()["types"][ENDPOINT]["resources_known"] == 1
            assert probe.missing == [(ENDPOINT, "ghost")]                      # exactly once
        finally:
            await client.stop()
    run(scenario)


def test_unix_socket_both_variants_at_once() -> None:
    async def scenario(server: AdsServer, probe: Probe) -> None:
        server.upsert(istio.eds_cluster("A"), istio.load_assignment("A"))
        assert server.unix_uri and server.unix_uri.startswith("unix:///")
        clients = [await started(probe.client(server.unix_uri, v), [WILDCARD], ["A"]) for v in ("sotw", "delta")]
        try:
            for variant in ("sotw", "delta"):
                await server.wait_ack("eds", "1", variant=variant)
            assert sorted(u.type_url for u in probe.updates) == sorted([CLUSTER, CLUSTER, ENDPOINT, ENDPOINT])
            assert [c.status()["connected"] for c in clients] == [True, True]
        finally:
            for c in clients:
                await c.stop()
    run(scenario, unix=True)
