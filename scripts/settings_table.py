"""The configuration reference (README) generated from shared/settings.py SPEC and the Bicep.

    .venv/bin/python scripts/settings_table.py > /tmp/settings.md

Why generated: the table must list every setting the code reads, with the same default, and say which
ones `azd up` sets in Azure. Both facts live in code (SPEC, infra/*.bicep), so the table is derived from
them, and tests/infra/test_app_settings.py fails when a new setting is neither set by the Bicep nor listed
in ``AZURE_OPTIONAL`` below with the reason it may stay unset in Azure.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.settings import SPEC, Setting  # noqa: E402

FUNCTION_APP_BICEP = ROOT / "infra" / "modules" / "functionapp.bicep"
MAIN_BICEP = ROOT / "infra" / "main.bicep"
MAIN_PARAMETERS = ROOT / "infra" / "main.parameters.json"

# Settings the code reads that `azd up` leaves unset: the app default is right in Azure, or the setting only
# matters locally (devhost, local backend, CLI). Settings `azd up` sets, always or when an azd env value
# is given (main.bicep extraSettings), are not listed here; the test checks the two never overlap.
AZURE_OPTIONAL: dict[str, str] = {
    "AzureWebJobsStorage": "local only; Azure uses the identity-based AzureWebJobsStorage__* settings",
    "LEDGER_TABLE_PREFIX": "default fits",
    "TEST_SPLIT_PERCENT": "default fits",
    "MAX_LINE_BYTES": "default fits",
    "MAX_SEQ_LENGTH": "default fits",
    "MAX_UPLOAD_BYTES": "default fits",
    "MAX_DROP_BYTES": "default fits: sized for the 10-minute functionTimeout",
    "PREPARE_MAX_ATTEMPTS": "default fits",
    "MIN_TRAIN_ROWS": "default fits: Azure ML's preprocess step needs 10",
    "CORPUS_MODE": "default fits: every dataset of a model",
    "CORPUS_MAX_TRAIN_ROWS": "default fits: no limit",
    "CORPUS_MAX_AGE_DAYS": "default fits: no limit",
    "CORPUS_KEEP": "default fits: three snapshots",
    "TRAINING_DEBOUNCE_SECONDS": "default fits: five minutes",
    "ON_NEW_DATA": "default fits: wait for the running job",
    "MAX_RUNS_PER_MODEL_PER_DAY": "default fits: four jobs",
    "HF_LOCAL_DATASETS_DIR": "local only; offline Hugging Face mirrors",
    "BASE_MODEL_REGISTRY": "default fits: the azureml system registry",
    "PIPELINE_COMPONENT_VERSION": "default fits: the version whose inputs ship (0.0.82)",
    "FINETUNE_PARAMETERS": "default fits: the notebook's defaults",
    "EXPERIMENT_NAME": "default fits",
    "REGISTERED_MODEL_PREFIX": "default fits",
    "INSTANCE_COUNT": "default fits",
    "CANARY_PERCENT": "default fits: switch at once",
    "JOB_POLL_AFTER_MINUTES": "default fits",
    "PROMOTION_POLICY": "default fits: the gate",
    "PROMOTION_MAX_REGRESSION": "default fits",
    "PROMOTION_MAX_ERROR_INCREASE": "default fits",
    "PROMOTION_MIN_SCORE": "default fits",
    "EVAL_MAX_EXAMPLES": "default fits",
    "EVAL_MAX_NEW_TOKENS": "default fits",
    "EVAL_CONCURRENCY": "default fits",
    "EVAL_TIMEOUT_SECONDS": "default fits",
    "EVAL_MIN_RECORDED_EXAMPLES": "default fits",
    "ORPHAN_GRACE_MINUTES": "default fits",
    "LOCAL_STATE_DIR": "local backend only",
    "LOCAL_BASE_MODEL": "local backend only",
    "LOCAL_WORKSPACE_ID": "local backend only",
    "AUTOTUNE_HOST_URL": "local host and CLI only; point the CLI at AUTOTUNE_API_URL",
    "GATEWAY_MAX_BODY_BYTES": "default fits",
    "GATEWAY_MAX_MESSAGES": "default fits",
    "GATEWAY_MAX_CHARS": "default fits",
    "GATEWAY_MAX_TOKENS": "default fits",
    "GATEWAY_DEFAULT_MAX_TOKENS": "default fits",
    "GATEWAY_CONNECT_TIMEOUT_SECONDS": "default fits",
    "GATEWAY_READ_TIMEOUT_SECONDS": "default fits",
    "ENDPOINT_CACHE_TTL_SECONDS": "default fits",
    "AUTO_WAKE": "default fits",
    "WAKE_RETRY_MINUTES": "default fits",
    "IDLE_SWEEP_DRY_RUN": "default fits",
    "EVENTS_TOPIC_KEY": "only for a key-auth topic; prefer the identity with EventGrid Data Sender",
    "AUTOTUNE_FUNCTION_KEY": "CLI only: on your machine, not in the app",
    "LOG_LEVEL": "default fits",
}

# App settings the Bicep sets for the platform rather than for shared/settings.py.
PLATFORM_SETTINGS = frozenset(
    {
        "AzureWebJobsStorage__credential",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        "PYTHON_ENABLE_OPENTELEMETRY",
        "OTEL_SERVICE_NAME",
    }
)


def _parse(path: Path) -> dict[str, Any]:
    from pycep import BicepParser

    return BicepParser().parse(file_path=path)


def _object_keys(node: Any, found: dict[str, Any]) -> None:
    """Every key of every object literal under ``node`` (pycep renders objects as dicts)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key) and (key.isupper() or "__" in key):
                found[key] = value
            _object_keys(value, found)
    elif isinstance(node, list):
        for item in node:
            _object_keys(item, found)


def bicep_app_settings() -> dict[str, str]:
    """App setting name -> where its value comes from: 'azd up' (always set) or 'azd env NAME' (optional)."""
    always = _parse(FUNCTION_APP_BICEP)["variables"]["appSettings"]["value"]
    out = {name: "azd up" for name in always}
    optional: dict[str, Any] = {}
    _object_keys(_parse(MAIN_BICEP)["variables"]["extraSettings"]["value"], optional)
    parameters = json.loads(MAIN_PARAMETERS.read_text())["parameters"]
    for name, param in optional.items():
        expression = str(parameters.get(str(param), {}).get("value", ""))
        match = re.search(r"\$\{(\w+)", expression)
        out[name] = f"azd env {match.group(1)}" if match else f"parameter {param}"
    return out


def _where(spec: Setting, infra: dict[str, str]) -> str:
    source = infra.get(spec.env)
    if source == "azd up":
        return "Azure: set by `azd up`"
    parts = []
    if spec.required_when:
        parts.append(f"required when {spec.required_when}")
    if source:
        parts.append(f"Azure: optional, `{source.removeprefix('azd env ')}` before `azd up`")
    elif spec.env in AZURE_OPTIONAL:
        parts.append(f"Azure: not set ({AZURE_OPTIONAL[spec.env]})")
    return "; ".join(parts) or "optional"


def render_table() -> str:
    infra = bicep_app_settings()
    lines = ["| Setting | Default | Meaning | Where needed |", "| --- | --- | --- | --- |"]
    for spec in SPEC:
        default = f"`{spec.default}`" if spec.default else "(empty)"
        meaning = (spec.doc + (" **Secret.**" if spec.secret else "")).replace("|", "\\|")
        lines.append(f"| `{spec.env}` | {default} | {meaning} | {_where(spec, infra)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_table())
