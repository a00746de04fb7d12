"""``bench/dataprep.py`` still runs end to end (on half a megabyte): every side, the floor and the baseline from git
give a row, and the verdict lines are printed. Timings are not asserted (benchmarks print ratios, tests do not)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT, SHARED_DIR


def test_the_benchmark_runs_every_side_and_prints_its_verdicts():
    assert (SHARED_DIR / "bench" / "make_chat_jsonl.py").exists()
    done = subprocess.run(
        [sys.executable, "bench/dataprep.py", "--mb", "0.5", "--repeat", "1", "--process-mb", "0.3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for row in ("autotune (streaming)", "autotune, app pass 2", "floor (no rules)", "pandas (notebook)"):
        assert any(line.startswith(row) and "failed" not in line for line in out.splitlines()), (row, out)
    assert "target: CPU-time ratio >= 15x pandas:" in out
    assert "floor (the required operations alone, no rules):" in out
    assert "target: whole process >= 8x:" in out
    # the per-core baseline comes from git; a checkout without that history says so instead
    assert "target: per core >= 2x:" in out or "no baseline:" in out, out
