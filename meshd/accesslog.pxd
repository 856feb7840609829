# The compiled hot path (meshd/compiled.py): an extension type, its fields those of __slots__; the line
# formatter's numbers as C numbers (formatted without Python int objects).

cimport cython

cdef class AccessLog:
    cdef public object path, _out, enabled, _buf, _second, _date

    cpdef rpc(self, started, request, status, flags, bytes_in, duration, upstream, cluster, attempts)

    @cython.locals(offset=cython.double, wall=cython.double, started=cython.double, duration=cython.double,
                   s=cython.long, ms=cython.long, millis=list, bytes_in=cython.long, bytes_out=cython.long,
                   attempts=cython.long)
    cpdef list _lines(self, entries)
