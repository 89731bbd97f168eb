"""`schoolgate notify`: send what is waiting by e-mail, once (new unblock requests to the
Business Manager, each decision to its requester, new alerts and the weekly summary to the DSL).

A timer runs it every few minutes (deploy/systemd/schoolgate-notify.timer, the compose
`notify` service, the Kubernetes CronJob); it reads the admin's settings from the same
environment as `schoolgate admin` and remembers what it sent, so running it again sends
nothing twice (admin_api/notifications.py).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "notify",
        help="send waiting notifications by e-mail, once (run it from a timer)",
        description=__doc__,
    )
    parser.add_argument(
        "--settings",
        required=True,
        metavar="FILE",
        help="the notifications file (YAML: e-mail server, who gets what); see docs/admin.md",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from schoolgate.admin_api.notifications import main

    return main(["--settings", str(args.settings)])
