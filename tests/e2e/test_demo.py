"""End to end: ``meshd demo`` (what ``make run`` starts) does what its printed lines promise.

The demo runs as a user runs it; the ``curl`` lines it prints are run as printed, with bash. Its
default ports are replaced by free ones when taken, so the test never collides with another meshd.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("curl") is None,
                                reason="curl not installed (the demo prints curl lines; `make test` installs it)")


class Demo:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "meshd", "demo", "--log-level", "warning"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, f"demo exited with {self.proc.returncode}: {''.join(self.output)}"
                continue
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"demo printed no line matching {pattern!r} in {timeout}s: {''.join(self.output)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=20)


def sh(line: str) -> str:
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, f"{line!r} failed ({done.returncode}): {done.stderr}"
    return done.stdout


def servers(hello: str, n: int) -> list[str]:
    return [json.loads(sh(hello))["server"] for _ in range(n)]


def test_the_demo_serves_every_line_it_prints_and_stops_cleanly_on_ctrl_c():
    demo = Demo()
    try:
        demo.wait_for(r"meshd demo is running")
        printed: list[str] = []
        while True:
            line = demo.wait_for(r".*").group(0)
            if "Press Ctrl-C to stop." in line:
                break
            printed.append(line)
        curls = [line.strip() for line in printed if line.strip().startswith("curl ")]
        assert len(curls) == 7, printed
        hello, subset, retried, clusters, routes, prometheus, config_dump = curls
        clusters_file = Path(re.search(r"Edit (\S+clusters\.yaml)", "".join(printed)).group(1))

        # weighted round robin over both providers
        assert set(servers(hello, 4)) == {"demo-provider-v1", "demo-provider-v2"}
        # subset routing to v2 only, with the route's response header
        for _ in range(3):
            answer = sh(subset)
            assert re.search(r"(?im)^x-meshd-subset: v2\r?$", answer), answer
            assert json.loads(re.split(r"\r?\n\r?\n", answer, maxsplit=1)[1])["server"] == "demo-provider-v2"
        # a 5xx is retried on the other provider, then returned: the access log shows the three attempts
        assert json.loads(sh(retried))["server"] in ("demo-provider-v1", "demo-provider-v2")
        demo.wait_for(r'"GET /hello HTTP/1.1" 503 .* backend attempts=3', timeout=10)
        # the admin lines
        endpoints = next(c for c in json.loads(sh(clusters))["clusters"] if c["name"] == "backend")["endpoints"]
        assert sorted(e["metadata"]["version"] for e in endpoints) == ["v1", "v2"]
        assert "backend" in sh(routes)
        assert re.search(r'meshd_requests_total\{.*cluster="backend".*\} [1-9]', sh(prometheus))
        assert json.loads(sh(config_dump))["listeners"][0]["name"] == "http-egress"

        # dual mode: the Dubbo interface's provider from the clusters file and the one from xDS answer in turn
        call_loop = next(line.strip() for line in printed if line.strip().startswith("for i in"))
        answers = sh(call_loop).split()
        assert {a.strip('"') for a in answers if a.startswith('"dubbo-provider')} == {
            "dubbo-provider-from-file:", "dubbo-provider-from-xds:"}, answers
        xds_file = Path(re.search(r"Edit (\S+xds-endpoints\.yaml)", "".join(printed)).group(1))
        spare = re.search(r"try port (\d+)", "".join(printed)).group(1)
        xds_file.write_text(re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{spare}", xds_file.read_text()))
        deadline = time.monotonic() + 5
        while "dubbo-provider-from-xds-2:" not in sh(call_loop) + sh(call_loop):
            assert time.monotonic() < deadline, "the edited xDS endpoints were not pushed within 5 s"
            time.sleep(0.2)
        by_source = {e["address"]: e["sources"] for c in json.loads(sh(clusters))["clusters"]
                     if c["name"] == "org.example.DemoService" for e in c["endpoints"]}
        assert sorted(map(tuple, by_source.values())) == [("demo-file",), ("demo-xds",)], by_source

        # the clusters file applies live: without v2, every request reaches v1
        text = clusters_file.read_text()
        clusters_file.write_text("\n".join(line for line in text.splitlines() if "version: v2" not in line) + "\n")
        deadline = time.monotonic() + 5
        while set(servers(hello, 4)) != {"demo-provider-v1"}:
            assert time.monotonic() < deadline, "the edited clusters file was not applied within 5 s"
            time.sleep(0.2)
    finally:
        code = demo.stop()
    assert code == 0, "".join(demo.output)
    assert "meshd demo stopped." in "".join(demo.output)
