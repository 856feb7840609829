"""Sentinel metric log writer (G ``core/log/metric/{aggregator,writer}.go``, J ``MetricWriter``).

The caller drives it once per second with ``write(now_ms)``. Each call aggregates the completed seconds
since the previous call (buckets starting in ``[last, now - now % 1000)``, at most the 10 s the resource
arrays hold) and appends one line per active resource per second::

    ts|yyyy-MM-dd HH:mm:ss|resource|passQps|blockQps|completeQps|errorQps|avgRt|occupiedPassQps|concurrency|classification

e.g. ``1529573107000|2018-06-21 17:25:07|sayHello|10|3601|10|0|2|0|0|0``. ``|`` in resource names becomes
``_``. Alongside, ``<path>.idx`` gets one big-endian (8-byte second, 8-byte file offset) pair per new
second, as Sentinel's searcher expects. When the file reaches ``max_bytes`` it rolls: ``path`` becomes
``path.1`` (``.1`` -> ``.2``...), keeping ``max_files`` files in all, each with its index.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

from governance.stat.node import MetricItem

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # G MetricLogSingleFileMaxSize
DEFAULT_MAX_FILES = 8                 # G MetricLogMaxFileAmount


def format_line(item: MetricItem, tz: dt.tzinfo | None = None) -> str:
    """G ``MetricItem.ToFatString``."""
    when = dt.datetime.fromtimestamp(item.timestamp / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")
    name = item.resource.replace("|", "_")
    return (f"{item.timestamp}|{when}|{name}|{item.pass_qps}|{item.block_qps}|{item.complete_qps}|"
            f"{item.error_qps}|{item.avg_rt}|{item.occupied_pass_qps}|{item.concurrency}|{item.classification}")


def parse_line(line: str) -> MetricItem:
    """G ``MetricItemFromFatString`` (the inverse of :func:`format_line`)."""
    parts = line.rstrip("\n").split("|")
    if len(parts) < 8:
        raise ValueError(f"invalid metric line: {line!r}")
    numbers = [int(p) for p in parts[3:]]
    numbers += [0] * (8 - len(numbers))
    return MetricItem(resource=parts[2], classification=numbers[7], timestamp=int(parts[0]),
                      pass_qps=numbers[0], block_qps=numbers[1], complete_qps=numbers[2], error_qps=numbers[3],
                      avg_rt=numbers[4], occupied_pass_qps=numbers[5], concurrency=numbers[6])


class MetricLogWriter:
    """Appends a :class:`governance.Sentinel`'s per-second metrics to ``path`` (see module docstring)."""

    def __init__(self, sentinel: Any, path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_files: int = DEFAULT_MAX_FILES, tz: dt.tzinfo | None = None) -> None:
        if max_bytes <= 0 or max_files <= 0:
            raise ValueError(f"max_bytes and max_files must be > 0, got {max_bytes} and {max_files}")
        self.sentinel = sentinel
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.tz = tz
        self._last_fetch = -1
        self._latest_sec = 0
        self._metric: BinaryIO | None = None
        self._index: BinaryIO | None = None

    def write(self, now_ms: int) -> int:
        """Write the seconds completed since the last call; returns the number of lines written."""
        current = now_ms - now_ms % 1000
        if current <= self._last_fetch:
            return 0
        items = self.sentinel.metric_items(self._last_fetch, current)
        self._last_fetch = current
        if not items:
            return 0
        self._open()
        written = 0
        by_second: dict[int, list[MetricItem]] = {}
        for item in items:
            by_second.setdefault(item.timestamp, []).append(item)
        for second in sorted(by_second):
            written += self._write_second(second, by_second[second])
        return written

    def _write_second(self, second: int, items: list[MetricItem]) -> int:
        sec = second // 1000
        if sec < self._latest_sec:
            return 0
        assert self._metric is not None and self._index is not None
        if sec > self._latest_sec:
            self._index.write(struct.pack(">qq", sec, self._metric.tell()))
            self._index.flush()
        data = "".join(format_line(item, self.tz) + "\n" for item in items).encode("utf-8")
        self._metric.write(data)
        self._metric.flush()
        self._latest_sec = sec
        if self._metric.tell() >= self.max_bytes:
            self._roll()
        return len(items)

    def _open(self) -> None:
        if self._metric is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._metric = open(self.path, "ab")
            self._index = open(self._index_path(self.path), "ab")

    def _roll(self) -> None:
        self.close()
        for n in range(self.max_files - 1, 0, -1):
            older = self._numbered(n)
            if not older.exists():
                continue
            if n + 1 >= self.max_files:
                older.unlink()
                self._index_path(older).unlink(missing_ok=True)
            else:
                older.replace(self._numbered(n + 1))
                if self._index_path(older).exists():
                    self._index_path(older).replace(self._index_path(self._numbered(n + 1)))
        if self.max_files > 1:
            self.path.replace(self._numbered(1))
            if self._index_path(self.path).exists():
                self._index_path(self.path).replace(self._index_path(self._numbered(1)))
        else:
            self.path.unlink()
            self._index_path(self.path).unlink(missing_ok=True)
        self._open()

    def _numbered(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    @staticmethod
    def _index_path(path: Path) -> Path:
        return path.with_name(path.name + ".idx")

    def close(self) -> None:
        for handle in (self._metric, self._index):
            if handle is not None:
                handle.close()
        self._metric = self._index = None

    def __enter__(self) -> MetricLogWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
