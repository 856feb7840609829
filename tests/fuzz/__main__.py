"""``make fuzz``: the fuzz suite for as long as asked.

    python -m tests.fuzz --seconds 3600 [--engine both|hypothesis|atheris]

hypothesis: rounds of ``pytest tests/fuzz`` with a fresh seed each, every test's case count scaled up
(``MESHD_FUZZ_SCALE``) so that a round fills what is left of its share of the time (at most ten minutes a
round); a failure stops the run, and hypothesis's database (``.hypothesis/``) replays it in every later
``make test`` until it is fixed. atheris (when importable): each target of :mod:`.coverage_guided` for an
equal share of its time, corpora kept in ``.cache/fuzz/<target>`` (they grow from run to run), crashes
written to ``.cache/fuzz/crashes/``. ``both`` (the default) gives each engine half the time; without
atheris, hypothesis gets all of it. Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "fuzz"
MAX_ROUND = 600.0


def run_hypothesis(seconds: float) -> bool:
    """Rounds of the suite until ``seconds`` are spent; False on the first failing round."""
    deadline = time.monotonic() + seconds
    scale, rounds, base = 1.0, 0, None
    while True:
        left = deadline - time.monotonic()
        if base is not None:
            if left < 0.5 * base:
                break
            scale = max(1.0, min(left, MAX_ROUND) / base)
        seed = random.getrandbits(32)
        print(f"fuzz: hypothesis round {rounds + 1}, cases x{scale:.1f}, seed {seed}", flush=True)
        start = time.monotonic()
        env = {**os.environ, "MESHD_FUZZ_SCALE": f"{scale:.2f}"}
        done = subprocess.run([sys.executable, "-m", "pytest", "tests/fuzz", "-q", "-x", "-p", "no:randomly",
                               "-o", "timeout=0", f"--hypothesis-seed={seed}", "--hypothesis-show-statistics"],
                              cwd=ROOT, env=env)
        elapsed = time.monotonic() - start
        rounds += 1
        if done.returncode != 0:
            print(f"fuzz: round {rounds} failed (seed {seed}); hypothesis saved the failing case in .hypothesis/",
                  flush=True)
            return False
        if base is None:
            base = elapsed / scale
    print(f"fuzz: hypothesis: {rounds} round(s), no failure", flush=True)
    return True


def run_atheris(seconds: float, only: list[str]) -> bool:
    """Each target for an equal share of ``seconds``; False when any crashed."""
    from tests.fuzz.coverage_guided import TARGETS, write_corpus
    names = only or list(TARGETS)
    share = max(int(seconds / len(names)), 5)
    crashes = CACHE / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    ok = True
    for name in names:
        corpus = CACHE / name
        write_corpus(name, corpus)
        print(f"fuzz: atheris {name} for {share}s (corpus {corpus.relative_to(ROOT)})", flush=True)
        done = subprocess.run([sys.executable, "-m", "tests.fuzz.coverage_guided", name, f"-max_total_time={share}",
                               "-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1",
                               f"-artifact_prefix={crashes}/{name}-", str(corpus)], cwd=ROOT)
        if done.returncode != 0:
            print(f"fuzz: atheris {name} found a failing input (see {crashes.relative_to(ROOT)})", flush=True)
            ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 600)))
    parser.add_argument("--engine", choices=("both", "hypothesis", "atheris"), default="both")
    parser.add_argument("--target", action="append", default=[], help="atheris target (repeatable)")
    args = parser.parse_args()
    have_atheris = importlib.util.find_spec("atheris") is not None
    if args.engine != "hypothesis" and not have_atheris:
        print("fuzz: atheris is not installed (pip install atheris); hypothesis only", flush=True)
        if args.engine == "atheris":
            return 1
    if args.engine == "hypothesis" or not have_atheris:
        return 0 if run_hypothesis(args.seconds) else 1
    if args.engine == "atheris":
        return 0 if run_atheris(args.seconds, args.target) else 1
    ok = run_hypothesis(args.seconds / 2)
    return 0 if run_atheris(args.seconds / 2, args.target) and ok else 1


if __name__ == "__main__":
    sys.exit(main())
