"""Every sub-command of `schoolgate` says what it does, and every option what it is for
(newcomer review finding 12): walks the whole argparse tree of cli.make_parser()."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from schoolgate.cli import make_parser


def commands(
    parser: argparse.ArgumentParser, path: str = "schoolgate"
) -> Iterator[tuple[str, argparse.ArgumentParser, str | None]]:
    """(path, parser, the one-line help shown in the parent's list) for every sub-command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", sub, helps.get(name)
                yield from commands(sub, f"{path} {name}")


def test_the_tree_is_walked() -> None:
    found = {path for path, _, _ in commands(make_parser())}
    assert {"schoolgate policy table", "schoolgate db purge", "schoolgate ca rotate"} <= found


def test_every_sub_command_has_a_help_line_and_a_description() -> None:
    missing = [
        path
        for path, sub, line in commands(make_parser())
        if not (line and line.strip() and sub.description and sub.description.strip())
    ]
    assert missing == [], f"sub-commands without a help line or description: {missing}"


def test_every_option_has_help_text() -> None:
    missing = []
    for path, sub, _ in commands(make_parser()):
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS or not action.help.strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == [], f"options without help text: {missing}"


def test_the_file_checking_commands_have_one_shape() -> None:
    """`policy`, `trust` and `lists` are built alike (the same sub-command group, one helper):
    each sub-command's description says what its exit status means, so a script or a timer
    can act on it (`trust add-school` and `policy table` said nothing)."""
    groups = {"schoolgate policy", "schoolgate trust", "schoolgate lists"}
    silent = []
    for path, sub, _ in commands(make_parser()):
        if path in groups:
            (group,) = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
            assert (group.metavar, group.required) == ("SUBCOMMAND", True), path
            assert group.dest == f"{path.split()[-1]}_command", path
        elif path.rsplit(" ", 1)[0] in groups:
            words = f"{sub.description} {sub.epilog or ''}"
            if "Exit 0" not in words and "Exit status" not in words:
                silent.append(path)
    assert silent == [], f"sub-commands that do not say what their exit status means: {silent}"
