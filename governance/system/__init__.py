"""System adaptive protection for inbound traffic: load, CPU (with the BBR check), concurrency, RT, QPS.

:mod:`.rule` (Go and Java dialects), :mod:`.rule_manager`, :mod:`.slot` (the check at order 1000),
:mod:`.metrics` (the injectable load/CPU/memory provider).
"""
