"""The operator's command line: ``python -m shared COMMAND``. One module per command, each with
``register(subparsers)`` adding its parser and setting ``func`` to a callable returning the exit code."""

from __future__ import annotations

import argparse
import importlib
import sys

# each command module adds its name here
COMMANDS: tuple[str, ...] = ("upload", "models", "chat", "status", "prepare", "retry", "promotion")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with every command; with a known ``command``, with that one alone: a command then imports only
    its own module (the offline ``prepare`` never loads the HTTP client's), since start-up is part of every run."""
    parser = argparse.ArgumentParser(prog="python -m shared", description="autotune command line")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in (command,) if command in COMMANDS else COMMANDS:
        importlib.import_module(f"shared.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    from shared.cli.errors import CliError

    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
