"""Typed application settings, read from app settings (environment variables) in one place.

Why one place: Azure Functions hands configuration to the worker as environment variables, and a
misconfigured app should fail with an error that names the setting, not with a KeyError deep inside a
trigger. Every knob is declared once in ``SPEC`` with its default and meaning; the README's configuration
reference, ``local.settings.sample.json`` and the infrastructure test are all checked against ``SPEC``.
Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.errors import PlatformError

__all__ = ["SPEC", "Setting", "Settings", "SettingsError", "get_settings", "load_settings", "reset_settings"]


class SettingsError(PlatformError, ValueError):
    """Raised when one or more settings are missing or malformed; the message names each one."""

    code = "invalid_setting"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Invalid configuration: " + "; ".join(problems))


def _str(raw: str) -> str:
    return raw.strip()


def _int(raw: str) -> int:
    return int(raw.strip())


def _float(raw: str) -> float:
    return float(raw.strip())


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _json_object(raw: str) -> dict[str, Any]:
    value = json.loads(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _endpoint_suffix(raw: str) -> str:
    value = raw.strip()
    if value and not re.fullmatch(r"[a-z0-9]{1,8}", value):
        raise ValueError(f"expected 1-8 lowercase letters and digits, got {raw!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """One app setting: its environment name, the ``Settings`` field it fills, and how to read it."""

    env: str
    attr: str
    default: str | None
    doc: str
    parse: Callable[[str], Any] = _str
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # Settings that only the Azure deployment needs are optional locally; ``required_when`` says when.
    required_when: str | None = None


LOCAL_WORKSPACE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
    "/providers/Microsoft.MachineLearningServices/workspaces/local"
)

SPEC: tuple[Setting, ...] = (
    # Storage
    Setting(
        "AzureWebJobsStorage",
        "storage_connection_string",
        "",
        "Storage connection string (UseDevelopmentStorage=true for Azurite). Leave empty in Azure and use "
        "the identity-based AzureWebJobsStorage__accountName instead.",
        secret=True,
    ),
    Setting(
        "AzureWebJobsStorage__accountName",
        "storage_account_name",
        "",
        "Storage account name for identity-based connections (DefaultAzureCredential).",
    ),
    Setting(
        "AzureWebJobsStorage__blobServiceUri",
        "storage_blob_uri",
        "",
        "Blob service URI for identity-based connections (derived from the account name when empty).",
    ),
    Setting(
        "AzureWebJobsStorage__tableServiceUri",
        "storage_table_uri",
        "",
        "Table service URI for identity-based connections (derived from the account name when empty).",
    ),
    Setting(
        "AzureWebJobsStorage__queueServiceUri",
        "storage_queue_uri",
        "",
        "Queue service URI for identity-based connections (derived from the account name when empty).",
    ),
    Setting(
        "AzureWebJobsStorage__clientId",
        "storage_client_id",
        "",
        "Client id of the user-assigned managed identity used for storage (empty: system identity).",
    ),
    Setting(
        "TRAINING_CONTAINER",
        "training_container",
        "training",
        "Blob container holding incoming/ uploads and prepared datasets/.",
    ),
    Setting(
        "LEDGER_TABLE_PREFIX",
        "ledger_table_prefix",
        "autotune",
        "Prefix of the Azure Table storage tables that hold the app's state (letters and digits).",
    ),
    # Data preparation
    Setting(
        "TEST_SPLIT_PERCENT",
        "test_split_percent",
        "10",
        "Share of conversations (by hash) that go to the test split.",
        _int,
        minimum=1,
        maximum=50,
    ),
    Setting(
        "MAX_LINE_BYTES",
        "max_line_bytes",
        "1048576",
        "Longest accepted JSONL line in bytes; longer lines are rejected as line_too_long.",
        _int,
        minimum=1024,
    ),
    Setting(
        "MAX_SEQ_LENGTH",
        "max_seq_length",
        "2048",
        "Token length the report compares examples against (and the local trainer truncates to).",
        _int,
        minimum=16,
    ),
    Setting(
        "MAX_UPLOAD_BYTES",
        "max_upload_bytes",
        str(100 * 1024 * 1024),
        "Largest body accepted by POST /api/models/{model}/datasets (413 above).",
        _int,
        minimum=1,
    ),
    Setting(
        "MIN_TRAIN_ROWS",
        "min_train_rows",
        "10",
        "Fewest training rows a dataset needs (Azure ML's preprocess step needs 10).",
        _int,
        minimum=1,
    ),
    Setting(
        "HF_LOCAL_DATASETS_DIR",
        "hf_local_datasets_dir",
        "",
        "Folder of locally saved Hugging Face datasets (save_to_disk or data files), by name: an import of NAME "
        "reads NAME from here when it exists, else from the Hub (offline mirrors, tests). Empty: Hub only.",
    ),
    # ML platform
    Setting(
        "ML_BACKEND", "ml_backend", "local", "Which ML platform runs jobs and endpoints.", choices=("local", "azureml")
    ),
    Setting(
        "BASE_MODEL",
        "base_model",
        "Phi-4-mini-instruct",
        "Base model name in the azureml registry (ML_BACKEND=azureml); the notebook's Phi-3-mini-4k-instruct is "
        "retired for fine-tuning.",
    ),
    Setting("BASE_MODEL_VERSION", "base_model_version", "latest", "Base model version, or a label such as latest."),
    Setting("BASE_MODEL_REGISTRY", "base_model_registry", "azureml", "Registry holding the base model and pipeline."),
    Setting(
        "PIPELINE_COMPONENT_VERSION",
        "pipeline_component_version",
        "0.0.82",
        "Version of chat_completion_pipeline to use: the one whose inputs ship (backends/chat_completion_inputs.json);"
        " another version (or 'latest') is checked against its own inputs.",
    ),
    Setting(
        "FINETUNE_PARAMETERS",
        "finetune_parameters",
        "{}",
        "JSON object of chat_completion_pipeline inputs overriding the defaults.",
        _json_object,
    ),
    Setting(
        "AZURE_SUBSCRIPTION_ID",
        "azure_subscription_id",
        "",
        "Subscription of the Azure ML workspace.",
        required_when="ML_BACKEND=azureml",
    ),
    Setting(
        "AZURE_RESOURCE_GROUP",
        "azure_resource_group",
        "",
        "Resource group of the Azure ML workspace.",
        required_when="ML_BACKEND=azureml",
    ),
    Setting(
        "AZUREML_WORKSPACE_NAME",
        "azureml_workspace_name",
        "",
        "Azure ML workspace name.",
        required_when="ML_BACKEND=azureml",
    ),
    Setting(
        "AZURE_CLIENT_ID",
        "azure_client_id",
        "",
        "Client id of the user-assigned managed identity (empty: DefaultAzureCredential's default).",
    ),
    Setting(
        "AZUREML_DATASTORE",
        "azureml_datastore",
        "autotune_training",
        "Workspace datastore that points at the training container.",
    ),
    Setting(
        "COMPUTE_CLUSTER",
        "compute_cluster",
        "gpu-cluster",
        "Compute cluster for fine-tuning, or 'serverless' to use INSTANCE_TYPE_FINETUNE.",
    ),
    Setting(
        "INSTANCE_TYPE_FINETUNE",
        "instance_type_finetune",
        "Standard_NC24ads_A100_v4",
        "VM size for serverless fine-tuning.",
    ),
    Setting("EXPERIMENT_NAME", "experiment_name", "autotune-chat-finetune", "Experiment the jobs are filed under."),
    Setting(
        "REGISTERED_MODEL_PREFIX",
        "registered_model_prefix",
        "autotune-",
        "Prefix of registered model names: {prefix}{model}.",
    ),
    Setting("INSTANCE_TYPE", "instance_type", "Standard_NC6s_v3", "VM size of online deployments."),
    Setting("INSTANCE_COUNT", "instance_count", "1", "Instances per online deployment.", _int, minimum=1),
    Setting(
        "CANARY_PERCENT",
        "canary_percent",
        "0",
        "Traffic share given to a new deployment for one tick before 100% (0: switch at once).",
        _int,
        minimum=0,
        maximum=99,
    ),
    Setting(
        "JOB_POLL_AFTER_MINUTES",
        "job_poll_after_minutes",
        "30",
        "Poll jobs with no event for this long (backstop for missed events).",
        _float,
        minimum=0,
    ),
    Setting("RECONCILE_SCHEDULE", "reconcile_schedule", "0 */1 * * * *", "NCRONTAB schedule of the reconciler."),
    # Evaluation and promotion
    Setting(
        "PROMOTION_POLICY",
        "promotion_policy",
        "gate",
        "What happens after a new version's evaluation: gate (promote only if not worse than the live version), "
        "always (promote, scores recorded), manual (wait for POST /api/runs/{run_id}/promote or /reject).",
        choices=("gate", "always", "manual"),
    ),
    Setting(
        "PROMOTION_MAX_REGRESSION",
        "promotion_max_regression",
        "0.02",
        "Largest drop of mean ROUGE-L below the live version that the gate still promotes.",
        _float,
        minimum=0,
        maximum=1,
    ),
    Setting(
        "PROMOTION_MAX_ERROR_INCREASE",
        "promotion_max_error_increase",
        "0.02",
        "Largest rise of the error rate (failed or empty answers, 0-1) over the live version's that the gate "
        "still promotes; with no live version, the largest error rate.",
        _float,
        minimum=0,
        maximum=1,
    ),
    Setting(
        "PROMOTION_MIN_SCORE",
        "promotion_min_score",
        "0",
        "Mean ROUGE-L a first version (no live version to compare with) needs to be promoted by the gate.",
        _float,
        minimum=0,
        maximum=1,
    ),
    Setting(
        "EVAL_MAX_EXAMPLES",
        "eval_max_examples",
        "100",
        "Held-out conversations asked per evaluation (0: none, the gate is skipped); each costs one request to "
        "each deployment.",
        _int,
        minimum=0,
        maximum=10000,
    ),
    Setting(
        "EVAL_MAX_NEW_TOKENS",
        "eval_max_new_tokens",
        "256",
        "max_new_tokens of every evaluation request (greedy decoding).",
        _int,
        minimum=1,
        maximum=4096,
    ),
    Setting(
        "EVAL_CONCURRENCY",
        "eval_concurrency",
        "4",
        "Evaluation requests in flight at once (per endpoint, both deployments together).",
        _int,
        minimum=1,
        maximum=64,
    ),
    Setting(
        "EVAL_TIMEOUT_SECONDS",
        "eval_timeout_seconds",
        "60",
        "Read timeout of one evaluation request; no answer in time counts as an error. At most 150, so a "
        "reconcile tick ends well within its 180 s lease.",
        _float,
        minimum=1,
        maximum=150,
    ),
    # Local backend
    Setting(
        "LOCAL_STATE_DIR",
        "local_state_dir",
        ".autotune",
        "Folder for the local backend's state: MLflow stores, job folders, scoring servers.",
    ),
    Setting(
        "LOCAL_BASE_MODEL",
        "local_base_model",
        "",
        "Path of a local Hugging Face checkpoint to fine-tune (empty: the tiny model built locally).",
    ),
    Setting(
        "LOCAL_WORKSPACE_ID",
        "local_workspace_id",
        LOCAL_WORKSPACE_ID,
        "Workspace id the local backend uses as the Event Grid topic of its job events.",
    ),
    Setting(
        "AUTOTUNE_HOST_URL",
        "host_url",
        "http://127.0.0.1:7071",
        "Base URL of the Functions host; the devhost sets it for the processes it starts.",
    ),
    # Gateway
    Setting(
        "GATEWAY_API_KEYS",
        "gateway_api_keys",
        "",
        "Comma-separated API keys accepted by the chat API (several, for rotation).",
        _csv,
        secret=True,
    ),
    Setting(
        "GATEWAY_MAX_BODY_BYTES",
        "gateway_max_body_bytes",
        str(1024 * 1024),
        "Largest chat request body (413 above).",
        _int,
        minimum=1,
    ),
    Setting(
        "GATEWAY_MAX_MESSAGES", "gateway_max_messages", "256", "Most messages in one chat request.", _int, minimum=1
    ),
    Setting(
        "GATEWAY_MAX_CHARS",
        "gateway_max_chars",
        "200000",
        "Most characters over all messages of a request.",
        _int,
        minimum=1,
    ),
    Setting(
        "GATEWAY_MAX_TOKENS", "gateway_max_tokens", "4096", "Largest max_tokens a request may ask for.", _int, minimum=1
    ),
    Setting(
        "GATEWAY_DEFAULT_MAX_TOKENS",
        "gateway_default_max_tokens",
        "256",
        "max_new_tokens sent upstream when the request gives none.",
        _int,
        minimum=1,
    ),
    Setting(
        "GATEWAY_CONNECT_TIMEOUT_SECONDS",
        "gateway_connect_timeout",
        "5",
        "Upstream connect timeout.",
        _float,
        minimum=0.1,
    ),
    Setting(
        "GATEWAY_READ_TIMEOUT_SECONDS",
        "gateway_read_timeout",
        "170",
        "Upstream read timeout (below the endpoint's 180 s and the Functions 230 s limits).",
        _float,
        minimum=0.1,
        maximum=179,
    ),
    Setting(
        "ENDPOINT_CACHE_TTL_SECONDS",
        "endpoint_cache_ttl",
        "300",
        "How long scoring URIs and keys are cached.",
        _float,
        minimum=0,
    ),
    Setting("AUTO_WAKE", "auto_wake", "true", "Redeploy a sleeping model when a request arrives.", _bool),
    # Sweeper
    Setting("IDLE_SWEEP_SCHEDULE", "idle_sweep_schedule", "0 */10 * * * *", "NCRONTAB schedule of the idle sweeper."),
    Setting(
        "ENDPOINT_IDLE_MINUTES",
        "endpoint_idle_minutes",
        "60",
        "Delete a managed endpoint after this many minutes without requests.",
        _float,
        minimum=0,
    ),
    Setting(
        "ENDPOINT_NAME_SUFFIX",
        "endpoint_name_suffix",
        "",
        "Suffix of Azure ML endpoint names (at-{model}-{suffix}), 1-8 lowercase letters/digits; endpoint names are "
        "unique per region. Empty: derived from the subscription and workspace.",
        _endpoint_suffix,
    ),
    Setting(
        "IDLE_SWEEP_DRY_RUN", "idle_sweep_dry_run", "false", "Log what the sweeper would delete; delete nothing.", _bool
    ),
    Setting("PINNED_MODELS", "pinned_models", "", "Comma-separated models the sweeper never puts to sleep.", _csv),
    # Operations
    Setting(
        "EVENTS_TOPIC_ENDPOINT",
        "events_topic_endpoint",
        "",
        "Event Grid topic endpoint for the app's lifecycle events (empty: none published).",
    ),
    Setting(
        "EVENTS_TOPIC_KEY",
        "events_topic_key",
        "",
        "Access key of that topic, for topics with key auth (empty: publish with the managed identity, which "
        "needs EventGrid Data Sender on the topic).",
        secret=True,
    ),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "appinsights_connection_string",
        "",
        "Application Insights connection string (set by the platform in Azure).",
        secret=True,
    ),
    Setting(
        "AUTOTUNE_FUNCTION_KEY",
        "function_key",
        "",
        "CLI only: function key sent as x-functions-key to a deployed app's management routes.",
        secret=True,
    ),
    Setting(
        "LOG_LEVEL",
        "log_level",
        "INFO",
        "Log level of the app's own loggers.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
)


@dataclass(frozen=True, repr=False)
class Settings:
    """The validated configuration. Build with ``load_settings``; read through ``get_settings``.

    Its repr (and so the repr of anything holding it: dataclasses, tracebacks with locals, debug logs) shows
    every secret setting of ``SPEC`` as ``<set>``/``<empty>``: a secret is hidden because SPEC says so, not
    because someone remembered a ``repr=False``.
    """

    storage_connection_string: str
    storage_account_name: str
    storage_blob_uri: str
    storage_table_uri: str
    storage_queue_uri: str
    storage_client_id: str
    training_container: str
    ledger_table_prefix: str
    test_split_percent: int
    max_line_bytes: int
    max_seq_length: int
    max_upload_bytes: int
    min_train_rows: int
    hf_local_datasets_dir: str
    ml_backend: str
    base_model: str
    base_model_version: str
    base_model_registry: str
    pipeline_component_version: str
    finetune_parameters: dict[str, Any]
    azure_subscription_id: str
    azure_resource_group: str
    azureml_workspace_name: str
    azure_client_id: str
    azureml_datastore: str
    compute_cluster: str
    instance_type_finetune: str
    experiment_name: str
    registered_model_prefix: str
    instance_type: str
    instance_count: int
    canary_percent: int
    job_poll_after_minutes: float
    reconcile_schedule: str
    promotion_policy: str
    promotion_max_regression: float
    promotion_max_error_increase: float
    promotion_min_score: float
    eval_max_examples: int
    eval_max_new_tokens: int
    eval_concurrency: int
    eval_timeout_seconds: float
    local_state_dir: str
    local_base_model: str
    local_workspace_id: str
    host_url: str
    gateway_api_keys: tuple[str, ...]
    gateway_max_body_bytes: int
    gateway_max_messages: int
    gateway_max_chars: int
    gateway_max_tokens: int
    gateway_default_max_tokens: int
    gateway_connect_timeout: float
    gateway_read_timeout: float
    endpoint_cache_ttl: float
    auto_wake: bool
    idle_sweep_schedule: str
    endpoint_idle_minutes: float
    endpoint_name_suffix: str
    idle_sweep_dry_run: bool
    pinned_models: tuple[str, ...]
    events_topic_endpoint: str
    events_topic_key: str
    appinsights_connection_string: str
    function_key: str
    log_level: str

    @property
    def workspace_id(self) -> str:
        """ARM id of the workspace whose job events we accept (the Event Grid topic)."""
        if self.ml_backend == "local":
            return self.local_workspace_id
        return (
            f"/subscriptions/{self.azure_subscription_id}/resourceGroups/{self.azure_resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.azureml_workspace_name}"
        )

    def registered_model_name(self, model: str) -> str:
        return f"{self.registered_model_prefix}{model}"

    def __repr__(self) -> str:
        shown = (f"{spec.attr}={_shown(spec, getattr(self, spec.attr))}" for spec in SPEC)
        return f"Settings({', '.join(shown)})"

    def public_summary(self) -> dict[str, Any]:
        """Non-secret view for /api/health: which settings are set, never their secret values."""
        out: dict[str, Any] = {}
        for spec in SPEC:
            value = getattr(self, spec.attr)
            out[spec.env] = _hidden(value) if spec.secret else value
        return out


def _hidden(value: Any) -> str:
    return "<set>" if value else "<empty>"


def _shown(spec: Setting, value: Any) -> str:
    return _hidden(value) if spec.secret else repr(value)


def _problem_for_range(spec: Setting, value: Any) -> str | None:
    if spec.minimum is not None and value < spec.minimum:
        return f"{spec.env} must be at least {spec.minimum:g}, got {value}"
    if spec.maximum is not None and value > spec.maximum:
        return f"{spec.env} must be at most {spec.maximum:g}, got {value}"
    return None


def load_client_settings(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The few settings the CLI needs to call an app, without requiring the app's own storage settings."""
    source = os.environ if env is None else env
    wanted = {"AUTOTUNE_HOST_URL", "GATEWAY_API_KEYS", "AUTOTUNE_FUNCTION_KEY"}
    return {spec.attr: spec.parse(source.get(spec.env) or spec.default or "") for spec in SPEC if spec.env in wanted}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise ``SettingsError`` naming all problems at once."""
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    problems: list[str] = []
    for spec in SPEC:
        raw = source.get(spec.env)
        if raw is None or (raw.strip() == "" and spec.default not in (None, "")):
            raw = spec.default if spec.default is not None else ""
        if raw.lstrip().startswith("@Microsoft.KeyVault("):
            # App Service passes an unresolvable reference through verbatim: never use it as a value (an API
            # key equal to the reference text would be guessable). Fail closed, naming the setting.
            problems.append(
                f"{spec.env} is an unresolved Key Vault reference: give the app identity 'Key Vault Secrets User' "
                "on the secret (infra/modules/roles.bicep) and check keyVaultReferenceIdentity, then restart"
            )
            continue
        try:
            value = spec.parse(raw)
        except (ValueError, json.JSONDecodeError) as exc:
            problems.append(f"{spec.env} is malformed: {exc}")
            continue
        if spec.choices and value not in spec.choices:
            problems.append(f"{spec.env} must be one of {', '.join(spec.choices)}, got {value!r}")
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            problem = _problem_for_range(spec, value)
            if problem:
                problems.append(problem)
                continue
        values[spec.attr] = value
    if not problems:
        problems.extend(_cross_checks(values))
    if problems:
        raise SettingsError(problems)
    return Settings(**values)


def _cross_checks(values: dict[str, Any]) -> list[str]:
    problems = []
    if not values["storage_connection_string"] and not (
        values["storage_account_name"] or values["storage_table_uri"] or values["storage_blob_uri"]
    ):
        problems.append(
            "AzureWebJobsStorage is missing: set it to a connection string (UseDevelopmentStorage=true locally) "
            "or set AzureWebJobsStorage__accountName for an identity-based connection"
        )
    if not values["ledger_table_prefix"].isalnum() or not values["ledger_table_prefix"][:1].isalpha():
        problems.append("LEDGER_TABLE_PREFIX must start with a letter and hold only letters and digits")
    for spec in SPEC:
        if spec.required_when:
            key, _, expected = spec.required_when.partition("=")
            owner = next(s for s in SPEC if s.env == key)
            if values.get(owner.attr) == expected and not values.get(spec.attr):
                problems.append(f"{spec.env} is required when {spec.required_when}")
    return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first use (not at import, so cold start stays cheap)."""
    return load_settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the devhost change the environment)."""
    get_settings.cache_clear()
