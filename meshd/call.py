"""``meshd call``: a command-line Dubbo and Bolt client (filled in by the RPC issue)."""

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("call", help="call a Dubbo or Bolt service (like grpcurl)")
    p.add_argument("target", help="dubbo://host:port or bolt://host:port")
    p.add_argument("service")
    p.add_argument("method")
    p.add_argument("args", nargs="*", help="JSON arguments")


def call_command(args: argparse.Namespace) -> int:
    print("meshd call: not built yet")
    return 2
