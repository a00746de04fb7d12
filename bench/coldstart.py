"""Cold-start benchmark: import time of ``function_app`` against a bare ``import azure.functions``.

Every cold start of the Function App imports ``function_app``; the floor is ``import azure.functions``, which
any Python app on Azure Functions pays. Each measurement runs in a fresh interpreter (nothing cached in
``sys.modules``), baseline and app alternating so that machine noise hits both alike, after one unmeasured
warm-up of each (bytecode compiled). The report is the median of ``--runs`` runs and the ratio app/baseline.
Goal: ratio at most 1.5 (a naive app importing its SDKs eagerly measures about 17x).

``--breakdown`` sums, per package, the import time that ``function_app`` adds beyond ``azure.functions``
(``python -X importtime``), to show where the time goes.

    .venv/bin/python bench/coldstart.py [--runs 7] [--breakdown 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.5
TIMED = "{prelude}import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
# azure.storage.blob imports aiohttp eagerly whenever it is installed (for its async auth policy). aiohttp is in
# requirements.txt (the gateway's upstream client), so the deployed import includes it; hiding it shows what that
# dependency costs at cold start.
HIDE_AIOHTTP = "import sys; sys.modules['aiohttp'] = None; "


def import_seconds(module: str, prelude: str = "") -> float:
    """Seconds to import ``module`` in a fresh interpreter (interpreter start-up excluded)."""
    code = TIMED.format(module=module, prelude=prelude)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"importing {module} failed:\n{result.stderr}")
    return float(result.stdout.strip().splitlines()[-1])


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "azure" else parts[0]


def breakdown(top: int) -> list[tuple[float, str]]:
    """Import time (self, summed per package) of what ``function_app`` imports beyond ``azure.functions``."""
    code = "import azure.functions; import sys; print('--app--', file=sys.stderr, flush=True); import function_app"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    totals: dict[str, float] = {}
    for line in result.stderr.split("--app--", 1)[1].splitlines():
        if line.startswith("import time:") and "|" in line:
            own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
            if own.isdigit():
                totals[_package(name)] = totals.get(_package(name), 0.0) + int(own) / 1e6
            if name.startswith("functions.") and cumulative.isdigit():  # what each blueprint costs, in total
                totals[f"{name} (blueprint, cumulative)"] = int(cumulative) / 1e6
    return sorted(((seconds, name) for name, seconds in totals.items()), reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--breakdown", type=int, default=10, metavar="N", help="show the N heaviest imports (0: off)")
    args = parser.parse_args()

    import_seconds("azure.functions"), import_seconds("function_app")  # warm-up: compile bytecode
    baseline, app, no_aiohttp = [], [], []
    for _ in range(args.runs):
        baseline.append(import_seconds("azure.functions"))
        app.append(import_seconds("function_app"))
        no_aiohttp.append(import_seconds("function_app", HIDE_AIOHTTP))
    base_ms, app_ms = statistics.median(baseline) * 1000, statistics.median(app) * 1000
    no_aiohttp_ms = statistics.median(no_aiohttp) * 1000
    ratio = app_ms / base_ms
    print(f"import azure.functions (baseline): median {base_ms:7.1f} ms over {args.runs} fresh interpreters")
    print(f"import function_app:               median {app_ms:7.1f} ms")
    without = f"(ratio {no_aiohttp_ms / base_ms:.2f}: what aiohttp costs via azure.storage.blob)"
    print(f"import function_app, no aiohttp:   median {no_aiohttp_ms:7.1f} ms {without}")
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(f"ratio function_app / azure.functions: {ratio:.2f} ({verdict} the goal of <= {GOAL})")
    if args.breakdown:
        print("where function_app's extra time goes (-X importtime, one run; packages: self time summed):")
        for seconds, name in breakdown(args.breakdown):
            print(f"  {seconds * 1000:7.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
