"""`schoolgate hash-password`: the password hash for a local users file (`password_hash`) or the
break-glass account (`SCHOOLGATE_BREAKGLASS_PASSWORD_HASH`), without writing Python."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from schoolgate.store.directory import hash_password

SHORTEST = 10  # characters: a password an account file or the break-glass account may have

USE = (
    "Put it in a users file as the person's password_hash (docs/identity.md), or in "
    "SCHOOLGATE_BREAKGLASS_PASSWORD_HASH for the break-glass account (docs/admin.md). "
    "The hash is not the password: the password itself is written nowhere."
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "hash-password",
        help="make the password hash for a users file or the break-glass account",
        description=(
            "Asks for the password twice (or reads one line from standard input when it is "
            "not a terminal) and prints its hash. " + USE
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("The same again: ") != password:
            print("The two passwords differ; nothing was made. Run it again.", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if len(password) < SHORTEST:
        print(
            f"That password has {len(password)} characters; use at least {SHORTEST} "
            "(three random words make a good one). Nothing was made.",
            file=sys.stderr,
        )
        return 1
    print(hash_password(password))
    print(USE, file=sys.stderr)
    return 0
