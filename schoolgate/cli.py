"""The `schoolgate` command line: a thin layer that wires the packages together."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Each module registers its sub-commands; the order is the order of `schoolgate --help`.
COMMAND_MODULES = (
    "schoolgate.commands.run",
    "schoolgate.commands.gateway",
    "schoolgate.commands.admin",
    "schoolgate.commands.notify",
    "schoolgate.commands.policy",
    "schoolgate.commands.trust",
    "schoolgate.commands.lists",
    "schoolgate.commands.explain",
    "schoolgate.commands.db",
    "schoolgate.commands.ca",
    "schoolgate.commands.pac",
    "schoolgate.commands.accounts",
)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schoolgate",
        description="Web filtering and access-control gateway for UK primary schools.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a command not built yet
        module.register(subparsers)
    return parser


# The shell's status for a writer whose reader went away (128 + SIGPIPE), as `yes | head` gives.
STOPPED_READING = 141


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`schoolgate policy table --csv | head -1`): not a fault
        # worth a traceback. Point stdout at /dev/null so Python's own flush at exit is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return STOPPED_READING
    return result


if __name__ == "__main__":
    sys.exit(main())
