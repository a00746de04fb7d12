"""``python -m shared models`` and ``python -m shared wake M``: see models and wake a sleeping one."""

from __future__ import annotations

import argparse
from typing import Any

from shared.cli.client import AppClient, add_connection_args

COLUMNS = ("model", "state", "live_version", "desired_version", "endpoint", "last_activity", "idle_at")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list models: state, versions, endpoint, activity")
    add_connection_args(parser)
    parser.set_defaults(func=run_models)
    wake = subparsers.add_parser("wake", help="redeploy a sleeping model")
    wake.add_argument("model")
    add_connection_args(wake)
    wake.set_defaults(func=run_wake)


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    cells = [[str(row.get(col) or "-") for col in columns] for row in rows]
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def run_models(args: argparse.Namespace) -> int:
    answer = AppClient.from_args(args).get("/api/models")
    rows = answer.get("models", answer) if isinstance(answer, dict) else answer
    print(format_table(rows) if rows else "no models yet: upload a dataset with `python -m shared upload`")
    return 0


def run_wake(args: argparse.Namespace) -> int:
    answer = AppClient.from_args(args).post(f"/api/models/{args.model}/wake")
    print(answer.get("message") or f"{args.model}: {answer.get('state', 'wake requested')}")
    return 0
