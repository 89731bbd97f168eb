"""`schoolgate gateway`: check the policy, make the school CA if needed, then run schoolgate's
addons on mitmproxy (lazy upstream connections, onboarding off, our confdir): inside mitmdump,
or with `--engine lean` on a proxy core with only the built-ins the gateway needs.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from schoolgate.commands.common import prepare_database
from schoolgate.policy.errors import PolicyError
from schoolgate.proxy_addons.ca import ensure_school_ca
from schoolgate.store.db import (
    database_url_from_environment,
    default_database_url,
    display_url,
    make_engine,
    secure_directory,
)
from schoolgate.store.policy_files import load_policy
from schoolgate.store.tokens import load_or_create_secret

DEFAULT_DATA_DIR = Path("var/schoolgate")
MODES = ("regular", "transparent")
DEFAULT_ENGINE = "lean"  # passes every gateway test, and is the one within 1.10x bare mitmdump
ENGINES = ("mitmdump", "lean")
LAST_OVERRIDES = "overrides-last.json"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="run the filtering gateway (mitmproxy with schoolgate's addons)",
        description="Validate the policy, then run mitmdump with schoolgate's addons. Arguments "
        "after '--' go to mitmdump unchanged (e.g. -- --set tcp_timeout=300).",
    )
    parser.add_argument("--policy", type=Path, help="policy file (default: the seed policy)")
    parser.add_argument("--listen-host", default="", help="address to listen on (default: all)")
    parser.add_argument("--listen-port", type=int, default=8080, help="port (default: 8080)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="regular",
        help="regular: an explicit proxy (PAC/WPAD, proxy auth); transparent: "
        "traffic redirected by the firewall (default: regular)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the CA, the link-signing secret and the overrides live "
        "(default: $SCHOOLGATE_DATA_DIR or ./var/schoolgate)",
    )
    parser.add_argument(
        "--identity",
        type=Path,
        help="identity settings file (directory, "
        "local users, subnets); default: everyone gets the default role",
    )
    parser.add_argument(
        "--database",
        default=None,
        help="database the admin writes exceptions, sanctions and local lists "
        "to, and events are recorded in (default: "
        "$SCHOOLGATE_DATABASE_URL, else SQLite in the data directory, "
        "migrated on start)",
    )
    parser.add_argument(
        "--overrides",
        type=Path,
        default=None,
        help="run without a database: read exceptions, sanctions and local "
        "lists from this snapshot file instead (events go only to "
        "--siem)",
    )
    parser.add_argument(
        "--siem",
        default=None,
        help="also write every event as a JSON line to this file ('-': stdout)",
    )
    parser.add_argument(
        "--admin-url",
        default="http://127.0.0.1:8081",
        help="the admin service's address, for 'Ask for access' links",
    )
    parser.add_argument(
        "--gateway-host", default="", help="the gateway's host name as clients know it (PAC file)"
    )
    parser.add_argument(
        "--school-name",
        default=os.environ.get("SCHOOLGATE_SCHOOL_NAME", "School"),
        help="the school's name, put in the CA certificate made on first start",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help="lean: mitmproxy's proxy core with only the built-in addons the "
        "gateway needs (about half the CPU per request; accepts -s and "
        "--set after '--', no script hot-reload); mitmdump: mitmproxy's "
        f"mitmdump with all its built-in addons (default: {DEFAULT_ENGINE})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes sharing the listening port (SO_REUSEPORT), "
        "e.g. one per core; worker i serves metrics on the metrics port "
        "+ i (default: 1)",
    )
    parser.add_argument(
        "mitmdump_args", nargs=argparse.REMAINDER, help="after '--': extra mitmdump arguments"
    )
    parser.set_defaults(handler=run_gateway)


def data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir)
    return Path(os.environ.get("SCHOOLGATE_DATA_DIR", "") or DEFAULT_DATA_DIR)


def mitmdump_arguments(
    args: argparse.Namespace, data: Path, *, loader_script: bool = True
) -> list[str]:
    """The mitmdump command line (without the program name) for these arguments; without the
    loader script for the lean engine, which adds the addons itself."""
    loader = Path(str(resources.files("schoolgate.proxy_addons") / "loader.py"))
    database = database_for(args, data)
    extra = list(args.mitmdump_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    sets = {
        # What -q does, as settings, so that a later --set (e.g. from -- ...) can change it.
        "termlog_verbosity": "warn",  # operators need the warnings (policy refused, db down)
        "flow_detail": "0",
        "connection_strategy": "lazy",  # a blocked site is never contacted
        "onboarding": "false",  # the CA is handed out by /ca.pem, not mitm.it
        "confdir": str((data / "ca").resolve()),
        # absolute, not resolved: a ConfigMap swaps the ..data symlink under this name
        "schoolgate_policy": str(args.policy.absolute()) if args.policy else "",
        "schoolgate_spool_dir": str((data / "spool").resolve()),
        "schoolgate_secret_file": str((data / "secret").resolve()),
        "schoolgate_admin_url": args.admin_url,
        "schoolgate_gateway_host": args.gateway_host,
    }
    if database is not None:
        sets["schoolgate_database_url"] = database
        # The last overrides read from the database, enforced if it is down at the next start.
        sets["schoolgate_overrides"] = str((data / LAST_OVERRIDES).resolve())
    else:
        overrides = args.overrides if args.overrides is not None else data / "overrides.json"
        sets["schoolgate_overrides"] = str(overrides.resolve())
    if args.siem:
        sets["schoolgate_siem"] = args.siem if args.siem == "-" else str(Path(args.siem).resolve())
    if args.identity is not None:
        sets["schoolgate_identity"] = str(args.identity.resolve())
    extra, set_args = _merge_sets(extra, sets)
    command = ["--mode", args.mode, "--listen-port", str(args.listen_port)]
    if args.listen_host:
        command += ["--listen-host", args.listen_host]
    if loader_script:
        command += ["-s", str(loader)]
    return command + set_args + extra


def database_for(args: argparse.Namespace, data: Path) -> str | None:
    """The database URL the gateway uses; None when it runs on a snapshot file instead."""
    if args.database is None and args.overrides is not None:
        return None
    return str(args.database or database_url_from_environment(data))


def database_answers(url: str) -> bool:
    """Whether a connection to the database can be made now (its schema is checked after)."""
    try:
        engine = make_engine(url)
    except (ValueError, SQLAlchemyError):
        return True  # not an outage: prepare_database reports the real problem
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def _merge_sets(extra: list[str], sets: dict[str, str]) -> tuple[list[str], list[str]]:
    """Split `--set name=value` pairs out of `extra`: (the other arguments, the --set arguments).
    A name the extra arguments set replaces our default for it (mitmdump refuses two values for
    one plain option); every value they give is kept, so list options can be set several times
    (e.g. schoolgate_connect_ports=80 and =443)."""
    rest: list[str] = []
    given: dict[str, list[str]] = {}
    items = iter(extra)
    for arg in items:
        value = next(items, None) if arg == "--set" else None
        if arg.startswith("--set=") and "=" in arg[6:]:
            value, arg = arg[6:], "--set"
        if arg == "--set" and value is not None and "=" in value:
            name, _, setting = value.partition("=")
            given.setdefault(name, []).append(setting)
        else:
            rest.append(arg)
            if value is not None:
                rest.append(value)
    merged = {name: [value] for name, value in sets.items() if name not in given} | given
    return rest, [
        arg
        for name, values in merged.items()
        for value in values
        for arg in ("--set", f"{name}={value}")
    ]


def run_gateway(args: argparse.Namespace) -> int:
    try:
        load_policy(args.policy)
    except PolicyError as exc:
        print(
            f"schoolgate gateway: the policy cannot be used, so the gateway was not "
            f"started:\n{exc}",
            file=sys.stderr,
        )
        return 2
    data = data_dir(args)
    try:
        secure_directory(data)
        ca = ensure_school_ca(data / "ca", args.school_name)
    except OSError as exc:
        print(
            f"schoolgate gateway: cannot prepare the data directory {data}: {exc}", file=sys.stderr
        )
        return 2
    if ca.created:
        print(
            f"schoolgate gateway: made the school CA; install {ca.cert_pem_path} on school "
            "devices as a trusted root",
            file=sys.stderr,
        )
    if args.workers < 1:
        print("schoolgate gateway: --workers must be at least 1", file=sys.stderr)
        return 2
    database = database_for(args, data)
    if database is not None:
        # The embedded SQLite is migrated here; any other database must already be current.
        embedded = database == default_database_url(data)
        if not embedded and not database_answers(database):
            print(
                f"schoolgate gateway: the database {display_url(database)} does not answer; "
                "starting without it: events wait in the spool, and the overrides come from "
                f"the last snapshot ({data / LAST_OVERRIDES}) or, without one, the policy "
                "alone, until it is back",
                file=sys.stderr,
            )
        else:
            problem = prepare_database(database, embedded=embedded)
            if problem is not None:
                print(f"schoolgate gateway: {problem}", file=sys.stderr)
                return 2
    if args.workers > 1:
        from schoolgate.workers import run_workers, worker_arguments

        try:
            worker_arguments(args.mitmdump_args, args.workers - 1)  # every worker's, checked once
        except ValueError as error:
            print(f"schoolgate gateway: {error}", file=sys.stderr)
            return 2
        load_or_create_secret(data / "secret")  # made once, before the workers share it
        return run_workers(args.workers, lambda index: _serve_worker(args, data, index))
    return _serve(args, data)


def _serve_worker(args: argparse.Namespace, data: Path, index: int) -> int:
    from schoolgate.workers import enable_reuse_port, worker_arguments

    enable_reuse_port()
    worker = argparse.Namespace(**vars(args))
    worker.mitmdump_args = worker_arguments(args.mitmdump_args, index)
    return _serve(worker, data)


def _serve(args: argparse.Namespace, data: Path) -> int:
    if args.engine == "lean":
        from schoolgate.proxy_addons.engine import (
            run_lean,  # imported late: mitmproxy is slow to import
        )

        return run_lean(mitmdump_arguments(args, data, loader_script=False))
    from mitmproxy.tools.main import mitmdump

    mitmdump(mitmdump_arguments(args, data))
    return 0
