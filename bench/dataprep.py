"""Data preparation: our streaming ``shared.chatdata.prepare`` against the notebook's pandas way, same file, one run.

The notebook prepares data with ``pandas.read_json(lines=True)``, samples a test split and writes both with
``to_json``: it holds the whole file as Python objects, about 15-20x its size in memory, so a 1 GB file does not fit
a 2 GB Function instance. Ours streams: validates every line, normalises, dedups, splits by hash and reports, in
memory that does not grow with the file. Each side runs in its own process (peak RSS measured by ``os.wait4``).

Two comparisons, each against pandas in the same run (beside it, the floor: the operations every preparation must do
and nothing else, see ``child_floor``; and the code before issue 17, from git, for the per-core ratio):
- the work alone (interpreter start and imports excluded), by CPU time: the headline, because CPU time holds
  steady on a shared machine where wall clock does not (wall clock is printed too); as ``python -m shared
  prepare`` runs it, and as the app's second pass does (content hash known from the first, writes on a thread);
- the whole process as a user runs it: ``python -m shared prepare FILE --out DIR`` against the notebook's pandas
  script run as ``python -c``, both including interpreter start and imports, on a ``--process-mb`` prefix (60 MB).

Targets (issue 17): CPU-time ratio >= 15x pandas at 100 MB (>= 2x the 113 MB/s of CPU per core measured before it);
whole process >= 8x; peak RSS <= 150 MB for a 1 GiB input.

    .venv/bin/python bench/dataprep.py             # 100 MB, about a minute
    .venv/bin/python bench/dataprep.py --mb 1024   # the memory claim (pandas gets the largest prefix that fits in RAM)

The input is ultrachat-shaped data from ``../shared/bench/make_chat_jsonl.py`` (cached in the temp folder by size
and seed). With ``--bad-percent`` above 0 pandas cannot read the file at all; ours reports each bad line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKE_CHAT = ROOT.parent / "shared" / "bench" / "make_chat_jsonl.py"
CPU_RATIO_GOAL = 15.0
PER_CORE_GOAL = 2.0  # x the code before issue 17, by CPU time
BASELINE_REV = "7e9e1f4^"  # the last commit before issue 17's changes to shared/chatdata
PROCESS_RATIO_GOAL = 8.0
RSS_GOAL_MB = 150.0
PANDAS_RAM_FACTOR = 20  # pandas' peak RSS per input byte, about (19x measured at 100 MB)


def child_ours(source: str, out: str, app: bool = False) -> dict:
    """As ``python -m shared prepare`` runs it; with ``app``, as the app's second pass does: the content's hash is
    known from the first pass, and blocks are handed to the writing thread (there they go to blob storage)."""
    sys.path.insert(0, str(ROOT))
    import hashlib

    from shared.chatdata import PrepareOptions, file_chunks, prepare

    how: dict = {"write_beside": False}
    if app:
        with open(source, "rb") as handle:
            how = {"write_beside": True, "content_sha256": hashlib.file_digest(handle, "sha256").hexdigest()}
    started, cpu = time.perf_counter(), time.process_time()
    outs = [open(Path(out) / f"{name}.jsonl", "wb") for name in ("train", "test", "rejected")]  # noqa: SIM115
    with open(source, "rb") as handle:
        writers = (out.write for out in outs)
        report = prepare(file_chunks(handle), *writers, PrepareOptions(), **how)
    for f in outs:
        f.close()
    (Path(out) / "report.json").write_text(json.dumps(report))
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "train": report["train"],
        "test": report["test"],
    }


def child_floor(source: str, out: str) -> dict:
    """The least this design can spend, with none of the rules: read in pieces, SHA-256 (the dataset id), split
    lines, decode each into the typed chat line (msgspec: JSON, UTF-8 and shape checked), re-encode its messages (the
    normalised form), XXH3 digest (the dedup and split key), write 1 MiB blocks. Every preparation does each of these
    for every byte; what ``prepare`` spends beyond it is the per-row rule checks, dedup, split, stats and report."""
    sys.path.insert(0, str(ROOT))
    import hashlib

    import msgspec
    from xxhash import xxh3_128_digest

    from shared.chatdata.reader import file_chunks
    from shared.chatdata.rows import _Line  # the very type the fast way decodes into

    decode, encode_into = msgspec.json.Decoder(_Line).decode, msgspec.json.Encoder().encode_into
    started, cpu = time.perf_counter(), time.process_time()
    sha, scratch, block, carry, rows = hashlib.sha256(), bytearray(), bytearray(), b"", 0
    with open(source, "rb") as handle, open(Path(out) / "rows.jsonl", "wb") as sink:
        for piece in file_chunks(handle):
            sha.update(piece)
            view, find, start = memoryview(piece), piece.find, 0
            while (end := find(b"\n", start)) >= 0:
                line = carry + piece[:end] if carry else view[start:end]  # lines are not copied out of the piece
                carry, start = b"", end + 1
                encode_into(decode(line).messages, scratch)
                xxh3_128_digest(scratch)
                block += scratch
                rows += 1
                if len(block) >= 1 << 20:
                    sink.write(block)
                    block = bytearray()
            carry += piece[start:]
        sink.write(block)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "train": rows,
        "test": 0,
        "sha256": sha.hexdigest(),
    }


def child_revision(source: str, out: str, tree: str) -> dict:
    """``prepare`` as it was at an earlier commit (its ``shared`` package extracted to ``tree``), run as the CLI did."""
    sys.path.insert(0, tree)
    import inspect

    from shared.chatdata import PrepareOptions, file_chunks, prepare

    how = {"write_beside": False} if "write_beside" in inspect.signature(prepare).parameters else {}
    started, cpu = time.perf_counter(), time.process_time()
    outs = [open(Path(out) / f"{name}.jsonl", "wb") for name in ("train", "test", "rejected")]  # noqa: SIM115
    with open(source, "rb") as handle:
        report = prepare(file_chunks(handle), *(o.write for o in outs), PrepareOptions(), **how)
    for f in outs:
        f.close()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "train": report["train"],
        "test": report["test"],
    }


def extract_revision(rev: str, workdir: Path) -> Path | None:
    """The ``shared`` package at ``rev`` in a folder of its own, or None when this is not a git checkout with it."""
    tree = workdir / "baseline"
    tree.mkdir(exist_ok=True)
    try:
        archive = subprocess.run(["git", "archive", rev, "shared"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return tree


# The notebook's way, as a script: run whole by ``python -c`` (whole-process timing), or its work part alone.
PANDAS_IMPORTS = "import sys\nimport pandas as pd\n"
PANDAS_WORK = """
source, out = sys.argv[1], sys.argv[2]
frame = pd.read_json(source, lines=True)
test = frame.sample(frac=0.1, random_state=0)
train = frame.drop(test.index)
train.to_json(out + "/train.jsonl", orient="records", lines=True, force_ascii=False)
test.to_json(out + "/test.jsonl", orient="records", lines=True, force_ascii=False)
"""


def child_pandas(source: str, out: str) -> dict:
    scope: dict = {}
    exec(PANDAS_IMPORTS, scope)  # this file's own constants
    sys.argv[1:] = [source, out]
    started, cpu = time.perf_counter(), time.process_time()
    exec(PANDAS_WORK, scope)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "train": len(scope["train"]),
        "test": len(scope["test"]),
    }


def run_process(command: list[str]) -> dict:
    """One whole process (interpreter start included): wall seconds, CPU seconds and peak RSS from ``os.wait4``."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    error = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
    if code != 0:
        return {"error": error[-1] if error else f"exit status {code}", "peak_rss_mb": usage.ru_maxrss / 1024}
    return {
        "seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def whole_processes(source: Path, workdir: Path, repeat: int) -> dict[str, dict]:
    """``python -m shared prepare`` against the notebook's script, alternating, best of ``repeat``."""
    ours = ["-m", "shared", "prepare", str(source), "--out", str(workdir / "cli-out"), "--quiet"]
    notebook = ["-c", PANDAS_IMPORTS + PANDAS_WORK, str(source), str(workdir / "pd-out")]
    commands = {"python -m shared prepare": [sys.executable, *ours], "pandas script": [sys.executable, *notebook]}
    (workdir / "pd-out").mkdir(exist_ok=True)
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for _ in range(max(1, repeat)):
        for name, command in commands.items():
            runs[name].append(run_process(command))
    return {name: best(found) for name, found in runs.items()}


def measure(kind: str, source: Path, workdir: Path, *extra: str) -> dict:
    """Run one side in a fresh process; its result plus its own peak RSS (MB, from ``os.wait4``), or the error."""
    out = workdir / f"out-{kind}"
    out.mkdir(exist_ok=True)
    log = workdir / f"{kind}.log"
    started = time.perf_counter()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", kind, str(source), str(out), *extra],
            stdout=sink,
            stderr=sink,
            cwd=ROOT,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the maximum over all children
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    lines = log.read_text(errors="replace").strip().splitlines()
    if proc.returncode != 0:
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        return {"error": reason, "peak_rss_mb": peak_mb, "wall": wall}
    result = json.loads(lines[-1])
    result.update(peak_rss_mb=peak_mb, wall=wall)
    return result


def generate(mb: float, seed: int, bad_percent: float, workdir: Path) -> Path:
    cache = Path(tempfile.gettempdir()) / "autotune-bench"
    cache.mkdir(exist_ok=True)
    path = cache / f"chat-{mb:g}mb-seed{seed}-bad{bad_percent:g}.jsonl"
    if not path.exists():
        print(f"generating {mb:g} MB of ultrachat-shaped data with {MAKE_CHAT.name} ...", flush=True)
        partial = path.with_suffix(".partial")
        command = [sys.executable, str(MAKE_CHAT), "--mb", str(mb), "--seed", str(seed), "--out", str(partial)]
        if bad_percent:
            command += ["--bad-percent", str(bad_percent)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        partial.rename(path)
    return path


def mem_available_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def prefix_file(source: Path, mb: float, workdir: Path) -> Path:
    """The first ``mb`` MB of ``source``, cut at a line end (pandas' input when the whole file would not fit)."""
    out = workdir / f"prefix-{mb:.0f}mb.jsonl"
    limit = int(mb * 1e6)
    with source.open("rb") as src, out.open("wb") as dst:
        written = 0
        for line in src:
            if written + len(line) > limit:
                break
            dst.write(line)
            written += len(line)
    return out


def best(runs: list[dict]) -> dict:
    """The fastest of repeated runs (least disturbed by other load); the highest peak RSS of them."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    fastest = dict(min(ok, key=lambda r: r["seconds"]))
    fastest["cpu_seconds"] = min(r["cpu_seconds"] for r in ok)
    fastest["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    return fastest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=100, help="input size in MB (default 100; 1024 for the claim)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating; the best counts")
    parser.add_argument("--bad-percent", type=float, default=0, help="faulty lines (pandas then fails)")
    parser.add_argument("--skip-pandas", action="store_true", help="measure ours only (e.g. not enough RAM)")
    parser.add_argument("--process-mb", type=float, default=60, help="prefix for the whole-process runs (0: none)")
    parser.add_argument(
        "--baseline",
        default=BASELINE_REV,
        help=f"git revision whose prepare is the per-core baseline (default {BASELINE_REV}: before issue 17; '' none)",
    )
    parser.add_argument("--child", nargs="+", metavar="KIND INPUT OUT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, source, out, *extra = args.child
        if kind == "pandas":
            result = child_pandas(source, out)
        elif kind == "floor":
            result = child_floor(source, out)
        elif kind == "revision":
            result = child_revision(source, out, *extra)
        else:
            result = child_ours(source, out, app=kind == "ours-app")
        print(json.dumps(result))
        return 0
    if not MAKE_CHAT.exists():
        raise SystemExit(f"{MAKE_CHAT} not found: it lives in ../shared/bench beside the project")
    with tempfile.TemporaryDirectory(prefix="autotune-dataprep-") as tmp:
        workdir = Path(tmp)
        source = generate(args.mb, args.seed, args.bad_percent, workdir)
        size_mb = source.stat().st_size / 1e6
        print(f"input: {source} ({size_mb:.1f} MB); {args.repeat} run(s) of each side, alternating")
        sides: dict[str, tuple] = {
            "autotune (streaming)": ("ours", source, size_mb),
            "autotune, app pass 2": ("ours-app", source, size_mb),
            "floor (no rules)": ("floor", source, size_mb),
        }
        tree = extract_revision(args.baseline, workdir) if args.baseline else None
        if tree is not None:
            sides[f"before ({args.baseline})"] = ("revision", source, size_mb, str(tree))
        elif args.baseline:
            print(f"no baseline: {args.baseline} cannot be read from git here")
        if not args.skip_pandas:
            # pandas needs ~20x the file in RAM; past what is free it would be killed (or take others down with it)
            fits_mb = mem_available_mb() * 0.6 / PANDAS_RAM_FACTOR
            pandas_source = source if size_mb <= fits_mb else prefix_file(source, fits_mb, workdir)
            sides["pandas (notebook)"] = ("pandas", pandas_source, pandas_source.stat().st_size / 1e6)
            if pandas_source != source:
                print(
                    f"pandas runs on the first {sides['pandas (notebook)'][2]:.0f} MB only: the whole file would need "
                    f"~{size_mb * PANDAS_RAM_FACTOR / 1024:.0f} GB of RAM ({mem_available_mb() / 1024:.0f} GB free). "
                    "Its MB/s only drops with size, so the ratios below are conservative."
                )
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for _ in range(max(1, args.repeat)):
            for name, (kind, path, _mb, *extra) in sides.items():
                runs[name].append(measure(kind, path, workdir, *extra))
        processes: dict[str, dict] = {}
        if args.process_mb and not args.skip_pandas:
            small = prefix_file(source, args.process_mb, workdir)
            process_mb = small.stat().st_size / 1e6
            print(f"whole processes on the first {process_mb:.0f} MB ...", flush=True)
            processes = whole_processes(small, workdir, args.repeat)
    results = {name: best(found) for name, found in runs.items()}
    report_work(results, sides, size_mb)
    if processes:
        report_processes(processes, process_mb)
    return 0


def report_work(results: dict[str, dict], sides: dict[str, tuple], size_mb: float) -> None:
    print(
        f"\n{'the work alone':22} {'input MB':>9} {'CPU s':>7} {'MB/s (CPU)':>11} {'wall s':>7} {'MB/s':>7} "
        f"{'peak RSS MB':>12} {'RSS/input':>10}"
    )
    for name, r in results.items():
        if "error" in r:
            print(f"{name:22} failed: {r['error']} (peak RSS {r['peak_rss_mb']:.0f} MB)")
            continue
        mb = sides[name][2]
        r["mbps"], r["cpu_mbps"] = mb / r["seconds"], mb / r["cpu_seconds"]
        print(
            f"{name:22} {mb:9.0f} {r['cpu_seconds']:7.2f} {r['cpu_mbps']:11.1f} {r['seconds']:7.2f} {r['mbps']:7.1f} "
            f"{r['peak_rss_mb']:12.0f} {r['peak_rss_mb'] / mb:9.2f}x"
        )
    ours, app = results["autotune (streaming)"], results["autotune, app pass 2"]
    pandas = results.get("pandas (notebook)")
    if pandas and "error" not in pandas and "error" not in ours:
        cpu_speed = ours["cpu_mbps"] / pandas["cpu_mbps"]
        memory = (pandas["peak_rss_mb"] / sides["pandas (notebook)"][2]) / (ours["peak_rss_mb"] / size_mb)
        print(
            f"\nratio (CPU time): {cpu_speed:.1f}x pandas; wall clock {ours['mbps'] / pandas['mbps']:.1f}x; "
            f"peak RSS per input MB {memory:.1f}x smaller"
        )
        if "error" not in app:
            print(f"the app's second pass (content hash known): {app['cpu_mbps'] / pandas['cpu_mbps']:.1f}x (CPU time)")
        verdict = "OK" if cpu_speed >= CPU_RATIO_GOAL else "MISSED"
        print(f"target: CPU-time ratio >= {CPU_RATIO_GOAL:g}x pandas: {verdict}")
        floor = results["floor (no rules)"]
        if "error" not in floor:
            print(
                f"floor (the required operations alone, no rules): {floor['cpu_mbps'] / pandas['cpu_mbps']:.1f}x "
                f"pandas; ours spends {ours['cpu_seconds'] / floor['cpu_seconds']:.2f}x the floor's CPU time"
            )
    before = next((r for name, r in results.items() if name.startswith("before (")), None)
    if before and "error" not in before and "error" not in ours:
        per_core = before["cpu_seconds"] / ours["cpu_seconds"]
        print(
            f"per core vs the code before issue 17: {per_core:.2f}x as the CLI runs it, "
            f"{before['cpu_seconds'] / app['cpu_seconds']:.2f}x as the app's second pass does; the floor is "
            f"{before['cpu_seconds'] / results['floor (no rules)']['cpu_seconds']:.2f}x"
        )
        print(f"target: per core >= {PER_CORE_GOAL:g}x: {'OK' if per_core >= PER_CORE_GOAL else 'MISSED'}")
    if "error" not in ours:
        hint = "" if size_mb >= 1000 else "; the claim is for --mb 1024"
        verdict = "OK" if ours["peak_rss_mb"] <= RSS_GOAL_MB else "MISSED"
        print(
            f"target: peak RSS <= {RSS_GOAL_MB:g} MB: {verdict} "
            f"({ours['peak_rss_mb']:.0f} MB for {size_mb:.0f} MB{hint})"
        )


def report_processes(processes: dict[str, dict], mb: float) -> None:
    print(f"\n{'whole process':26} {'input MB':>9} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>12}")
    for name, r in processes.items():
        if "error" in r:
            print(f"{name:26} failed: {r['error']}")
            continue
        print(f"{name:26} {mb:9.0f} {r['seconds']:7.2f} {r['cpu_seconds']:7.2f} {r['peak_rss_mb']:12.0f}")
    ours, pandas = processes["python -m shared prepare"], processes["pandas script"]
    if "error" not in ours and "error" not in pandas:
        wall, cpu = pandas["seconds"] / ours["seconds"], pandas["cpu_seconds"] / ours["cpu_seconds"]
        print(f"\nratio (whole process, interpreter start included): {wall:.1f}x wall clock, {cpu:.1f}x CPU time")
        print(f"target: whole process >= {PROCESS_RATIO_GOAL:g}x: {'OK' if wall >= PROCESS_RATIO_GOAL else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
