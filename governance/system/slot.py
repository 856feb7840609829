"""System adaptive slot (order 1000, first in the chain; inbound traffic only).

Go (G ``core/system/slot.go``), per rule in order: InboundQPS, Concurrency and AvgRT pass iff
``value < trigger``; Load and CpuUsage block when ``value > trigger`` unless the rule's strategy is BBR
and BBR allows. BBR (``checkBbrSimple``) blocks iff ``concurrency > 1 and concurrency >
maxCompletePerSec * minRt / 1000`` on the global inbound node.

Java (J ``SystemRuleManager.checkSystem``) with the effective limits: ``passQps + batch > qps``,
``threads > maxThread``, ``avgRt > avgRt``, load above the limit unless BBR allows, CPU above the limit.
"""

from __future__ import annotations

from typing import Any

from governance.base import BlockError
from governance.stat.node import ResourceNode
from governance.system.rule import AVG_RT, BBR, CONCURRENCY, CPU_USAGE, INBOUND_QPS, LOAD
from governance.system.rule_manager import SystemRuleManager

_MESSAGES = {
    INBOUND_QPS: "system qps check blocked", CONCURRENCY: "system concurrency check blocked",
    AVG_RT: "system avg rt check blocked", LOAD: "system load check blocked",
    CPU_USAGE: "system cpu usage check blocked",
}


def bbr_allows(inbound: ResourceNode, now: int) -> bool:
    concurrency = inbound.concurrency
    if concurrency > 1 and concurrency > inbound.max_complete_per_sec(now) * inbound.min_rt(now) / 1000.0:
        return False
    return True


def check_system(manager: SystemRuleManager, inbound: ResourceNode, metrics: Any, resource: str, now: int,
                 batch: int) -> None:
    for rule in manager.rules:
        if rule.dialect == "java":
            _check_java(manager, inbound, metrics, resource, now, batch)
            return
        metric = rule.metric_type
        value = _value(metric, inbound, metrics, now)
        if metric in (LOAD, CPU_USAGE):
            if value > rule.trigger_count and (rule.strategy != BBR or not bbr_allows(inbound, now)):
                raise BlockError("system", resource, rule, _MESSAGES[metric], value)
        elif not value < rule.trigger_count:
            raise BlockError("system", resource, rule, _MESSAGES[metric], value)


def _value(metric: int, inbound: ResourceNode, metrics: Any, now: int) -> float:
    if metric == INBOUND_QPS:
        return inbound.pass_qps(now)
    if metric == CONCURRENCY:
        return float(inbound.concurrency)
    if metric == AVG_RT:
        return inbound.avg_rt(now)
    if metric == LOAD:
        return metrics.load()
    return metrics.cpu_usage()


def _check_java(manager: SystemRuleManager, inbound: ResourceNode, metrics: Any, resource: str, now: int,
                batch: int) -> None:
    limits = manager.java_limits
    if INBOUND_QPS in limits:
        qps = inbound.pass_qps(now)
        limit, rule = limits[INBOUND_QPS]
        if qps + batch > limit:
            raise BlockError("system", resource, rule, _MESSAGES[INBOUND_QPS], qps)
    threads = inbound.concurrency
    if CONCURRENCY in limits and threads > limits[CONCURRENCY][0]:
        raise BlockError("system", resource, limits[CONCURRENCY][1], _MESSAGES[CONCURRENCY], threads)
    if AVG_RT in limits:
        rt = inbound.java_avg_rt(now)
        if rt > limits[AVG_RT][0]:
            raise BlockError("system", resource, limits[AVG_RT][1], _MESSAGES[AVG_RT], rt)
    if LOAD in limits:
        load = metrics.load()
        if load > limits[LOAD][0] and not bbr_allows(inbound, now):
            raise BlockError("system", resource, limits[LOAD][1], _MESSAGES[LOAD], load)
    if CPU_USAGE in limits:
        cpu = metrics.cpu_usage()
        if cpu > limits[CPU_USAGE][0]:
            raise BlockError("system", resource, limits[CPU_USAGE][1], _MESSAGES[CPU_USAGE], cpu)
