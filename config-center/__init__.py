"""config_center: the versioned rule store and the rule sources that feed it — reserved, empty today.

Nothing is built here yet: rules change at runtime through the admin API (``PUT /rules/{kind}``, which
validates a whole document and swaps it atomically) or the config file's ``governance`` section, and a
restart forgets pushed rules. The configuration section ``config_center`` is accepted (empty) so that
configurations can already name it. The store (decode → validate → freeze → compare → apply, history,
rollback, persistence) and its sources (file, ZooKeeper node, Nacos config, HTTP push) are the open
config-center issue's. This package may import ``governance`` (rule types only) and ``configkit``.
"""
