"""Corpus materialisation: merging ten prepared datasets into one corpus, against preparing their concatenation.

Continuous training rebuilds a model's corpus whenever its data changes. The naive way re-runs preparation over
every upload (validate, normalise, dedup, split each line again); ours merges the already prepared files: each
row's digest is hashed from a slice of the line (no JSON parse), deduplicated across datasets and routed to its
split. Both sides produce the same thing (one deduplicated train/test pair of the same conversations) from the
same data, each in its own process (peak RSS from ``os.wait4``); seconds are measured inside that process; outputs
go to RAM (/dev/shm) where there is one, so that neither side is timed on disk writeback.

Targets (issue 14): at least 3x the preparation's throughput, and peak RSS at most 150 MB, for a ~1 GiB corpus.
The headline ratio is CPU time, as in ``bench/dataprep.py``: on a machine shared with other work, wall clock is
mostly the wait for a core (both sides are printed).

    .venv/bin/python bench/corpus.py               # ~100 MB, about a minute
    .venv/bin/python bench/corpus.py --mb 1024     # the claim: ~1 GiB over ten datasets
    .venv/bin/python bench/corpus.py --azurite     # both sides blob to blob through the app's own code (Azurite)

The ten uploads come from ``../shared/bench/make_chat_jsonl.py`` (ultrachat-shaped, one seed each; cached in the
temp folder); each repeats 5% of the previous one's conversations, so the corpus really deduplicates. Preparing
the ten uploads one by one (what ingestion did when they arrived) is set-up, not measured.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dataprep import MAKE_CHAT, best, generate  # noqa: E402

DATASETS = 10
OVERLAP = 0.05  # share of each upload repeated from the previous one
SPEED_GOAL = 3.0
RSS_GOAL_MB = 150.0
AZURITE = "UseDevelopmentStorage=true"
# Outputs go to RAM when the machine has it (/dev/shm): the app writes blobs, never local disk, and a disk's
# writeback stalls would measure the disk, not the work (for both sides alike, but at random).
RAM_DIR = Path("/dev/shm")


# -- the two sides, each run in a child process -------------------------------------------------------------------
def child_corpus(workdir: Path, out: Path) -> dict:
    from shared.chatdata.reader import file_chunks
    from shared.corpus import Merger

    reports = [json.loads((workdir / "prepared" / f"d{i}" / "report.json").read_text()) for i in range(DATASETS)]
    started, cpu = time.perf_counter(), time.process_time()
    merger = Merger(test_percent=10)
    rows = {"train": 0, "test": 0, "duplicates": 0}
    with (out / "train.jsonl").open("wb") as train, (out / "test.jsonl").open("wb") as test:
        for index, report in enumerate(reports):
            folder = workdir / "prepared" / f"d{index}"
            handles = {split: (folder / f"{split}.jsonl").open("rb") for split in ("train", "test")}
            splits = [(split, str(folder / split), file_chunks(handle)) for split, handle in handles.items()]
            counts, _digests = merger.add_member(
                f"d{index}", splits, train.write, test.write, tools=report["rows_with_tools"] > 0, write_beside=False
            )
            rows = {key: rows[key] + getattr(counts, key) for key in rows}
            for handle in handles.values():
                handle.close()
    return _timed(started, cpu, **rows)


def child_prepare(workdir: Path, out: Path) -> dict:
    from shared.chatdata import PrepareOptions, file_chunks, prepare

    started, cpu = time.perf_counter(), time.process_time()
    handles = [_upload(workdir, index).open("rb") for index in range(DATASETS)]
    concatenation = itertools.chain.from_iterable(file_chunks(handle) for handle in handles)
    outs = [(out / f"{name}.jsonl").open("wb") for name in ("train", "test", "rejected")]
    report = prepare(concatenation, outs[0].write, outs[1].write, outs[2].write, PrepareOptions(), write_beside=False)
    for handle in [*handles, *outs]:
        handle.close()
    return _timed(
        started, cpu, train=report["train"], test=report["test"], duplicates=report["reasons"].get("duplicate", 0)
    )


def child_corpus_blob(workdir: Path, out: Path) -> dict:
    from shared.corpus import CorpusOptions, Member, Selection, build_corpus

    container = _container(out.name)
    started, cpu = time.perf_counter(), time.process_time()
    reports = [json.loads((workdir / "prepared" / f"d{i}" / "report.json").read_text()) for i in range(DATASETS)]
    members = [
        Member(f"d{i}", f"prepared/d{i}/", "", 0, 0, tools=report["rows_with_tools"] > 0)
        for i, report in enumerate(reports)
    ]
    selection = Selection("bench", CorpusOptions(test_percent=10), members)
    result = build_corpus(container, selection, budget_seconds=3600)
    manifest = result.manifest or {}
    return _timed(started, cpu, train=manifest["train"], test=manifest["test"], duplicates=manifest["duplicates"])


def child_prepare_blob(workdir: Path, out: Path) -> dict:
    from shared.blobstream import BlockBlobWriter, read_chunks
    from shared.chatdata import PrepareOptions, prepare

    container = _container(out.name)
    started, cpu = time.perf_counter(), time.process_time()
    concatenation = read_chunks(container.get_blob_client("incoming/concatenation.jsonl"))
    writers = [
        BlockBlobWriter(container.get_blob_client(f"out/{name}.jsonl")) for name in ("train", "test", "rejected")
    ]
    report = prepare(concatenation, writers[0].write, writers[1].write, writers[2].write, PrepareOptions())
    for writer in writers:
        writer.close()
    return _timed(
        started, cpu, train=report["train"], test=report["test"], duplicates=report["reasons"].get("duplicate", 0)
    )


CHILDREN = {
    "corpus": child_corpus,
    "prepare": child_prepare,
    "corpus-blob": child_corpus_blob,
    "prepare-blob": child_prepare_blob,
}


def _timed(started: float, cpu: float, **result: int) -> dict:
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu, **result}


def _container(name: str):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(AZURITE).get_container_client(name)


# -- set-up -------------------------------------------------------------------------------------------------------
def _upload(workdir: Path, index: int) -> Path:
    return workdir / "uploads" / f"upload-{index}.jsonl"


def make_uploads(total_mb: float, workdir: Path) -> float:
    """Ten uploads of ``total_mb / 10`` each; upload i also repeats the first 5% of upload i-1's bytes."""
    (workdir / "uploads").mkdir(parents=True, exist_ok=True)
    size = total_mb / DATASETS
    previous: Path | None = None
    for index in range(DATASETS):
        fresh = generate(size * (1 - OVERLAP), 1000 + index, 0, workdir)
        with _upload(workdir, index).open("wb") as out:
            if previous is not None:
                with previous.open("rb") as repeated:
                    limit, copied = previous.stat().st_size * OVERLAP, 0
                    for line in repeated:
                        if copied >= limit:
                            break
                        out.write(line)
                        copied += len(line)
            with fresh.open("rb") as source:
                for chunk in iter(lambda h=source: h.read(4 << 20), b""):
                    out.write(chunk)
        previous = fresh
    return sum(_upload(workdir, i).stat().st_size for i in range(DATASETS)) / 1e6


