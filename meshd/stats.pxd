cdef class RequestStats:
    cdef public object labels, counts, buckets, sum
