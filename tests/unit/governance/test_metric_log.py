"""Sentinel metric log: line format, per-second aggregation, the index file, rolling by size."""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from governance import MetricItem, MetricLogWriter, Sentinel, format_line, parse_line

from gov_helpers import T0

UTC8 = dt.timezone(dt.timedelta(hours=8))


def test_line_format_matches_sentinel():
    # sentinel-golang core/base/metric_item.go MetricItem.ToFatString, written in UTC+8
    item = MetricItem(resource="sayHello", classification=0, timestamp=1529573107000, pass_qps=10, block_qps=3601,
                      complete_qps=10, error_qps=0, avg_rt=2)
    line = format_line(item, UTC8)
    assert line == "1529573107000|2018-06-21 17:25:07|sayHello|10|3601|10|0|2|0|0|0"
    assert parse_line(line) == item


def test_pipes_in_resource_names_become_underscores():
    item = MetricItem(resource="a|b", classification=2, timestamp=T0, pass_qps=1)
    assert format_line(item, dt.timezone.utc).split("|")[2] == "a_b"
    with pytest.raises(ValueError):
        parse_line("1|2|3")


def read_index(path) -> list[tuple[int, int]]:
    data = path.read_bytes()
    return [struct.unpack(">qq", data[i:i + 16]) for i in range(0, len(data), 16)]


def test_writer_aggregates_completed_seconds(tmp_path, engine: Sentinel, clock):
    engine.load_rules("flow", [{"resource": "limited", "threshold": 1}])
    path = tmp_path / "app-metrics.log"
    writer = MetricLogWriter(engine, path, tz=dt.timezone.utc)
    for rt in (10, 20, 31):                                    # second 0: 3 passes, avg RT 61 // 3
        entry = engine.entry("svc", inbound=True)
        clock.advance(rt)
        entry.exit(error=RuntimeError() if rt == 31 else None)
    engine.entry("limited").exit()
    with pytest.raises(Exception):
        engine.entry("limited")
    clock.set(T0 + 1500)
    engine.entry("svc").exit()                                 # second 1, still in progress
    assert writer.write(clock.now_ms()) == 3                    # svc, limited, inbound for second 0
    assert writer.write(clock.now_ms() + 400) == 0              # same second: nothing new
    clock.set(T0 + 2000)
    assert writer.write(clock.now_ms()) == 1                    # svc for second 1
    writer.close()
    lines = path.read_text().splitlines()
    when = dt.datetime.fromtimestamp(T0 / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert sorted(lines[:3]) == sorted([                            # nodes in creation order
        f"{T0}|{when}|svc|3|0|3|1|20|0|1|0",
        f"{T0}|{when}|limited|1|1|1|0|0|0|1|0",
        f"{T0}|{when}|__total_inbound_traffic__|3|0|3|1|20|0|1|0",
    ])
    assert (parse_line(lines[3]).timestamp, parse_line(lines[3]).resource) == (T0 + 1000, "svc")
    assert read_index(tmp_path / "app-metrics.log.idx") == [(T0 // 1000, 0), (T0 // 1000 + 1, len("\n".join(lines[:3])) + 1)]


def test_idle_resources_write_nothing(tmp_path, engine: Sentinel, clock):
    writer = MetricLogWriter(engine, tmp_path / "m.log")
    engine.plan("idle")
    clock.advance(5000)
    assert writer.write(clock.now_ms()) == 0
    assert not (tmp_path / "m.log").exists()


def test_rolls_by_size_and_keeps_max_files(tmp_path, engine: Sentinel, clock):
    path = tmp_path / "m.log"
    writer = MetricLogWriter(engine, path, max_bytes=1, max_files=3, tz=dt.timezone.utc)
    for _ in range(5):
        engine.entry("svc").exit()
        clock.advance(1000)
        assert writer.write(clock.now_ms()) == 1
    writer.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["m.log", "m.log.1", "m.log.1.idx", "m.log.2", "m.log.2.idx", "m.log.idx"]
    assert path.read_text() == ""                                  # the fresh file after the last roll
    newest, older = parse_line((tmp_path / "m.log.1").read_text()), parse_line((tmp_path / "m.log.2").read_text())
    assert newest.timestamp == T0 + 4000 and older.timestamp == T0 + 3000
    assert read_index(tmp_path / "m.log.1.idx") == [((T0 + 4000) // 1000, 0)]


def test_invalid_settings(engine: Sentinel, tmp_path):
    with pytest.raises(ValueError):
        MetricLogWriter(engine, tmp_path / "m.log", max_bytes=0)
