"""Isolation: a concurrency limit per resource (sentinel-golang ``core/isolation``).

:mod:`.rule` (Go dialect), :mod:`.rule_manager`, :mod:`.slot` (the check at order 3000).
"""
