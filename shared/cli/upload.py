"""``python -m shared upload FILE --model M``: send a JSONL (or .jsonl.gz) file to the app for training."""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.cli.client import AppClient, add_connection_args
from shared.cli.errors import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("upload", help="upload a JSONL dataset for a model")
    parser.add_argument("file", type=Path)
    parser.add_argument("--model", required=True, help="model name (lowercase letters, digits, hyphens)")
    add_connection_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    client = AppClient.from_args(args)
    content_type = "application/gzip" if args.file.suffix == ".gz" else "application/x-ndjson"
    with args.file.open("rb") as body:
        answer = client.post(
            f"/api/models/{args.model}/datasets",
            content=body.read(),
            headers={"content-type": content_type, "x-filename": args.file.name},
        )
    dataset_id = answer.get("dataset_id", "?")
    print(f"uploaded {args.file} for model {args.model}: dataset {dataset_id}")
    for key in ("run_id", "status_url", "state"):
        if answer.get(key):
            print(f"  {key}: {answer[key]}")
    return 0
