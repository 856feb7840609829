"""Dubbo's warm-up weight, bit for bit: our float32 emulation against Java itself (the JRE ZooKeeper runs on)."""

import random
import shutil
import subprocess

import pytest

from discovery.zookeeper.layouts import dubbo_warmup_weight

# The body of Dubbo's AbstractLoadBalance.calculateWarmupWeight (dubbo-cluster, 2.7 and 3.x).
JAVA = """
public class Warm {
    static int calculateWarmupWeight(int uptime, int warmup, int weight) {
        int ww = (int) ( uptime / ((float) warmup / weight));
        return ww < 1 ? 1 : (Math.min(ww, weight));
    }
    public static void main(String[] args) {
        java.util.Scanner in = new java.util.Scanner(System.in);
        StringBuilder out = new StringBuilder();
        while (in.hasNextInt()) {
            out.append(calculateWarmupWeight(in.nextInt(), in.nextInt(), in.nextInt())).append('\\n');
        }
        System.out.print(out);
    }
}
"""


def cases():
    rng = random.Random(20240601)
    out = [(u, 600_000, 100) for u in range(1, 600_000, 7919)]                 # the common configuration
    for _ in range(3000):                                                      # near the rounding edges
        weight = rng.randint(1, 100_000)
        warmup = rng.randint(weight, 2**31 - 1)
        uptime = int(rng.randint(1, weight) * (warmup / weight)) + rng.randint(-2, 2)
        if 0 < uptime < 2**31:
            out.append((uptime, warmup, weight))
    return out


def test_float32_emulation_matches_java(tmp_path):
    java = shutil.which("java")
    if java is None:
        pytest.skip("no `java` on PATH (Debian package 'zookeeper' pulls in openjdk-17-jre-headless)")
    source = tmp_path / "Warm.java"
    source.write_text(JAVA)
    data = cases()
    run = subprocess.run([java, str(source)], input="\n".join(f"{u} {w} {g}" for u, w, g in data),
                         capture_output=True, text=True, timeout=120, check=True)
    expected = [int(x) for x in run.stdout.split()]
    assert len(expected) == len(data)
    mismatches = [(c, e, dubbo_warmup_weight(*c)) for c, e in zip(data, expected) if dubbo_warmup_weight(*c) != e]
    assert mismatches == []
    # The check has teeth: plain double arithmetic disagrees with Java on many of these inputs.
    assert sum(max(1, min(g, int(u / (w / g)))) != e for (u, w, g), e in zip(data, expected)) > 100
