cdef class HostSet:
    cdef public object hosts, balancer
