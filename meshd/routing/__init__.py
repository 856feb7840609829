"""Routing decisions, as plain functions over immutable state: route tables (:mod:`.table`), load
balancers (:mod:`.balancer`) and the metadata subset index (:mod:`.subset`). Nothing here awaits."""
