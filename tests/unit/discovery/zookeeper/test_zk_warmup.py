"""Warm-up weights: Dubbo's float32 formula (values cross-checked by the Java oracle test) and SOFARPC's step."""

import pytest

from discovery.zookeeper.layouts import dubbo_warmup_weight, dubbo_weight, f32, sofa_weight


def test_f32_rounds_to_single_precision():
    assert f32(0.1) != 0.1 and f32(0.5) == 0.5 and f32(16777217.0) == 16777216.0


@pytest.mark.parametrize("uptime, warmup, weight, expected", [
    (60_000, 600_000, 100, 10),           # a tenth of the warm-up: a tenth of the weight
    (1, 600_000, 100, 1),                 # never below 1
    (599_999, 600_000, 100, 99),
    # Computed by java (AbstractLoadBalance.calculateWarmupWeight) — plain double arithmetic gets these wrong:
    (1150309309, 1859226693, 59295, 36685),
    (389735389, 1318549110, 82560, 24403),
    (324277933, 338301194, 85207, 81675),
])
def test_dubbo_warmup_weight(uptime, warmup, weight, expected):
    assert dubbo_warmup_weight(uptime, warmup, weight) == expected


def test_dubbo_weight_ramp_and_edges():
    start = 1_700_000_000_000
    assert dubbo_weight(100, start, 600_000, start + 300_000) == (50, True)
    assert dubbo_weight(100, start, 600_000, start + 600_000) == (100, False)
    assert dubbo_weight(100, start, 600_000, start - 5) == (1, True)        # clock skew
    assert dubbo_weight(100, start, 600_000, start) == (100, True)          # Dubbo's uptime == 0 quirk
    assert dubbo_weight(100, 0, 600_000, start) == (100, False)             # no timestamp: no warm-up
    assert dubbo_weight(100, start, None, start + 1) == (100, False)        # no warmup configured
    assert dubbo_weight(0, start, 600_000, start + 1) == (0, False)
    assert dubbo_weight(-3, start, 600_000, start + 1) == (0, False)


def test_dubbo_weight_is_monotonic_over_the_ramp():
    start, previous = 1_000, 0
    for t in range(start + 1, start + 10_000, 97):
        weight, warming = dubbo_weight(200, start, 10_000, t)
        assert warming and previous <= weight <= 200
        previous = weight


def test_sofa_weight_is_flat_until_the_end_of_warmup():
    assert sofa_weight(100, 1_000, 5_000, 10, 1_500) == (10, True)
    assert sofa_weight(100, 1_000, 5_000, 10, 6_000) == (100, False)
    assert sofa_weight(100, 0, 5_000, 10, 1_500) == (100, False)
