# The compiled hot path (meshd/compiled.py): the runtime as an extension type, its fields those of __slots__,
# so that the RPC read loop and the exchange read them directly.

cdef class Runtime:
    cdef public object config, clusters, stats, access_log, rng, loop, timers, draining, connections
    cdef public object governance, in_flight, tls
