"""The ``grainlike`` command: the only place that reads argv, the environment and files."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from ._exceptions import GrainlikeError

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def _cmd_detect(args: argparse.Namespace) -> int:
    from .worker import detect_capacity

    capacity = detect_capacity(override=args.resources)
    if args.json:
        print(json.dumps({label: list(pair) for label, pair in capacity.stat().items()}))
    else:
        print(capacity)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grainlike", description="A resource-typed task scheduler for Python."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    detect = commands.add_parser("detect", help="print the capacity a worker here would advertise")
    detect.add_argument("--resources", help="override detection per kind, e.g. cores:1,gpu:0")
    detect.add_argument("--json", action="store_true", help="print JSON instead of shorthand")
    detect.set_defaults(handler=_cmd_detect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``grainlike`` command line; returns the exit status."""
    args = _parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except GrainlikeError as error:
        print(f"grainlike {args.command}: {error}", file=sys.stderr)
        return 2
