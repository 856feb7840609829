# The compiled hot path (meshd/compiled.py): the plan, the exchange and the caller connection as extension
# types, their fields those of __slots__; the read loop's locals typed so that their fields are read directly.

cimport cython

from meshd.accesslog cimport AccessLog
from meshd.proxy.context cimport Runtime
from meshd.stats cimport RequestStats
from meshd.upstream.cluster cimport ClusterRuntime
from meshd.upstream.host cimport Host
from meshd.upstream.mux cimport MuxConnection

cdef class _Plan:
    cdef public object service, method, version, group, extra, oneway, route, name, route_md, policy, timeout
    cdef public object cacheable, epoch, md, md_key, gov_gen, gov, rec, log

cdef class RpcDownstream:
    cdef public object ctx, rt, adapter, decoder, transport, active, closed, last_activity, peer, identity

    @cython.locals(rt=Runtime, plan=_Plan, last_plan=_Plan, ex=RpcExchange, host=Host, last_host=Host,
                   conn=MuxConnection, last_conn=MuxConnection, cluster=ClusterRuntime, last_cluster=ClusterRuntime,
                   run_host=Host, run_left=cython.Py_ssize_t)
    cpdef _events(self, now)

cdef class RpcExchange:
    cdef public object down, rt, adapter, event, started, view, plan, cluster, retry, tried, upstream_host, upstream
    cdef public object uid, pool, callback, slot, try_timer, finished, status, flags, outcome, retrying, oneway, entry

    @cython.locals(host=Host, down=RpcDownstream, plan=_Plan, cluster=ClusterRuntime)
    cpdef upstream_response(self, conn, event)

    @cython.locals(rt=Runtime, down=RpcDownstream, plan=_Plan, cluster=ClusterRuntime, access_log=AccessLog,
                   rec=RequestStats)
    cpdef _finish(self)