def prepare_each(workdir: Path) -> None:
    """What ingestion left behind when each upload arrived: ``prepared/d{i}/{train,test,rejected}.jsonl``."""
    from shared.chatdata import PrepareOptions, file_chunks, prepare

    for index in range(DATASETS):
        folder = workdir / "prepared" / f"d{index}"
        folder.mkdir(parents=True, exist_ok=True)
        outs = [(folder / f"{name}.jsonl").open("wb") for name in ("train", "test", "rejected")]
        with _upload(workdir, index).open("rb") as handle:
            report = prepare(file_chunks(handle), outs[0].write, outs[1].write, outs[2].write, PrepareOptions())
        for out in outs:
            out.close()
        (folder / "report.json").write_text(json.dumps(report))


def stage_in_azurite(workdir: Path, name: str) -> None:
    """The prepared datasets and the concatenated uploads as blobs in a fresh container of the local Azurite."""
    from shared.blobstream import BlockBlobWriter

    container = _container(name)
    container.create_container()
    for index in range(DATASETS):
        for split in ("train", "test"):
            with (workdir / "prepared" / f"d{index}" / f"{split}.jsonl").open("rb") as data:
                container.upload_blob(f"prepared/d{index}/{split}.jsonl", data, max_concurrency=2)
    with BlockBlobWriter(container.get_blob_client("incoming/concatenation.jsonl")) as writer:
        for index in range(DATASETS):
            with _upload(workdir, index).open("rb") as handle:
                for chunk in iter(lambda h=handle: h.read(4 << 20), b""):
                    writer.write(chunk)


