"""A protocol-faithful Nacos server for tests (no Java Nacos can be installed here), proven with official clients.

Layout (one concern per module, state separate from I/O):

- :mod:`.model` — naming and config state, no I/O (instances, revisions = ``lastRefTime``, md5s, expiry);
- :mod:`.core` — the hub: stores + who subscribes / listens, fan-out of every change to pushes;
- :mod:`.proto` — the gRPC ``Payload`` envelope (hand-built descriptor in a private pool);
- :mod:`.handlers` — one function per gRPC request type;
- :mod:`.grpc_server` — ``Request`` / ``BiRequestStream`` over ``grpc.aio``, connections, pushes and acks;
- :mod:`.http_api` — the v1 HTTP Open API (aiohttp), long polling, UDP push;
- :mod:`.server` — :class:`NacosServer` (asyncio) / :class:`BlockingNacosServer` (loop thread) and the
  test-control API (restart, go away, garbage pushes, inspection);
- :mod:`.fixtures` — the ``nacos_server`` pytest fixture; :mod:`.v1_peer` — the nacos-sdk-python 2.0.x
  virtualenv and its driver.
"""

from integration.nacos.server import BlockingNacosServer, NacosServer, free_port_pair

__all__ = ["BlockingNacosServer", "NacosServer", "free_port_pair"]
