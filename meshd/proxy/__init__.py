"""The proxy loop: listeners (:mod:`.listener`), the HTTP/1.1 path (:mod:`.http`), the Dubbo/Bolt path and
protocol sniffing (:mod:`.rpc`, :mod:`.rpc_protocols`), the plain TCP relay (:mod:`.tcp`), retry decisions
(:mod:`.retry`) and the governance bridge (:mod:`.governor`). This is the only code that awaits; every
decision it takes is a plain function of :mod:`meshd.routing`, :mod:`meshd.upstream` or :mod:`governance`."""