def measure(kind: str, workdir: Path, out: Path) -> dict:
    """Run one side in a fresh process; its result plus its own peak RSS (MB, from ``os.wait4``), or the error."""
    out.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{kind}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", kind, str(workdir), str(out)], stdout=sink, stderr=sink, cwd=ROOT
        )
        _, status, usage = os.wait4(proc.pid, 0)
    lines = log.read_text(errors="replace").strip().splitlines()
    peak_mb = usage.ru_maxrss / 1024
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": lines[-1] if lines else f"exit status {status}", "peak_rss_mb": peak_mb}
    return {**json.loads(lines[-1]), "peak_rss_mb": peak_mb}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=100, help="corpus size in MB over ten datasets (1024: the claim)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side, alternating; the best counts")
    parser.add_argument("--azurite", action="store_true", help="blob to blob on the local Azurite (started if needed)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "WORKDIR", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--setup", nargs=2, metavar=("MB", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup:
        size_mb = make_uploads(float(args.setup[0]), Path(args.setup[1]))
        print(f"{DATASETS} uploads, {size_mb:.0f} MB in all; preparing each (set-up, not measured) ...", flush=True)
        prepare_each(Path(args.setup[1]))
        return 0
    if args.child:
        kind, workdir, out = args.child
        print(json.dumps(CHILDREN[kind](Path(workdir), Path(out))))
        return 0
    if not MAKE_CHAT.exists():
        raise SystemExit(f"{MAKE_CHAT} not found: it lives in ../shared/bench beside the project")
    with tempfile.TemporaryDirectory(prefix="autotune-corpus-") as tmp:
        workdir = Path(tmp)
        # Set-up runs in a child too: a child's peak RSS starts at its parent's size when it was forked.
        subprocess.run([sys.executable, __file__, "--setup", str(args.mb), tmp], check=True, cwd=ROOT)
        size_mb = sum(_upload(workdir, i).stat().st_size for i in range(DATASETS)) / 1e6
        prepared_mb = sum(p.stat().st_size for p in (workdir / "prepared").rglob("*.jsonl")) / 1e6
        kinds = {"corpus (merge prepared)": "corpus", "preparation (concatenation)": "prepare"}
        container = ""
        if args.azurite:
            from devhost.azurite import azurite_running, launch_azurite

            if not azurite_running():
                launch_azurite(workdir / "azurite")
            container = f"bench-corpus-{uuid.uuid4().hex[:8]}"
            stage_in_azurite(workdir, container)
            kinds = {name: f"{kind}-blob" for name, kind in kinds.items()}
        print(f"prepared: {prepared_mb:.0f} MB in ten datasets; {args.repeat} run(s) of each side, alternating")
        runs: dict[str, list[dict]] = {name: [] for name in kinds}
        outputs = Path(tempfile.mkdtemp(prefix="autotune-corpus-out-", dir=RAM_DIR if RAM_DIR.is_dir() else None))
        try:
            for _ in range(max(1, args.repeat)):
                for name, kind in kinds.items():
                    out = outputs / (container or kind)
                    runs[name].append(measure(kind, workdir, out))
                    shutil.rmtree(out, ignore_errors=True)  # one side's output at a time
        finally:
            shutil.rmtree(outputs, ignore_errors=True)
            if container:
                _container(container).delete_container()
    return report(runs, size_mb, args.azurite)


def report(runs: dict[str, list[dict]], size_mb: float, blob: bool) -> int:
    results = {name: best(found) for name, found in runs.items()}
    where = "blob to blob (Azurite)" if blob else "file to file"
    print(
        f"\n{where:28} {'seconds':>8} {'MB/s':>8} {'CPU s':>7} {'peak RSS MB':>12} {'train':>9} {'test':>7} {'dups':>6}"
    )
    for name, r in results.items():
        if "error" in r:
            print(f"{name:28} failed: {r['error']} (peak RSS {r['peak_rss_mb']:.0f} MB)")
            continue
        print(
            f"{name:28} {r['seconds']:8.2f} {size_mb / r['seconds']:8.1f} {r['cpu_seconds']:7.2f} "
            f"{r['peak_rss_mb']:12.0f} {r['train']:9d} {r['test']:7d} {r['duplicates']:6d}"
        )
    ours, baseline = results["corpus (merge prepared)"], results["preparation (concatenation)"]
    if "error" in ours or "error" in baseline:
        return 1
    same = (ours["train"], ours["test"]) == (baseline["train"], baseline["test"])
    print(f"\nsame corpus from both sides (train/test rows): {'yes' if same else 'NO'}")
    speed = baseline["seconds"] / ours["seconds"]
    cpu = baseline["cpu_seconds"] / ours["cpu_seconds"]
    hint = "" if size_mb >= 1000 else "; the claim is for --mb 1024"
    print(f"ratio: {cpu:.2f}x less CPU time than preparing the concatenation; {speed:.2f}x wall clock")
    print(
        f"target: >= {SPEED_GOAL:g}x (CPU time: wall clock on a shared machine is mostly the wait for a core): "
        f"{'OK' if cpu >= SPEED_GOAL else 'MISSED'}; wall clock {'OK' if speed >= SPEED_GOAL else 'MISSED'}"
    )
    print(
        f"target: peak RSS <= {RSS_GOAL_MB:g} MB: {'OK' if ours['peak_rss_mb'] <= RSS_GOAL_MB else 'MISSED'} "
        f"({ours['peak_rss_mb']:.0f} MB for {size_mb:.0f} MB{hint})"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
