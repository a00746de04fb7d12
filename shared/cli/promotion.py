"""``python -m shared promote RUN`` and ``reject RUN``: a person's word on a version the promotion gate stopped."""

from __future__ import annotations

import argparse

from shared.cli.client import AppClient, add_run_command


def register(subparsers: argparse._SubParsersAction) -> None:
    add_run_command(
        subparsers, "promote", "deploy a held (or awaiting approval) run's version despite its evaluation", run_promote
    )
    add_run_command(subparsers, "reject", "end a run that awaits approval (PROMOTION_POLICY=manual)", run_reject)


def run_promote(args: argparse.Namespace) -> int:
    answer = AppClient.from_args(args).post(f"/api/runs/{args.run}/promote")
    override = answer.get("override") or {}
    print(
        f"{answer.get('run_id', args.run)}: {answer.get('state')}: version {answer.get('registered_version')} will be "
        f"deployed (override at {override.get('at')}, the evaluation had said {override.get('previous_decision')})"
    )
    return 0


def run_reject(args: argparse.Namespace) -> int:
    answer = AppClient.from_args(args).post(f"/api/runs/{args.run}/reject")
    print(f"{answer.get('run_id', args.run)}: {answer.get('state')} ({answer.get('decision')}): {answer.get('error')}")
    return 0
