"""Rule sources for governance (ZooKeeper node, Nacos config, file, HTTP push) with a versioned store.

Not built yet: no open issue asks for it. Rules change at runtime today through the admin API
(``PUT /rules/{kind}``), which validates a whole document and swaps it atomically. The configuration
section ``config_center`` is accepted (empty) so that configurations can already name it.
"""
