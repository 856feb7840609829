"""Statistics: :mod:`.window` (LeapArray, views, standalone windows) and :mod:`.node` (resource nodes).

Every write is aligned to wall-clock buckets and bounded in memory; see :mod:`governance.stat.window`.
"""
