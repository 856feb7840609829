"""``make bench``: every benchmark scenario in one invocation; JSON to bench/out/, a table appended to
bench/RESULTS.md.

Scenarios: ``http`` (direct / meshd / nginx / haproxy), ``https`` (meshd and nginx terminating TLS: keep-alive
and new handshakes), ``dubbo`` and ``bolt`` (pipelined: direct / byte
relay / meshd / meshd with governance), ``governance`` (entry+exit µs), ``subset`` (HTTP with subset
routing and a retry policy vs plain, same run), ``zookeeper`` (2,000 services × 10 providers), ``rules``
(push-to-applied latency per rule source; 1,000 flow rules pushed under Dubbo load), ``xds`` (5,000 clusters ×
20 endpoints over ADS: full apply, RSS, one EDS change), ``nacos`` (2,000 services × 10 instances: full sync,
RSS, one change), ``sofaregistry`` (2,000 data ids × 10 publishers, the session server in its own process: full
sync, one change routable, RSS).
``python -m bench [--quick] [scenario ...]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import harness

OUT = Path(__file__).resolve().parent / "out"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SCENARIOS = ("http", "https", "subset", "dubbo", "bolt", "governance", "zookeeper", "rules", "xds", "nacos", "sofaregistry")


def run(names: list[str], quick: bool) -> dict:
    rounds, seconds = (3, 3.0) if quick else (5, 5.0)
    results: dict = {"machine": harness.machine(), "quick": quick}
    for name in names:
        work = harness.workdir()
        t0 = time.monotonic()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        if name == "http":
            from bench import http_scenario
            results[name] = http_scenario.run(work, rounds=rounds, seconds=seconds)
        elif name == "https":
            from bench import https_scenario
            results[name] = https_scenario.run(work, rounds=rounds, seconds=seconds)
        elif name == "subset":
            from bench import subset_scenario
            results[name] = subset_scenario.run(work, rounds=rounds, seconds=seconds)
        elif name in ("dubbo", "bolt"):
            from bench import rpc_scenario
            results[name] = rpc_scenario.run(work, name, rounds=rounds, seconds=seconds)
        elif name == "governance":
            from bench import governance_bench
            results[name] = governance_bench.run()
        elif name == "zookeeper":
            from bench import zookeeper_bench
            results[name] = zookeeper_bench.run(services=500 if quick else 2000)
        elif name == "rules":
            from bench import rules_bench
            results[name] = rules_bench.run(work, pushes=30 if quick else 100)
        elif name == "xds":
            from bench import xds_bench
            results[name] = xds_bench.run(work, clusters=1000 if quick else 5000)
        elif name == "nacos":
            from bench import nacos_bench
            results[name] = nacos_bench.run(work, services=500 if quick else 2000)
        elif name == "sofaregistry":
            from bench import sofaregistry_bench
            results[name] = sofaregistry_bench.run(work, services=500 if quick else 2000, changes=50 if quick else 200)
        results[name]["elapsed_s"] = round(time.monotonic() - t0, 1)
    return results


def table(results: dict) -> str:
    m = results["machine"]
    lines = [f"\n## {m['date']} UTC — {m['cpus']} CPUs, Python {m['python']}, load at start {m['loadavg_at_start']}"
             f"{' (quick)' if results.get('quick') else ''}\n"]
    for proto in ("http", "subset", "dubbo", "bolt"):
        r = results.get(proto)
        if not r or "targets" not in r:
            continue
        lines.append(f"**{proto}** ({r.get('connections')} connections"
                     + (f", {r['in_flight_per_connection']} in flight each" if "in_flight_per_connection" in r else "")
                     + f", median of {r['rounds']} interleaved rounds of {r['seconds_per_round']} s)\n")
        lines.append("| target | req/s | p50 ms | p99 ms | proxy CPU µs/req | rounds req/s |")
        lines.append("|---|---|---|---|---|---|")
        for name, t in r["targets"].items():
            cpu = "" if t.get("cpu_us_per_request") is None else t["cpu_us_per_request"]
            lines.append(f"| {name} | {t['rps']} | {t['p50_ms']} | {t['p99_ms']} | {cpu} | {t['rounds_rps']} |")
        lines.append("\nratios: " + ", ".join(f"{k} = {v}" for k, v in r["ratios"].items()))
        if "latency_at_half_peak" in r and "p99_added_ms" in r["latency_at_half_peak"]:
            h = r["latency_at_half_peak"]
            lines.append(f"; at half of meshd's peak ({h['target_rps']} req/s target): p99 direct "
                         f"{h['direct']['p99_ms']} ms, through meshd {h['meshd']['p99_ms']} ms, added "
                         f"{h['p99_added_ms']} ms")
        lines.append("")
    g = results.get("governance")
    if g:
        lines.append(f"**governance**: entry+exit {json.dumps({k: v for k, v in g.items() if k != 'elapsed_s'})}\n")
    z = results.get("zookeeper")
    if z:
        lines.append(f"**zookeeper**: {json.dumps({k: v for k, v in z.items() if k != 'elapsed_s'})}\n")
    r = results.get("rules")
    if r:
        lines.append(f"**rules** ({r['pushes_per_source']} pushes per source; ok: {r['ok']})\n")
        lines.append("| source | push to applied p50 ms | p99 ms | max ms |")
        lines.append("|---|---|---|---|")
        for source, t in r["push_to_applied_ms"].items():
            lines.append(f"| {source} | {t['p50']} | {t['p99']} | {t['max']} |")
        lines.append(f"\n1,000 flow rules under load: {json.dumps(r['under_load'])}\n")
    for name in ("xds", "nacos"):
        x = results.get(name)
        if x:
            lines.append(f"**{name}**: {json.dumps({k: v for k, v in x.items() if k != 'elapsed_s'})}\n")
    s = results.get("sofaregistry")
    if s:
        lines.append(sofaregistry_table(s))
    h = results.get("https")
    if h and "keepalive" in h:
        lines.append(f"**https** (TLS 1.3, ECDSA P-256; {h['connections']} connections; keep-alive, and "
                     f"`Connection: close` = one new handshake per request, no resumption)\n")
        lines.append("| target | mode | req/s | p50 ms | p99 ms | proxy CPU µs/req | rounds req/s |")
        lines.append("|---|---|---|---|---|---|---|")
        for mode in ("keepalive", "handshakes"):
            for name, t in h[mode].items():
                lines.append(f"| {name} | {mode} | {t['rps']} | {t['p50_ms']} | {t['p99_ms']} | "
                             f"{t['cpu_us_per_request']} | {t['rounds_rps']} |")
        lines.append(f"\nratios: {json.dumps(h.get('ratios', {}))} (targets: keepalive ≥ 0.6, handshakes ≥ 0.5)\n")
    return "\n".join(lines)


def sofaregistry_table(s: dict) -> str:
    change, t, met = s["change_routable_ms"], s["targets"], s["met"]
    rss = max(s["rss_at_ready_mb"], s["rss_after_sync_mb"], s["rss_at_end_mb"])
    yes = {True: "yes", False: "**no**"}
    return "\n".join([
        f"**sofaregistry** ({s['data_ids']:,} data ids × {s['publishers_per_data_id']} publishers, session server in "
        f"its own process; {change['n']} changes, one at a time, {s['change_gap_ms']} ms apart)\n",
        "| measure | value | target | met |", "|---|---|---|---|",
        f"| full sync (spawn → every cluster complete; /ready at {s['ready_s']} s) | {s['full_sync_s']} s "
        f"| < {t['full_sync_s']:g} s | {yes[met['full_sync_s']]} |",
        f"| one change routable p50 / p99 / max (add {s['add_ms']['p99']}, remove {s['remove_ms']['p99']} p99) "
        f"| {change['p50']} / {change['p99']} / {change['max']} ms | p99 < {t['change_p99_ms']:g} ms "
        f"| {yes[met['change_p99_ms']]} |",
        f"| meshd RSS at ready / after sync / at end | {s['rss_at_ready_mb']} / {s['rss_after_sync_mb']} / "
        f"{s['rss_at_end_mb']} MB | < {t['rss_mb']:g} MB (max {rss}) | {yes[met['rss_mb']]} |",
        f"| meshd CPU to ready / in all | {s['meshd_cpu_to_ready_s']} / {s['meshd_cpu_s']} s | | |",
        f"| one admin poll (`GET /clusters/{{name}}`) p50 / p99 | {s['poll_ms']['p50']} / {s['poll_ms']['p99']} ms "
        f"| | |",
        "", f"`{json.dumps({k: v for k, v in s.items() if k != 'elapsed_s'})}`", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s (default 5 of 5 s)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    results = run(list(args.scenarios) or list(SCENARIOS), args.quick)
    OUT.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"results-{stamp}.json").write_text(json.dumps(results, indent=2))
    text = table(results)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by `make bench`.\n")
    with open(RESULTS, "a") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
