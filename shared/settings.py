"""Typed application settings, read from app settings (environment variables) in one place.

Why one place: Azure Functions hands configuration to the worker as environment variables, and a
misconfigured app should fail with an error that names the setting, not with a KeyError deep inside a
trigger. Every knob is declared once, by concern, in ``shared/settingspec/`` with its default and meaning, and
assembled here into ``SPEC``; the README's configuration reference, ``local.settings.sample.json`` and the
infrastructure test are all checked against ``SPEC``.
Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shared.errors import PlatformError
from shared.settingspec.data import DATA_PREPARATION, STORAGE
from shared.settingspec.evaluation import EVALUATION
from shared.settingspec.kinds import Setting
from shared.settingspec.platform import LOCAL_BACKEND, ML_PLATFORM
from shared.settingspec.serving import GATEWAY, OPERATIONS, SWEEPER
from shared.settingspec.training import CONTINUOUS_TRAINING

__all__ = ["SPEC", "Setting", "Settings", "SettingsError", "get_settings", "load_settings", "reset_settings"]


class SettingsError(PlatformError, ValueError):
    """Raised when one or more settings are missing or malformed; the message names each one."""

    code = "invalid_setting"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Invalid configuration: " + "; ".join(problems))


SPEC: tuple[Setting, ...] = (
    *STORAGE,
    *DATA_PREPARATION,
    *CONTINUOUS_TRAINING,
    *ML_PLATFORM,
    *EVALUATION,
    *LOCAL_BACKEND,
    *GATEWAY,
    *SWEEPER,
    *OPERATIONS,
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
    max_drop_bytes: int
    prepare_max_attempts: int
    min_train_rows: int
    hf_local_datasets_dir: str
    corpus_mode: str
    corpus_max_train_rows: int
    corpus_max_age_days: float
    corpus_keep: int
    training_debounce_seconds: float
    on_new_data: str
    max_runs_per_model_per_day: int
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
    orphan_grace_minutes: float
    reconcile_schedule: str
    promotion_policy: str
    promotion_max_regression: float
    promotion_max_error_increase: float
    promotion_min_score: float
    eval_max_examples: int
    eval_max_new_tokens: int
    eval_concurrency: int
    eval_timeout_seconds: float
    eval_min_recorded_examples: int
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
    wake_retry_minutes: float
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


CLIENT_SETTINGS = ("AUTOTUNE_HOST_URL", "GATEWAY_API_KEYS", "AUTOTUNE_FUNCTION_KEY")


def load_client_settings(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The few settings the CLI needs to call an app, without requiring the app's own storage settings."""
    return load_some_settings(CLIENT_SETTINGS, env)


def load_some_settings(names: Iterable[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Only the named settings (by their environment names), read and checked as ``load_settings`` does, as
    ``{attribute: value}``: for offline commands that follow a few settings and need none of the app's others
    (storage, ML platform); raise ``SettingsError`` naming each problem."""
    source = os.environ if env is None else env
    wanted = set(names)
    unknown = wanted - {spec.env for spec in SPEC}
    if unknown:
        raise KeyError(f"not a setting: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for spec in SPEC:
        if spec.env in wanted:
            _read(spec, source, values, problems)
    if problems:
        raise SettingsError(problems)
    return values


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise ``SettingsError`` naming all problems at once."""
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    problems: list[str] = []
    for spec in SPEC:
        _read(spec, source, values, problems)
    if not problems:
        problems.extend(_cross_checks(values))
    if problems:
        raise SettingsError(problems)
    return Settings(**values)


def _read(spec: Setting, source: Mapping[str, str], values: dict[str, Any], problems: list[str]) -> None:
    """One setting from ``source`` into ``values``, or what is wrong with it into ``problems``."""
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
        return
    try:
        value = spec.parse(raw)
    except (ValueError, json.JSONDecodeError) as exc:
        problems.append(f"{spec.env} is malformed: {exc}")
        return
    if spec.choices and value not in spec.choices:
        problems.append(f"{spec.env} must be one of {', '.join(spec.choices)}, got {value!r}")
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        problem = _problem_for_range(spec, value)
        if problem:
            problems.append(problem)
            return
    values[spec.attr] = value


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
