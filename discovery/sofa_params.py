"""SOFARPC provider parameters, registry-neutral (pure): the weight with warm-up, shared by the ZooKeeper SOFARPC
layout and the SOFARegistry source.

Warm-up (``sofa-rpc:core/.../registry/utils/RegistryUtils.java#processWarmUpWeight``, and
``SofaRegistryHelper.parseProviderInfo``): with ``warmupTime`` and ``warmupWeight`` the provider weighs
``warmupWeight`` until ``startTime + warmupTime``, then its weight.
"""

from __future__ import annotations

SOFA_RPC_VERSION = "50707"         # the `rpcVer` parameter: sofa-rpc 5.7.7 (Version.RPC_VERSION)


def sofa_weight(weight: int, start_ms: int, warmup_time_ms: int, warmup_weight: int, now_ms: int) -> tuple[int, bool]:
    """The effective weight of a SOFARPC provider: ``warmup_weight`` until ``start + warmup_time``; and whether
    it will still change with time."""
    if warmup_time_ms > 0 and start_ms > 0 and now_ms < start_ms + warmup_time_ms:
        return max(warmup_weight, 0), True
    return max(weight, 0), False
