"""``python -m shared status [RUN] [--model M] [--watch]``: runs, one run's timeline and its loss curves."""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from shared.cli.client import AppClient, add_connection_args
from shared.cli.evaluation import render_evaluation

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ACTIVE = {"waiting", "queued", "submitted", "running", "completed", "registered", "deploying"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="list runs, or show one run's timeline and loss curve")
    parser.add_argument("run", nargs="?", help="run id (default: list the newest runs)")
    parser.add_argument("--model", help="only runs of this model")
    parser.add_argument("--watch", action="store_true", help="refresh until the run (or the newest run) settles")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between refreshes with --watch")
    add_connection_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    client = AppClient.from_args(args)
    if not args.run and not args.watch:
        print(runs_table(client.get("/api/runs", params=_params(args)).get("runs", [])))
        return 0
    run_id = args.run or _newest_run(client, args)
    if not args.watch:
        print(render_run(client.get(f"/api/runs/{run_id}")))
        return 0
    return _watch(client, run_id, args.every)


def _params(args: argparse.Namespace) -> dict[str, str]:
    return {"model": args.model} if args.model else {}


def _newest_run(client: AppClient, args: argparse.Namespace) -> str:
    from shared.cli.errors import CliError

    runs = client.get("/api/runs", params={**_params(args), "limit": "1"}).get("runs", [])
    if not runs:
        raise CliError("no runs yet: upload a dataset with `python -m shared upload FILE --model M`")
    return runs[0]["run_id"]


def _watch(client: AppClient, run_id: str, every: float) -> int:
    from rich.live import Live
    from rich.text import Text

    started = time.monotonic()
    with Live(refresh_per_second=4, transient=False) as live:
        while True:
            detail = client.get(f"/api/runs/{run_id}")
            elapsed = time.monotonic() - started
            live.update(Text(progress_line(detail, elapsed) + "\n\n" + render_run(detail)))
            if detail["state"] not in ACTIVE:
                return 0 if detail["state"] == "live" else 1
            time.sleep(every)


def progress_line(detail: dict[str, Any], elapsed: float) -> str:
    progress = (detail.get("job") or {}).get("progress") or {}
    parts = [f"{detail['run_id']}: {detail['state']}", f"{elapsed:.0f} s"]
    if progress.get("stage"):
        parts.append(f"stage {progress['stage']}")
    if progress.get("step") is not None and progress.get("max_steps"):
        done = int(progress["step"]) / max(1, int(progress["max_steps"]))
        bar = "#" * int(done * 20)
        parts.append(f"[{bar:<20}] step {progress['step']}/{progress['max_steps']}")
    if progress.get("loss") is not None:
        parts.append(f"loss {float(progress['loss']):.3f}")
    return " · ".join(parts)


def runs_table(runs: list[dict[str, Any]]) -> str:
    from shared.cli.models import format_table

    if not runs:
        return "no runs yet"
    return format_table(runs, ("run_id", "model", "state", "corpus_id", "job_name", "registered_version", "updated_at"))


def render_run(detail: dict[str, Any]) -> str:
    lines = [f"run {detail['run_id']} · model {detail['model']} · state {detail['state']}"]
    job = detail.get("job") or {}
    if job.get("name"):
        lines.append(f"job {job['name']}" + (f" · {job['studio_url']}" if job.get("studio_url") else ""))
    if detail.get("error"):
        lines.append(f"error: {detail['error']}")
    lines += waiting_lines(detail.get("waiting")) + corpus_lines(detail.get("corpus"))
    dataset = detail.get("dataset") or {}
    if dataset and not detail.get("corpus"):  # a run from before corpora: its one dataset
        counts = {"dataset": dataset.get("dataset_id"), **(dataset.get("summary") or {})}
        shown = [f"{key} {counts[key]}" for key in ("dataset", "train", "test", "rejected") if key in counts]
        lines.append(" · ".join(shown))
    lines.append("timeline:")
    lines += [f"  {step['at']}  {step['state']}" for step in detail.get("timeline", [])]
    metrics = {k: v for k, v in (detail.get("metrics") or {}).items() if isinstance(v, (int, float))}
    if metrics:
        lines.append("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    if (detail.get("registered") or {}).get("version"):
        lines.append(f"registered {detail['registered']['model']} version {detail['registered']['version']}")
    evaluation = render_evaluation(detail)
    if evaluation:
        lines += ["", *evaluation]
    chart = loss_chart(detail.get("loss_history") or {})
    if chart:
        lines += ["", chart]
    return "\n".join(lines)


def waiting_lines(waiting: dict[str, Any] | None) -> list[str]:
    """Why a waiting run waits, and the changes of data it gathered."""
    if not waiting:
        return []
    lines = [f"waiting: {waiting.get('reason') or 'to be looked at by the next reconcile tick'}"]
    lines += [f"  {change['at']}  {change['change']}" for change in waiting.get("changes") or []]
    return lines


def corpus_lines(corpus: dict[str, Any] | None) -> list[str]:
    """The corpus snapshot a run trains on: its totals, then one line per member dataset."""
    if not corpus:
        return []
    datasets = corpus.get("datasets") or []
    total = corpus.get("datasets_total") or len(datasets)
    head = (
        f"corpus {corpus['corpus_id']} ({corpus.get('mode', 'cumulative')}) · {total} dataset(s) · "
        f"train {corpus.get('train')} · test {corpus.get('test')}"
    )
    if corpus.get("duplicates"):
        head += f" · {corpus['duplicates']} duplicate(s) left out"
    lines = [head]
    if total > len(datasets):
        lines.append(f"  ... {total - len(datasets)} older dataset(s): see {corpus['files']['manifest']}")
    lines += [f"  {d['dataset_id']}  train {d['train']:>7}  test {d['test']:>6}" for d in datasets]
    return lines


def loss_chart(history: dict[str, list[list[float]]], width: int = 72, height: int = 14) -> str:
    """Train and eval loss against the step, drawn in the terminal (plotext)."""
    series = {name: points for name, points in history.items() if points}
    if not series:
        return ""
    import plotext

    plotext.clear_figure()
    plotext.plot_size(width, height)
    plotext.theme("clear")
    for name, points in series.items():
        label = "train loss" if name == "loss" else "eval loss"
        plotext.plot([p[0] for p in points], [p[1] for p in points], label=label, marker="braille")
    plotext.title("loss")
    plotext.xlabel("step")
    return ANSI.sub("", plotext.build())  # plotext colours even with the "clear" theme
