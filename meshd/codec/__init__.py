"""Sans-IO codecs: bytes in, typed events out, events to bytes; never a socket or the event loop.

- :mod:`.outcome` — the one Outcome vocabulary every protocol's statuses map to;
- :mod:`.http1` — what meshd writes for HTTP/1.1 (parsing itself is httptools);
- :mod:`.hessian2` — hessian2 values in the final (Dubbo) and draft (SOFA Bolt) grammars, read and skip;
- :mod:`.dubbo`, :mod:`.bolt` — frame decoders, lazy bodies, encoders, id rewriting, status mapping;
- :mod:`.sniff` — which protocol a connection speaks, from its first bytes;
- :mod:`.base` — the error hierarchy and sentinels every decoder shares.

The same codecs serve downstream and upstream connections, ``meshd call`` and the tests.
"""
