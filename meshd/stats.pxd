# The compiled hot path (meshd/compiled.py): an extension type, its fields those of __slots__.

cdef class RequestStats:
    cdef public object labels, counts, buckets, sum

    cpdef done(self, outcome, status, seconds, _bisect=*, _bounds=*)
