"""``python -m shared prepare INPUT --out DIR [--test-percent N]``: prepare a JSONL file locally, offline.

The same code the blob trigger runs, so a data owner can check a file before uploading it. Exit codes:
0 the dataset is accepted, 2 it is rejected as a whole (the report is still written), 1 usage or I/O error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

EXIT_ACCEPTED = 0
EXIT_IO = 1
EXIT_REJECTED = 2
OUTPUTS = ("train", "test", "rejected")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="validate, normalise, dedup and split a JSONL file locally (no Azure needed)",
        description="Writes DIR/train.jsonl, test.jsonl, rejected.jsonl and report.json. "
        "Exit 0: accepted; 2: rejected as a whole (report written); 1: usage or I/O error.",
    )
    parser.add_argument("input", help="a .jsonl or .jsonl.gz file (gzip is detected by content), or - for stdin")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--test-percent", type=int, default=None, help="share of conversations for test (0-100)")
    parser.add_argument("--max-line-bytes", type=int, default=None, help="longest accepted line (MAX_LINE_BYTES)")
    parser.add_argument("--max-seq-length", type=int, default=None, help="token length to compare against")
    parser.add_argument("--quiet", action="store_true", help="print only the verdict line")
    parser.set_defaults(func=run)
    parser.error = _usage_error(parser)  # type: ignore[method-assign]


def _usage_error(parser: argparse.ArgumentParser) -> Any:
    """argparse exits 2 on usage errors; 2 means "rejected dataset" here, so usage errors exit 1."""

    def error(message: str) -> None:
        parser.print_usage(sys.stderr)
        parser.exit(EXIT_IO, f"{parser.prog}: error: {message}\n")

    return error


def _options(args: argparse.Namespace) -> Any:
    """The preparation's options: its settings from the environment (as the app reads them), then the flags.

    Only the settings a preparation follows are read (it needs no storage or ML platform), and the settings
    module is imported only when one of them is set: importing it costs about a tenth of the command's run on a
    60 MB file, and with none set the defaults are the same (tests/unit/test_chatdata_options.py)."""
    import msgspec

    from shared.chatdata import PrepareOptions

    base = PrepareOptions()
    if any(name in os.environ for name in PrepareOptions.SETTINGS):
        from shared.settings import load_some_settings

        base = PrepareOptions.from_settings(SimpleNamespace(**load_some_settings(PrepareOptions.SETTINGS)))
    overrides: dict[str, Any] = {"source": args.input}
    if args.test_percent is not None:
        overrides["test_percent"] = args.test_percent
    if args.max_line_bytes is not None:
        overrides["max_line_bytes"] = args.max_line_bytes
    if args.max_seq_length is not None:
        overrides["max_seq_length"] = args.max_seq_length
    return msgspec.structs.replace(base, **overrides)


def run(args: argparse.Namespace) -> int:
    from shared.chatdata import file_chunks, prepare

    try:
        options = _options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_IO
    try:
        with ExitStack() as stack:
            source = sys.stdin.buffer if args.input == "-" else stack.enter_context(open(args.input, "rb"))
            args.out.mkdir(parents=True, exist_ok=True)
            outs = [stack.enter_context((args.out / f"{name}.jsonl").open("wb")) for name in OUTPUTS]
            writers = (out.write for out in outs)
            report = prepare(file_chunks(source), *writers, options, write_beside=False)  # local files: inline
        (args.out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        print(f"error: {exc.filename or args.input}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_IO
    print(summary(report, args.out, quiet=args.quiet))
    return EXIT_ACCEPTED if report["accepted"] else EXIT_REJECTED


def summary(report: dict[str, Any], out: Path | str, quiet: bool = False) -> str:
    """A few lines a person reads: the verdict, the counts, the top reasons, and where the files are."""
    name = report.get("source") or "input"
    if report["accepted"]:
        lines = [f"{name}: accepted as dataset {report['dataset_id']} ({report['format']})"]
    else:
        lines = [f"{name}: REJECTED ({report['rejection']['code']}): {report['rejection']['message']}"]
    if quiet:
        return lines[0]
    lines.append(
        f"  {report['total_lines']} lines: {report['train']} train, {report['test']} test, "
        f"{report['rejected']} rejected ({report['blank_lines']} blank lines skipped)"
    )
    if report["reasons"]:
        lines.append("  rejected: " + ", ".join(f"{code} {n}" for code, n in report["reasons"].items()))
    if report["warnings"]:
        lines.append("  warnings: " + ", ".join(f"{code} {n}" for code, n in report["warnings"].items()))
    tokens = report["tokens_per_example"]
    if report["train"] or report["test"]:
        lines.append(
            f"  tokens per example (estimated): p50 {tokens['p50']}, p95 {tokens['p95']}, max {tokens['max']}; "
            f"{report['over_max_seq_length']} over {report['max_seq_length']}; "
            f"~{report['estimated_training_tokens']:,} training tokens ({report['epochs']} epochs)"
        )
    for item in report["first_rejections"][:5]:
        lines.append(f"  line {item['line']}: {item['reason']}: {item['detail']}")
    lines.append(f"  wrote {out}/train.jsonl, test.jsonl, rejected.jsonl, report.json")
    return "\n".join(lines)
