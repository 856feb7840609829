"""``python -m integration.images build|tags|prune`` (``make images`` runs ``build``).

build  make sure a Docker engine runs (integration.docker_engine), build the missing images, print the
       tags. Without an engine (not root, not Debian, ...) it says what is missing and exits 0, because
       the Docker suites then skip and say so; ``--strict`` makes that an error.
tags   print the current tags without building anything (no engine needed).
prune  remove our images whose tags are no longer current.
"""

from __future__ import annotations

import argparse
import sys
import time

from integration.images.recipes import RecipeError, compute_tags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integration.images")
    parser.add_argument("command", choices=["build", "tags", "prune"])
    parser.add_argument("--strict", action="store_true", help="fail when no Docker engine can be started")
    args = parser.parse_args(argv)
    try:
        tags = compute_tags()
        if args.command == "tags":
            print("\n".join(tags.lines()))
            return 0
        return _build(tags, args.strict) if args.command == "build" else _prune(tags)
    except RecipeError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1


def _build(tags, strict: bool) -> int:
    from integration import docker_engine
    from integration.images.build import build
    try:
        engine = docker_engine.ensure()
    except docker_engine.EngineUnavailable as exc:
        print(f"images: Docker engine not available: {exc}; the Docker suites will skip", file=sys.stderr)
        return 1 if strict else 0
    print(f"images: {engine.detail}")
    started = time.monotonic()
    report = build(tags, log=lambda line: print(f"images: {line}", flush=True))
    done = ", ".join(f"{name} {report.seconds[name]:.0f}s" for name in report.built) or "nothing to build"
    print(f"images: {done} (total {time.monotonic() - started:.1f}s)")
    print("\n".join(tags.lines()))
    return 0


def _prune(tags) -> int:
    import docker
    from integration.images.build import prune
    removed = prune(tags, docker.from_env())
    print("\n".join(f"removed {tag}" for tag in removed) or "nothing to prune")
    return 0


if __name__ == "__main__":
    sys.exit(main())
