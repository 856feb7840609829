"""SOFARPC provider parameters, registry-neutral (pure): the weight with warm-up, shared by the ZooKeeper SOFARPC
layout and the SOFARegistry source.

Warm-up (``sofa-rpc:core/.../registry/utils/RegistryUtils.java#processWarmUpWeight``, and
``SofaRegistryHelper.parseProviderInfo``): with ``warmupTime`` and ``warmupWeight`` the provider weighs
``warmupWeight`` until ``startTime + warmupTime``, then its weight.
"""

from __future__ import annotations

SOFA_RPC_VERSION = "50707"         # the `rpcVer` parameter: sofa-rpc 5.7.7 (Version.RPC_VERSION)
#: SOFA's numeric remoting protocol codes (``RemotingConstants.PROTOCOL_BOLT`` / ``PROTOCOL_TR``): registry data
#: carries them as ``p=1`` / ``p=13``; MOSN's model and anthunder send them as ``providerMetaInfo.protocol``.
PROTOCOL_CODES = {"1": "bolt", "13": "tr"}
#: SOFA's numeric serialization codes (``RemotingConstants.SERIALIZE_CODE_*``), as ``_SERIALIZETYPE`` carries them.
SERIALIZATION_CODES = {"1": "hessian", "2": "java", "4": "hessian2", "11": "protobuf", "12": "json"}


def sofa_weight(weight: int, start_ms: int, warmup_time_ms: int, warmup_weight: int, now_ms: int) -> tuple[int, bool]:
    """The effective weight of a SOFARPC provider: ``warmup_weight`` until ``start + warmup_time``; and whether
    it will still change with time."""
    if warmup_time_ms > 0 and start_ms > 0 and now_ms < start_ms + warmup_time_ms:
        return max(warmup_weight, 0), True
    return max(weight, 0), False
