# The compiled hot path (meshd/compiled.py): extension types, their fields those of __slots__.

cdef class HostSet:
    cdef public object hosts, balancer

cdef class ClusterRuntime:
    cdef public object name, rng, clock, stats_sink, hosts, active_requests, active_retries, connections, pending
    cdef public object stats, attempts, retry_attempts, _sets, _health_epoch, health, settings, max_requests
    cdef public object request_metadata, subsets, outlier, local_zone, epoch, request_selects, tls, marked_tls
