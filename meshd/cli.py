"""The ``meshd`` command line: run, validate, demo, call, version.

Each subcommand lives next to what it drives; this module only parses arguments and dispatches.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshd", description="service-governance sidecar for Dubbo, Bolt and HTTP")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the sidecar with a config file")
    run.add_argument("-c", "--config", required=True, help="YAML or JSON config file")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    validate = sub.add_parser("validate", help="validate a config file and print a summary or its errors")
    validate.add_argument("-c", "--config", required=True)

    demo = sub.add_parser("demo", help="run the embedded demo (meshd + two demo providers on loopback)")
    demo.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    from meshd import call
    call.add_parser(sub)

    sub.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        from meshd import __version__, compiled
        print(f"meshd {__version__} (hot path: {compiled.probe()})")
        return 0
    if args.command == "validate":
        from meshd.config import validate_command
        return validate_command(args.config)
    if args.command == "run":
        from meshd.app import run_command
        return run_command(args.config, args.log_level)
    if args.command == "demo":
        from meshd.demo import demo_command
        return demo_command(args.log_level)
    if args.command == "call":
        from meshd import call
        return call.call_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
