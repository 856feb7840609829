"""Circuit breaking: slow-request ratio, error ratio and error count breakers.

Files follow sentinel-golang's ``core/circuitbreaker``: :mod:`.rule` (Go and Java dialects),
:mod:`.breaker` (the Closed / Open / HalfOpen state machine with each dialect's comparisons and probing),
:mod:`.rule_manager` (reuse on reload), :mod:`.slot` (the check at order 5000 and the completion hook).
"""
