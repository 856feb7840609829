"""LeapArray, sliding views and resource nodes, with the numbers of Sentinel's own tests."""

from __future__ import annotations

import pytest

from governance.stat.node import ResourceNode
from governance.stat.window import (
    BLOCK, COMPLETE, DEFAULT_STATISTIC_MAX_RT, PASS, RT, LeapArray, StandaloneCounter, View, check_reuse,
)

SAMPLE_COUNT, INTERVAL_MS, BUCKET_MS = 20, 10_000, 500


def test_bucket_index_and_start_are_wall_clock_aligned():
    # G Test_leapArray_calculateTimeIdx_normal (-> 9) and Test_calculateStartTime_normal (-> ...44500)
    array = LeapArray(SAMPLE_COUNT, INTERVAL_MS)
    bucket = array.current(1576296044907)
    assert array.starts[9] == 1576296044500
    assert array.buckets[9] is bucket
    assert [s for i, s in enumerate(array.starts) if i != 9] == [-1] * 19


def test_current_bucket_after_801ms_is_the_second_slot():
    # G Test_leapArray_BucketStartCheck_normal
    now = 1596199310000
    array = LeapArray(SAMPLE_COUNT, INTERVAL_MS)
    array.current(now)
    got = array.current(now + 801)
    assert array.starts[1] == now + 500
    assert array.buckets[1] is got


def test_bucket_older_than_the_interval_is_deprecated():
    # G Test_leapArray_isBucketDeprecated_normal
    array = LeapArray(SAMPLE_COUNT, INTERVAL_MS)
    assert array.is_deprecated(1576296044907, 1576296004907)
    assert not array.is_deprecated(1576296044907, 1576296044907 - INTERVAL_MS)
    assert array.is_deprecated(1576296044907, 1576296044907 - INTERVAL_MS - 1)


@pytest.mark.parametrize("sample_count", [30, 0])
def test_invalid_parameters_are_refused(sample_count):
    # G TestNewLeapArray_Invalid_Parameters / _sampleCount0
    with pytest.raises(ValueError, match=f"Invalid parameters, intervalInMs is 10000, sampleCount is {sample_count}"):
        LeapArray(sample_count, INTERVAL_MS)


def _fill(array: LeapArray, first: int, count: int) -> dict[int, int]:
    """Give every bucket from ``first`` a distinct pass count (its start modulo 100 000); return start -> count."""
    counts = {}
    for k in range(count):
        start = first + k * array.bucket_ms
        counts[start] = start % 100_000
        array.add(start, PASS, counts[start])
    return counts


@pytest.mark.parametrize(("sample_count", "interval", "real_count", "real_interval", "now", "want_start", "want_end"), [
    # G TestSlidingWindowMetric_getBucketStartRange-1 .. -5
    (4, 2000, 20, 10000, 1578416556900, 1578416555000, 1578416556500),
    (2, 1000, 20, 10000, 1578416556900, 1578416556000, 1578416556500),
    (1, 2000, 10, 10000, 1578416556900, 1578416555000, 1578416556000),
    (1, 10000, 10, 20000, 1578416556900, 1578416548000, 1578416556000),
    (2, 1000, 20, 10000, 1578416556500, 1578416556000, 1578416556500),
])
def test_view_sums_exactly_the_buckets_of_its_start_range(sample_count, interval, real_count, real_interval, now,
                                                           want_start, want_end):
    real = LeapArray(real_count, real_interval)
    first = now - now % real.bucket_ms - real_interval + real.bucket_ms
    counts = _fill(real, first, real_count)
    view = View(real, sample_count, interval)
    expected = sum(c for start, c in counts.items() if want_start <= start <= want_end)
    assert view.sum(PASS, now) == expected
    assert expected > 0


@pytest.mark.parametrize(("sample_count", "interval"), [(0, 0), (4, 2001), (2, 2002), (4, 200000)])
def test_views_that_cannot_reuse_the_array_are_refused(sample_count, interval):
    # G Test_NewSlidingWindowMetric
    View(LeapArray(SAMPLE_COUNT, INTERVAL_MS), 4, 2000)
    with pytest.raises(ValueError):
        View(LeapArray(SAMPLE_COUNT, INTERVAL_MS), sample_count, interval)


def test_view_ignores_future_buckets():
    # G TestSlidingWindowMetric_GetIntervalSumWithTime: 500 adds 1 s ahead, 2000 adds now -> 2000
    now = 1578416556900
    real = LeapArray(SAMPLE_COUNT, INTERVAL_MS)
    for i in range(500):
        real.add(now + i + 1000, PASS, 1)
    for _ in range(2000):
        real.add(now, PASS, 1)
    assert View(real, 2, 2000).sum(PASS, now) == 2000


@pytest.mark.parametrize(("args", "expected"), [
    # G TestCheckValidityForReuseStatistic
    ((3, 1000, 20, 10000), "illegal"), ((0, 1000, 20, 10000), "illegal"), ((2, 1000, 21, 10000), "illegal"),
    ((2, 1000, 0, 10000), "illegal"), ((2, 8000, 20, 10000), "non_reusable"),
    ((2, 1000, 10, 10000), "non_reusable"), ((1, 1000, 100, 10000), None), ((2, 1000, 20, 10000), None),
])
def test_reuse_validity(args, expected):
    assert check_reuse(*args) == expected


