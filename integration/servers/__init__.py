"""Protocol servers for tests: :mod:`.http_backend` (scriptable HTTP/1.1) and :mod:`.rpc_provider`
(scriptable Dubbo2 and Bolt providers built on meshd's own codecs)."""
