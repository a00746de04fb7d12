#!/usr/bin/env bash
# Offline checks of infra/ (no Azure account, no network):
#   1. every .bicep file parses with pycep-parser (the parser checkov itself uses: a file it cannot parse
#      would be skipped silently, so a parse failure is an error here);
#   2. checkov scans infra/ and no check fails;
#   3. every suppression (//checkov:skip=CKV_...: reason) gives a reason;
#   4. Bicep's deploy-time-constant rules, which only its compiler knows (BCP120/177/178, BCP318):
#      tests/infra/bicep_constants.py (no Bicep compiler can be installed here);
#   5. the azd hooks are POSIX sh (azd runs them with sh: dash, or bash 3.2 on macOS): shellcheck --shell=sh.
# checkov runs from its own venv, .venv-infra/, built from requirements-infra.txt on first use (about a
# minute), because its pinned dependencies conflict with the app's.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-infra
STAMP="$VENV/.installed-$(sha256sum requirements-infra.txt | cut -c1-16)"

if [ ! -f "$STAMP" ]; then
  echo "infra-check: installing checkov into $VENV (once)..."
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements-infra.txt \
    >"$VENV/install.log" 2>&1; then
    cat "$VENV/install.log" >&2
    echo "infra-check: could not install requirements-infra.txt (log above)" >&2
    exit 1
  fi
  touch "$STAMP"
fi

"$VENV/bin/python" tests/infra/bicep_constants.py infra
for hook in infra/hooks/*.sh; do
  "$VENV/bin/shellcheck" --shell=sh --severity=style "$hook" || {
    echo "infra-check: $hook is not clean POSIX sh (above); azd runs it with sh" >&2
    exit 1
  }
done

report="$(mktemp)"
trap 'rm -f "$report"' EXIT
# --skip-download: no policy/guideline download from the vendor's platform (offline, reproducible).
"$VENV/bin/checkov" --directory infra --framework bicep --skip-download --output json --soft-fail >"$report"

"$VENV/bin/python" - "$report" <<'PY'
import json
import pathlib
import sys

from pycep import BicepParser

problems = []
files = sorted(pathlib.Path("infra").rglob("*.bicep"))
for path in files:
    try:
        BicepParser().parse(file_path=path)
    except Exception as exc:  # noqa: BLE001 - any parser error is a finding
        problems.append(f"{path}: does not parse with checkov's pycep-parser: {str(exc).splitlines()[0]}")

report = json.loads(pathlib.Path(sys.argv[1]).read_text() or "{}")
reports = report if isinstance(report, list) else [report]
summary = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
for item in reports:
    for key in summary:
        summary[key] += item.get("summary", {}).get(key, 0)
    results = item.get("results", {})
    for check in results.get("failed_checks", []):
        problems.append(
            f"{check['file_path'].lstrip('/')}:{check['file_line_range'][0]} {check['check_id']} "
            f"{check['check_name']} ({check['resource']}): fix it, or suppress it inside the resource with "
            f"//checkov:skip={check['check_id']}: <reason>"
        )
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
        if len(reason) < 10 or reason == "No comment provided":
            problems.append(f"{check['file_path'].lstrip('/')} {check['check_id']}: suppressed without a reason")
if summary["parsing_errors"]:
    problems.append(f"checkov could not parse {summary['parsing_errors']} file(s)")
if summary["passed"] + summary["failed"] == 0:
    problems.append("checkov evaluated no check at all: did it find the Bicep files?")

for problem in problems:
    print(f"infra-check: {problem}", file=sys.stderr)
print(
    f"infra-check: {len(files)} Bicep files parse; checkov passed {summary['passed']}, "
    f"failed {summary['failed']}, suppressed {summary['skipped']}"
)
sys.exit(1 if problems else 0)
PY
