"""``make demo``: the whole job on this machine, narrated.

Starts Azurite and the devhost, drops ``examples/support-bot.jsonl`` into ``training/incoming/demo/``, follows the
run (report, training, registration, blue/green deployment), chats with the fine-tuned model through the real
``openai`` client, lets the idle sweeper put it to sleep, wakes it with a request, and stops everything it started.
The demo works in its own namespace (tables ``autotunedemo*``, state under ``.autotune/demo``), reset each time.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.status import Status
from rich.table import Table

from scripts.journey import FAST_ENV, SAMPLE, Journey, StageError
from scripts.stack import ROOT, LocalStack

MODEL = "demo"
API_KEY = "demo-key"
console = Console()


def demo_env(state_dir: Path) -> dict[str, str]:
    return {
        **FAST_ENV,
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "TRAINING_CONTAINER": "training",
        "LEDGER_TABLE_PREFIX": "autotunedemo",
        "LOCAL_STATE_DIR": str(state_dir),
        "GATEWAY_API_KEYS": API_KEY,
        "LOG_LEVEL": "WARNING",
    }


def reset_namespace(env: dict[str, str], state_dir: Path) -> None:
    """Forget the previous demo: its tables, its blobs under incoming/demo and datasets/demo, its local state."""
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient

    tables = TableServiceClient.from_connection_string(env["AzureWebJobsStorage"])
    for table in tables.list_tables():
        if table.name.startswith(env["LEDGER_TABLE_PREFIX"]):
            tables.delete_table(table.name)
    container = BlobServiceClient.from_connection_string(env["AzureWebJobsStorage"]).get_container_client("training")
    if container.exists():
        for prefix in (f"incoming/{MODEL}/", f"datasets/{MODEL}/"):
            for blob in container.list_blobs(name_starts_with=prefix):
                container.delete_blob(blob.name)
    shutil.rmtree(state_dir, ignore_errors=True)


@contextlib.contextmanager
def following(journey: Journey, label: str) -> Iterator[None]:
    """A live status line that the journey's stages update while they wait."""
    with Status(label, console=console) as status:
        journey.status = status.update
        try:
            yield
        finally:
            journey.status = None


def report_table(dataset: dict) -> Table:
    report = dataset.get("report") or {}
    table = Table(title=f"Data report · dataset {dataset.get('dataset_id')}", show_header=False)
    for key in ("format", "total_lines", "train", "test", "rejected"):
        table.add_row(key, str(report.get(key)))
    for code, count in (report.get("reasons") or {}).items():
        table.add_row(f"  rejected: {code}", str(count))
    for code, count in (report.get("warnings") or {}).items():
        table.add_row(f"  warning: {code}", str(count))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SAMPLE, help="JSONL file to train on")
    parser.add_argument("--skip-sleep", action="store_true", help="stop after the first chat answer")
    args = parser.parse_args(argv)

    state_dir = ROOT / ".autotune" / "demo"
    env = demo_env(state_dir)
    started = time.monotonic()
    console.rule("[bold]autotune demo[/bold]: drop JSONL, get a live fine-tuned model")
    try:
        with LocalStack(env, log_path=ROOT / ".autotune" / "demo-devhost.log") as stack:
            console.print(
                f"Azurite on 127.0.0.1:10000-10002 · devhost on {stack.url} (log: .autotune/demo-devhost.log)"
            )
            reset_namespace(env, state_dir)
            journey = Journey(stack, MODEL, API_KEY, say=console.print)
            with following(journey, "starting"):
                journey.drop_dataset(args.data, env)
                dataset = journey.wait_prepared()
                console.print(report_table(dataset))
                run = journey.wait_trained()
            metrics = run.get("metrics") or {}
            console.print(
                f"[bold]Training[/bold] run {run['run_id']} · job {run['job']['name']} · metrics: "
                + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
            )
            with following(journey, "deploying"):
                view = journey.wait_live()
            console.print(
                f"[bold]Registered[/bold] version {view['live_version']} · [bold]deployed[/bold] "
                f"{view['live_deployment']} on endpoint {view['endpoint']}"
            )
            question = "What are your opening hours?"
            answer = journey.chat(question)
            console.print(f"[bold]you>[/bold] {question}\n[bold]{MODEL}>[/bold] {answer}")
            if not args.skip_sleep:
                idle_s = float(env["ENDPOINT_IDLE_MINUTES"]) * 60
                with following(journey, "waiting"):
                    console.print(f"Now idle: the sweeper deletes endpoints idle for {idle_s:.0f} s (demo setting)")
                    slept = journey.wait_asleep()
                console.print(f"[bold]Asleep[/bold]: {slept.get('sleep_reason')} · endpoint deleted, model kept")
                with following(journey, "waking"):
                    answer = journey.wake_by_request()
                console.print(
                    f"A request woke it (503, Retry-After {journey.facts.get('wake_retry_after')} s); "
                    f"served again:\n[bold]{MODEL}>[/bold] {answer}"
                )
    except StageError as exc:
        console.print(f"[bold red]demo failed[/bold red]: {exc}")
        console.print("The devhost log is in .autotune/demo-devhost.log")
        return 1
    console.rule(f"done in {time.monotonic() - started:.0f} s; everything the demo started is stopped")
    console.print(
        "To keep a stack running and try it by hand: `make devhost`, then in another terminal\n"
        "  .venv/bin/python -m shared upload examples/support-bot.jsonl --model support-bot\n"
        "  .venv/bin/python -m shared status --watch\n"
        "  .venv/bin/python -m shared chat --model support-bot"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
