# The compiled hot path (meshd/compiled.py): MuxConnection as an extension type, its fields those of __slots__.

cdef class MuxConnection:
    cdef public object pool, adapter, transport, decoder, inflight, next_id, closed, draining, last_rx, missed
    cdef public object heartbeat_id, patch, write_paused, retiring, idle_mark, idle_since
