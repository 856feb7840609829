"""A protocol-faithful xDS ADS control plane for tests (SotW and Delta), proven against real proxyless clients.

Architecture (one intent per module):

- :mod:`~integration.xds.snapshot`: what is served. Resources per type URL with per-type versions; one
  ``apply`` = one transaction, changed types reported in make-before-break order.
- :mod:`~integration.xds.streams`: the protocol, without I/O. ``SotwStream`` / ``DeltaStream`` turn
  requests and snapshot changes into responses (nonces, ACK/NACK, wildcard and named subscriptions,
  removals, ``initial_resource_versions``), following the xDS protocol (``envoyproxy/envoy:api/xds_protocol.rst``).
- :mod:`~integration.xds.log`: the ACK/NACK log (every request classified, every response sent) and the
  bounded async wait behind every ``wait_*`` helper.
- :mod:`~integration.xds.server`: ``AdsServer``, the ``grpc.aio`` shell (127.0.0.1 port 0 and/or a unix
  socket; stop/start on the same port to play a control-plane restart). Async API, one event loop.
- :mod:`~integration.xds.threaded`: ``AdsServerThread``, the blocking facade for test code on another
  thread, on an :class:`integration.process.LoopThread`.
- :mod:`~integration.xds.istio`: builders for the Cluster / ClusterLoadAssignment / RouteConfiguration /
  Listener that istiod sends to proxyless gRPC, and the bootstrap its agent writes.
- :mod:`~integration.xds.tls`: builders for TLS in those resources: Istio's ISTIO_MUTUAL cluster
  (``transport_socket_matches`` on ``tlsMode: istio``, SDS ``default`` + ``ROOTCA``), Upstream/Downstream TLS
  contexts, SDS Secrets from PEM bytes, socket listeners with TLS filter chains.
- :mod:`~integration.xds.echo`: the trivial test service (real gRPC backends naming themselves) and the
  grpcio proxyless client process; :mod:`~integration.xds.clients` drives that process and the
  grpc-js-xds one (``integration/peers/xds_client.js``) and counts where RPCs land.
- :mod:`~integration.xds.fixtures`: the pytest fixtures ``xds_server``, ``xds_backends``, ``xds_client``.

Importing this package is cheap; the submodules import grpc and the ``xds-protos`` messages.
"""
