# The compiled hot path (meshd/compiled.py): an extension type, its fields those of __slots__.

cdef class AccessLog:
    cdef public object path, _out, enabled, _buf, _second, _date

    cpdef rpc(self, started, protocol, service, method, version, status, flags, bytes_in, duration, upstream,
              cluster, attempts)
