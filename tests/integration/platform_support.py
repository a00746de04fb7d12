"""Helpers for the drift and orphan tests (no tests here): endpoints and deployments made straight through the
local platform, as an operator or a half-finished rollout would leave them, and model records that claim them.

The deployments point at a folder with no model in it: their scoring servers exit at once (phase ``failed``)
without loading torch, so each costs a process start, not a model load. Drift and garbage collection only look
at which deployments exist, their traffic and their age, which are real.
"""

from __future__ import annotations

from pathlib import Path

from shared.backends.base import MODEL_TAG, DeploymentPhase, ModelVersion
from shared.ledger import ModelRecord
from shared.runs.context import RunContext
from tests.integration.test_runs_support import wait_for


def leftover_deployment(ctx: RunContext, endpoint: str, deployment: str, model: str, tmp: Path) -> None:
    """A real deployment on a managed endpoint (created if missing) whose model cannot load."""
    ctx.backend.begin_endpoint(endpoint, {MODEL_TAG: model})
    missing = tmp / f"no-model-{endpoint}-{deployment}"
    ctx.backend.begin_deployment(endpoint, deployment, ModelVersion(f"autotune-{model}", "0", str(missing)), "cpu", 1)
    wait_for(
        lambda: ctx.backend.get_deployment(endpoint, deployment).phase == DeploymentPhase.FAILED,
        60,
        f"{endpoint}/{deployment} to settle",
    )


def live_model(ctx: RunContext, model: str, endpoint: str, deployment: str, version: str = "1") -> ModelRecord:
    """The record of a model the reconciler put live on ``endpoint``/``deployment`` (traffic set to it)."""
    ctx.backend.set_traffic(endpoint, {deployment: 100})
    info = ctx.backend.get_endpoint(endpoint)
    assert info is not None
    record = ModelRecord(
        model=model,
        state="live",
        desired_version=version,
        desired_run_id=f"{model}-run{version}",
        live_version=version,
        live_run_id=f"{model}-run{version}",
        live_deployment=deployment,
        endpoint_name=endpoint,
        scoring_uri=info.scoring_uri,
        last_deployed_at="2026-01-01T00:00:00Z",
    )
    return ctx.ledger.create(record)
