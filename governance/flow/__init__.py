"""Flow control: QPS shaping (Direct / WarmUp / MemoryAdaptive x Reject / Throttling) and Java THREAD grade.

Files follow sentinel-golang's ``core/flow``: :mod:`.rule` (both JSON dialects into one frozen model),
:mod:`.controller` (token calculators, checkers and the Java raters), :mod:`.rule_manager` (statistic
binding and reuse on reload), :mod:`.slot` (the check run by the chain at order 2000).
"""