def test_window_after_one_interval_starts_empty():
    # J BucketLeapArrayTest.testWindowAfterOneInterval (2 x 1000 ms)
    array = LeapArray(2, 2000)
    start = 1_700_000_001_000
    bucket = array.current(start)
    bucket[PASS] += 1
    bucket[BLOCK] += 1
    middle = array.current(start + 500)
    middle[PASS] += 1
    assert middle is bucket and bucket[PASS] == 2 and bucket[BLOCK] == 1
    following = array.current(start + 1000)
    assert array.starts[array.cur_idx] - start == 1000
    assert following[PASS] == 0 and following[BLOCK] == 0


def test_list_after_reset_of_old_window():
    # J BucketLeapArrayTest.testListWindowsResetOld (10 x 100 ms)
    array = LeapArray(10, 1000)
    time = 1_700_000_000_050
    array.current(time)
    array.current(time + 100)
    assert len(array.values(time + 100)) == 2
    array.add(time + 100 + 1000, PASS, 1)  # replaces the deprecated bucket in the same slot
    assert len(array.values(time + 100 + 1000)) == 1


def test_list_filters_deprecated_buckets_without_reset():
    # J BucketLeapArrayTest.testListWindowsNewBucket
    array = LeapArray(10, 1000)
    time = 1_700_000_000_050
    array.current(time)
    array.current(time + 100)
    now = time + 1000 + 300
    assert array.values(now) == []
    array.add(now, PASS, 1)
    assert len(array.values(now)) == 1


def test_clock_going_back_drops_the_sample_except_with_one_bucket():
    array = LeapArray(SAMPLE_COUNT, INTERVAL_MS)
    now = 1_700_000_010_000
    array.add(now, PASS, 1)
    array.add(now - INTERVAL_MS, PASS, 5)  # same slot, older window: G errors and drops it
    assert array.view_sum(PASS, now, 1000) == 1
    single = LeapArray(1, 1000)
    single.add(now, PASS, 1)
    single.add(now - 1000, PASS, 5)  # G: "if sampleCount==1 ... this case is possible", keep writing
    assert single.current(now)[PASS] == 6


def test_reset_values_keeps_starts_and_drops_the_cache():
    array = LeapArray(2, 2000)
    now = 1_700_000_000_000
    array.add(now, PASS, 3)
    array.reset_values()
    assert array.current(now)[PASS] == 0
    assert array.starts[0] == now


def test_standalone_counter_is_a_one_bucket_tumbling_window():
    # G Test_FlowSlot_StandaloneStat: interval 20000 -> one bucket written on each pass
    counter = StandaloneCounter(1, 20_000)
    now = 1_700_000_000_000
    for _ in range(50):
        counter.add_pass(now, 1)
    assert counter.view.sum(PASS, now + 19_999) == 50
    assert counter.view.sum(PASS, now + 20_000) == 0


class TestResourceNode:
    now = 1_700_000_000_000

    def test_concurrency_tracks_the_maximum_per_bucket(self):
        # G TestMaxConcurrency / TestUpdateConcurrency: 1, 3, 2 -> max 3
        node = ResourceNode("r")
        for _ in range(3):
            node.record_pass(self.now, 1)
        node.record_complete(self.now, 1, 5, False)
        assert node.concurrency == 2
        assert node.second_items(self.now + 1000, self.now, self.now + 1000)[self.now].concurrency == 3

    def test_average_and_minimum_rt(self):
        # G TestAvgRT (100 rt over 100 completions = 1) and TestMinRt
        node = ResourceNode("r")
        assert node.min_rt(self.now) == DEFAULT_STATISTIC_MAX_RT
        assert node.avg_rt(self.now) == 0.0
        for rt in (1, 2, 3, 94):
            node.record_pass(self.now, 1)
            node.record_complete(self.now, 1, rt, False)
        node.array.add(self.now, COMPLETE, 96)
        assert node.avg_rt(self.now) == 1.0          # 100 // 100
        assert node.java_avg_rt(self.now) == 1.0
        assert node.min_rt(self.now) == 1.0
        assert node.array.view_sum(RT, self.now, 1000) == 100

    def test_previous_qps_go_and_java(self):
        node = ResourceNode("r")
        for offset, count in ((0, 3), (500, 4), (1000, 5), (1500, 6)):
            for _ in range(count):
                node.record_pass(self.now + offset, 1)
        now = self.now + 1700
        assert node.pass_qps(now) == 11.0                 # buckets 1000 and 1500
        assert node.previous_pass_qps(now) == 9.0         # G: the view at now - 500 -> 500 and 1000
        assert node.java_previous_pass_qps(now) == 7.0    # J: the previous second [0, 1000)

    def test_max_complete_per_second_scales_the_busiest_bucket(self):
        node = ResourceNode("r")
        for offset, count in ((0, 4), (500, 9)):
            for _ in range(count):
                node.record_pass(self.now + offset, 1)
                node.record_complete(self.now + offset, 1, 1, False)
        assert node.max_complete_per_sec(self.now + 600) == 18.0
