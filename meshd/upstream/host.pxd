# The compiled hot path (meshd/compiled.py): extension types, their fields those of __slots__.

cdef class Host:
    cdef public object endpoint, key, address, host, port, weight, cluster, active_requests, hc_healthy
    cdef public object hc_failed, ejected_until, ejections, pools, requests, errors, consecutive, draining
