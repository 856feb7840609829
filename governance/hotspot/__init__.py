"""Hotspot parameter flow control: per-argument-value QPS token buckets, throttling and concurrency.

Files follow sentinel-golang's ``core/hotspot``: :mod:`.rule` (Go and Java dialects, specific items),
:mod:`.controller` (traffic shaping per value in bounded LRU caches), :mod:`.rule_manager`,
:mod:`.slot` (the check at order 4000 and the concurrency accounting).
"""
