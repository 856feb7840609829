"""config_center: the versioned rule store and the rule sources that feed it.

- :mod:`.kinds` — how one kind of rule is decoded, validated, compared, diffed and applied (:class:`RuleKind`;
  the governance kinds from the engine's own validation; the daemon adds route and cluster overrides);
- :mod:`.store` — :class:`RuleStore`: decode → validate → freeze → compare → apply, versions, history,
  rollback, one owner per kind, persistence under ``state_dir`` and restore;
- :mod:`.source` — the rule-source protocol (:class:`RuleSource`, :class:`Sink`) and type declarations;
  :mod:`.file`, :mod:`.zookeeper` (Sentinel's ``/{group}/{dataId}`` layout), :mod:`.nacos` (Sentinel's
  ``SENTINEL_GROUP`` / ``{app}-flow-rules`` configs), :mod:`.http` (the admin API's
  ``PUT /rules/{kind}``); :mod:`.catalog` lists them, one line each;
- :mod:`.center` — :class:`ConfigCenter`: the store and its sources started together, and their status.

This package imports ``governance`` (rule types and validation) and ``configkit`` only.
"""
