"""The whole loop on the real local backend: prepared dataset -> submitted job (real tiny training) -> the job's
own Event Grid event -> registered version -> blue/green deployment on real scoring servers -> live.

One model goes through three versions, because each step builds on the last:
v1 goes live; duplicate, late, step, foreign and unknown-job events change nothing; v2 replaces it blue/green
with two crashes injected on the way (one before a step is recorded, one after), a canary share for one tick,
then all the traffic, and v1's deployment deleted;
v3's model folder is made unloadable, so its deployment fails and rolls back while v2 keeps serving; finally v4
starts rolling out and is abandoned for a newer v5 while it provisions (newer wins mid-rollout).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from shared.backends.base import MODEL_TAG, RUN_TAG, DeploymentPhase
from shared.events import handle_event
from shared.ledger import DatasetRecord, RunRecord
from shared.names import endpoint_name
from shared.reconcile import steps
from shared.reconcile.tick import reconcile_model
from shared.runs.context import RunContext
from shared.runs.outcome import offer_version
from shared.runs.submit import start_run_for_dataset
from tests.integration import test_runs_support as support
from tests.integration.test_runs_support import (
    EventSink,
    chat,
    drive,
    job_events,
    live_on,
    model_of,
    prepare_dataset,
    run_of,
    wait_for,
)

event_sink = support.event_sink  # fixtures
runs_ctx = support.runs_ctx

pytestmark = pytest.mark.slow
MODEL = "support-bot"


class InjectedCrash(BaseException):
    """Stands for the process dying (BaseException: no ``except Exception`` in the app may swallow it)."""


def deliver(ctx: RunContext, events: list[dict[str, Any]], *, reconcile: bool = True) -> list[str]:
    return [handle_event(event, ctx, reconcile=reconcile).action for event in events]


def train(ctx: RunContext, sink: EventSink, seed: int):
    dataset = prepare_dataset(ctx, MODEL, seed=seed)
    run = start_run_for_dataset(ctx.ledger, dataset, ctx)
    assert run.state == "submitted", run.error or run.details
    assert run.job_name and run.parameters
    return run, job_events(sink, run.job_name)


def timeline(run) -> list[str]:
    return [state for state, _ in run.timeline]


def corrupt_model_folder(path: str) -> None:
    """Make a registered MLflow model folder unloadable (its weights and config become garbage)."""
    folder = Path(path.removeprefix("file://"))
    assert folder.is_dir(), folder
    damaged = 0
    for file in folder.rglob("*"):
        if file.is_file() and file.suffix in {".safetensors", ".bin", ".json", ".pt", ".pth"}:
            file.write_bytes(b"\x00not a model\x00")
            damaged += 1
    assert damaged, f"nothing to corrupt in {folder}"


def test_blue_green_lifecycle(runs_ctx: RunContext, event_sink: EventSink, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = runs_ctx
    endpoint = endpoint_name(MODEL)
    registered = ctx.settings.registered_model_name(MODEL)

    # ---- v1: event -> registered -> deployed -> live ------------------------------------------------------
    run1, events1 = train(ctx, event_sink, seed=1)
    again = start_run_for_dataset(ctx.ledger, ctx.ledger.get(DatasetRecord, MODEL, run1.dataset_id), ctx)
    assert again.job_name == run1.job_name  # the same dataset never trains twice
    assert [e["eventType"] for e in events1] == ["Microsoft.MachineLearningServices.RunCompleted"]
    assert deliver(ctx, events1) != ["ignored"]
    run1 = run_of(ctx, run1)
    assert run1.registered_version == "1" and run1.registered_model == registered
    assert run1.metrics, "eval metrics from the job are recorded on the run"
    version1 = ctx.backend.get_model(registered, "1")
    assert version1 is not None and version1.tags["autotune-run-id"] == run1.run_id
    assert version1.tags["autotune-job-name"] == run1.job_name
    model = drive(ctx, MODEL, live_on("1"))
    assert model.live_deployment == "v1" and model.endpoint_name == endpoint and model.live_run_id == run1.run_id
    assert model.scoring_uri
    run1 = run_of(ctx, run1)
    assert run1.state == "live"
    assert timeline(run1) == ["waiting", "queued", "submitted", "completed", "registered", "deploying", "live"]
    assert chat(ctx, endpoint).strip()

    # ---- duplicates, late news, step runs, other workspaces and other people's jobs change nothing ---------
    before_model, before_run = model_of(ctx, MODEL), run_of(ctx, run1)
    completed = events1[0]
    late_running = copy.deepcopy(completed)
    late_running["eventType"] = "Microsoft.MachineLearningServices.RunStatusChanged"
    late_running["data"]["runStatus"] = "Running"
    late_failed = copy.deepcopy(late_running)
    late_failed["data"]["runStatus"] = "failed"
    step = copy.deepcopy(completed)
    step["data"]["runType"] = "azureml.StepRun"
    step["data"]["runTags"]["azureml.pipelinerunid"] = run1.job_name
    foreign = copy.deepcopy(completed)
    foreign["topic"] = foreign["topic"].replace("/workspaces/", "/workspaces/someone-else-")
    strangers = copy.deepcopy(completed)
    strangers["data"]["runId"] = "somebody_elses_job"
    strangers["data"]["runTags"] = {}
    strangers["subject"] = "experiments/x/runs/somebody_elses_job"
    actions = deliver(ctx, [completed, completed, late_running, late_failed, step, foreign, strangers])
    assert actions == ["unchanged", "unchanged", "unchanged", "unchanged", "ignored", "ignored", "ignored"]
    after_model, after_run = model_of(ctx, MODEL), run_of(ctx, run1)
    assert after_run.timeline == before_run.timeline and after_run.state == "live"
    assert (after_model.live_version, after_model.desired_version, after_model.deployment) == (
        before_model.live_version,
        before_model.desired_version,
        before_model.deployment,
    )
    assert ctx.backend.get_model(registered, "2") is None  # exactly one version per run, however many events

    # ---- v2: blue/green, with a crash before a step is recorded and one after ------------------------------
    run2, events2 = train(ctx, event_sink, seed=2)
    assert deliver(ctx, events2, reconcile=False) == ["registered"]
    assert model_of(ctx, MODEL).desired_version == "2"

    real_save = steps._save
    crashes: list[str] = []

    def save_then_maybe_crash(ctx_: RunContext, record: Any, step_name: str | None = None) -> Any:
        if step_name == steps.CREATE and "before-record" not in crashes:
            crashes.append("before-record")  # the deployment was begun, but the ledger never hears of it
            raise InjectedCrash("process died after begin_deployment")
        return real_save(ctx_, record, step_name)

    def boundary(model_name: str, step_name: str) -> None:
        if step_name == steps.SMOKE and "after-record" not in crashes:
            crashes.append("after-record")
            raise InjectedCrash("process died after the smoke test was recorded")

    monkeypatch.setattr(steps, "_save", save_then_maybe_crash)
    monkeypatch.setattr(steps, "step_boundary", boundary)
    with pytest.raises(InjectedCrash):
        drive(ctx, MODEL, lambda m: False, timeout=60)  # ticks until the first crash, inside "create"
    stuck = model_of(ctx, MODEL)
    assert stuck.deployment["step"] == steps.CREATE  # not recorded: the next tick repeats "create"
    begun = wait_for(
        lambda: ctx.backend.get_deployment(endpoint, "v2").phase != DeploymentPhase.NOT_FOUND, 30, "v2 to exist"
    )
    assert begun
    created_at = ctx.backend.get_deployment(endpoint, "v2").created_at
    with pytest.raises(InjectedCrash):
        drive(ctx, MODEL, lambda m: False, timeout=120)  # runs until the second crash, after "smoke" is recorded
    assert model_of(ctx, MODEL).deployment["step"] == steps.EVALUATE
    assert chat(ctx, endpoint).strip()  # v1 still has all the traffic while v2 is checked
    assert ctx.backend.get_endpoint(endpoint).traffic == {"v1": 100}
    # With CANARY_PERCENT=30: 30% to v2 for one tick (v1 still live), then 100% on the next.
    canary = RunContext(dataclasses.replace(ctx.settings, canary_percent=30), ctx.ledger, ctx.backend)
    halfway = drive(canary, MODEL, lambda m: bool(m.deployment.get("canary_at")), timeout=60)
    assert ctx.backend.get_endpoint(endpoint).traffic == {"v2": 30, "v1": 70}
    assert halfway.state == "live" and halfway.live_version == "1"
    assert chat(ctx, endpoint).strip()
    model = drive(canary, MODEL, live_on("2"))
    assert crashes == ["before-record", "after-record"]
    assert ctx.backend.get_deployment(endpoint, "v2").created_at == created_at  # resumed, never begun twice
    assert model.live_deployment == "v2" and model.endpoint_name == endpoint
    wait_for(
        lambda: ctx.backend.get_deployment(endpoint, "v1").phase == DeploymentPhase.NOT_FOUND,
        60,
        "the old deployment v1 to be deleted",
    )
    assert run_of(ctx, run1).state == "superseded"
    assert run_of(ctx, run2).state == "live"
    assert chat(ctx, endpoint).strip()
    monkeypatch.setattr(steps, "_save", real_save)
    monkeypatch.setattr(steps, "step_boundary", lambda *_: None)

    # ---- v3: unloadable model -> the deployment fails -> rollback; v2 keeps serving -------------------------
    run3, events3 = train(ctx, event_sink, seed=3)
    assert deliver(ctx, events3, reconcile=False) == ["registered"]
    version3 = ctx.backend.get_model(registered, "3")
    assert version3 is not None
    corrupt_model_folder(version3.path)
    model = drive(ctx, MODEL, lambda m: not m.deployment and run_of(ctx, run3).state == "failed", timeout=180)
    assert model.state == "live" and model.live_version == "2" and model.live_deployment == "v2"
    assert model.desired_version == "2"  # not retried every tick
    assert "version 3" in model.error
    run3 = run_of(ctx, run3)
    assert run3.error.startswith("deployment failed")
    assert run3.details.get("failed_step", "").startswith("deploy")
    assert chat(ctx, endpoint).strip()
    wait_for(
        lambda: ctx.backend.get_deployment(endpoint, "v3").phase == DeploymentPhase.NOT_FOUND,
        60,
        "the failed deployment v3 to be deleted",
    )
    assert ctx.backend.get_deployment(endpoint, "v2").phase == DeploymentPhase.SUCCEEDED
    assert reconcile_model(ctx, MODEL) == ["idle"]

    # ---- newer wins mid-rollout: v4 is abandoned for v5 while it provisions -----------------------------------
    # Two more versions of outputs already trained (no training time), registered for runs made by hand.
    def registered_run(run_id: str, trained_by: RunRecord) -> RunRecord:
        version = ctx.backend.register_model(trained_by.job_name, registered, {RUN_TAG: run_id, MODEL_TAG: MODEL})
        run = RunRecord(model=MODEL, run_id=run_id, dataset_id=trained_by.dataset_id, registered_model=registered)
        run.registered_version = str(version.version)
        for state in ("queued", "submitted", "completed", "registered"):
            run.transition(state)
        return ctx.ledger.create(run)

    run4 = registered_run(f"{MODEL}-fourth", trained_by=run2)
    assert run4.registered_version == "4" and offer_version(ctx, run4) == "desired"
    drive(ctx, MODEL, lambda m: m.deployment.get("step") == steps.PROVISIONING, timeout=60)
    run5 = registered_run(f"{MODEL}-fifth", trained_by=run1)
    assert offer_version(ctx, run5) == "desired"
    model = drive(ctx, MODEL, live_on("5"))
    assert model.live_deployment == "v5" and model.live_run_id == run5.run_id
    abandoned = run_of(ctx, run4)
    assert abandoned.state == "superseded" and abandoned.details["superseded_by"] == run5.run_id
    assert timeline(abandoned)[-2:] == ["deploying", "superseded"]  # never live: abandoned while provisioning
    assert run_of(ctx, run2).state == "superseded"
    for gone in ("v4", "v2"):
        wait_for(
            lambda name=gone: ctx.backend.get_deployment(endpoint, name).phase == DeploymentPhase.NOT_FOUND,
            60,
            f"deployment {gone} to be deleted",
        )
    assert chat(ctx, endpoint).strip()
