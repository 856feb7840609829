"""xDS discovery: meshd as a client of an xDS control plane (Istio, or any ADS server).

Architecture (one intent per module):

- :mod:`~discovery.xds.ads_state`: the ADS protocol without I/O: per type URL, subscriptions, versions,
  nonces, ACK/NACK, does-not-exist deadlines; responses in, requests out (SotW and Delta).
- :mod:`~discovery.xds.transport`: ``AdsClient``, the ``grpc.aio`` shell around it: one ADS stream,
  reconnecting with jittered exponential back-off.
- :mod:`~discovery.xds.resources`, :mod:`~discovery.xds.source`, :mod:`~discovery.xds.config`: decoding and
  validating resources, the discovery source feeding the cluster model, its config section.
- :mod:`~discovery.xds.tls`: TLS contexts and SDS Secrets decoded into meshd's ``tls`` settings (files named
  by placeholders); :mod:`~discovery.xds.secrets`: the source's private directory where PEMs are written.

Importing this package is cheap: it imports none of its submodules.
"""
