"""``python -m shared retry RUN``: train a failed or canceled run again, once its cause is fixed."""

from __future__ import annotations

import argparse

from shared.cli.client import AppClient, add_run_command


def register(subparsers: argparse._SubParsersAction) -> None:
    add_run_command(subparsers, "retry", "retry a failed or canceled run (after fixing its cause)", run_retry)


def run_retry(args: argparse.Namespace) -> int:
    answer = AppClient.from_args(args).post(f"/api/runs/{args.run}/retry")
    line = f"{answer.get('run_id', args.run)}: {answer.get('state')} (attempt {answer.get('attempt')})"
    if answer.get("error"):
        line += f": {answer['error']}"
    print(line)
    return 0
