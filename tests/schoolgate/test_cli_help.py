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
