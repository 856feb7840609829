"""The access log's line format, field by field (the compiled formatter types its numbers: accesslog.pxd)."""

from __future__ import annotations

import time

from meshd.accesslog import AccessLog, rpc_request

WALL = 1_800_000_000.2505                    # a start time whose milliseconds survive the clock conversion


def loop_time(wall: float) -> float:
    return wall - (time.time() - time.monotonic())


def test_rpc_and_http_lines_carry_every_field(tmp_path):
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    log.rpc(loop_time(WALL), rpc_request("DUBBO", "org.example.DemoService", "sayHello", "1.0.0"), 20, "", 295,
            0.0031, "127.0.0.1:20880", "org.example.DemoService", 2)
    log.rpc(loop_time(WALL), rpc_request("BOLT", "", "", ""), "no_route", "NR", 12, 0.0, "", "-", 0)
    log.rpc(loop_time(WALL), rpc_request("DUBBO", "org.example.Other", "m", ""), 20, "", 9, 0.0, "", "-", 1)
    log.http(loop_time(WALL), b"GET", b"/v2/x?a=1", "1.1", 503, "UF", 0, 57, 1.5, "127.0.0.1:8080", "backend", 3)
    log.close()
    date = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(WALL)))
    assert path.read_text().splitlines() == [
        f'[{date}.250Z] "DUBBO org.example.DemoService:sayHello 1.0.0" 20 - 295 0 3 "127.0.0.1:20880" '
        f'org.example.DemoService attempts=2',
        f'[{date}.250Z] "BOLT -" no_route NR 12 0 0 "-" - attempts=0',
        f'[{date}.250Z] "DUBBO org.example.Other:m -" 20 - 9 0 0 "-" - attempts=1',
        f'[{date}.250Z] "GET /v2/x?a=1 HTTP/1.1" 503 UF 0 57 1500 "127.0.0.1:8080" backend attempts=3',
    ]
