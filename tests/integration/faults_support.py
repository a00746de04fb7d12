"""The fault-injection harness's world and tools (no tests here; the tests are in test_faults_*.py).

One world per test module, because training is the slow part: one namespace (tables, container, local platform
folder), one real training job of the tiny local model, and a copy of that job whose model is damaged (it cannot
load, so a deployment of it fails). Each scenario then gets model names of its own and registers versions of
those jobs in the real (MLflow) registry, in-process: a second or two each instead of a training run.

Faults: ``raising_at`` makes this process "die" at a crash point (an exception no handler in the app catches;
``finally`` blocks still run); ``killed_at`` runs a reconciler, sweeper or waker in a child process that kills
itself with SIGKILL at the point (leases stay held, its platform processes are orphaned).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared import crashpoints
from shared.backends.base import MODEL_TAG, RUN_TAG
from shared.records import TERMINAL_RUN_STATES, ModelRecord, RunRecord
from shared.runs.context import RunContext
from shared.runs.outcome import offer_version
from shared.timeutil import utcnow
from tests.integration.test_runs_support import model_of, wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 240.0


class Died(BaseException):
    """This process dying at a crash point (BaseException: no ``except Exception`` in the app swallows it)."""


@dataclass
class World:
    env: dict[str, str]
    ctx: RunContext
    job: str  # a completed training job of the tiny model
    broken_job: str  # the same job's outputs with the model damaged
    seen: set[str] = field(default_factory=set)  # every crash point reached in this world
    versions: dict[str, int] = field(default_factory=dict)
    sink: Any = None  # the EventSink the training job posted its events to


def damaged_copy(ctx: RunContext, job: str) -> str:
    """A copy of a completed job whose trained model cannot be loaded (weights and config overwritten)."""
    layout = ctx.backend.layout
    broken = f"{job}-damaged"
    shutil.copytree(layout.job(job), layout.job(broken))
    damaged = 0
    for file in layout.job_model(broken).rglob("*"):
        if file.is_file() and file.suffix in {".safetensors", ".bin", ".json", ".pt", ".pth"}:
            file.write_bytes(b"\x00not a model\x00")
            damaged += 1
    assert damaged, f"nothing to damage in {layout.job_model(broken)}"
    return broken


def add_version(world: World, model: str, *, broken: bool = False) -> RunRecord:
    """A run whose job completed, registered as the model's next version (real registry), offered as desired."""
    from localml.mlflowstore import register

    ctx = world.ctx
    number = world.versions.get(model, 0) + 1
    world.versions[model] = number
    job = world.broken_job if broken else world.job
    run_id = f"{model}-run{number}"
    found = register(
        ctx.backend.layout, job, ctx.settings.registered_model_name(model), {RUN_TAG: run_id, MODEL_TAG: model}
    )
    assert found["version"] == str(number), found
    # No job name of its own: the job is shared by every scenario, and a job event must find one run only.
    run = RunRecord(model=model, run_id=run_id, dataset_id=f"{number:016x}", backend="local", details={"job": job})
    for state in ("queued", "submitted", "completed", "registered"):
        run.transition(state)
    run.registered_model, run.registered_version = found["name"], found["version"]
    run = ctx.ledger.create(run)
    assert offer_version(ctx, run) == "desired"
    return run


# -- driving ----------------------------------------------------------------------------------------------------


def tick(world: World) -> None:
    from shared.reconcile.tick import reconcile_all

    reconcile_all(world.ctx)


def converge(world: World, model: str, done: Callable[[ModelRecord], bool], timeout: float = 240) -> ModelRecord:
    """Tick (as the timer does, faster) until ``done``; a lease a killed process left is waited out."""

    def once() -> ModelRecord | None:
        tick(world)
        record = model_of(world.ctx, model)
        return record if done(record) else None

    return wait_for(once, timeout, f"model {model} to converge", interval=0.3)


def live_on(version: str) -> Callable[[ModelRecord], bool]:
    return lambda m: m.state == "live" and m.live_version == version and not m.deployment


@contextmanager
def observing(world: World, hook: crashpoints.Hook | None = None) -> Iterator[None]:
    """Record every crash point reached (and call ``hook`` at each)."""

    def observe(point: str, when: str, model: str) -> None:
        world.seen.add(point.split(":")[0])
        if hook is not None:
            hook(point, when, model)

    previous = crashpoints.install(observe)
    try:
        yield
    finally:
        crashpoints.install(previous)


def matches(target: str, point: str) -> bool:
    """``rollback`` names every ``rollback:{step}`` point; other names match exactly."""
    return point == target or point.startswith(f"{target}:")


def raising_at(
    world: World, model: str, point: str, when: str, work: Callable[[], object], attempts: int = 400
) -> None:
    """Do ``work`` (a tick, a sweep, a wake) until this process 'dies' at the point; fail if it never gets there."""
    fired: list[str] = []

    def hook(reached: str, moment: str, who: str) -> None:
        if who == model and moment == when and matches(point, reached) and not fired:
            fired.append(reached)
            raise Died(f"{reached}:{moment}")

    with observing(world, hook):
        for _ in range(attempts):
            try:
                work()
            except Died:
                return
            wait_a_little()
    raise AssertionError(f"crash point {point}:{when} of model {model} was never reached")


def wait_a_little() -> None:
    import time

    time.sleep(0.2)


def killed_at(world: World, action: str, model: str, point: str, when: str, lease: float = 2.0) -> str:
    """Run ``action`` in a child process that kills itself (SIGKILL) at the point; its output."""
    command = [sys.executable, "-m", "tests.integration.faults_child", action, "--model", model]
    command += ["--die-at", f"{point}:{when}", "--lease", str(lease)]
    env = {**os.environ, **world.env, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    output = done.stdout + done.stderr[-3000:]
    assert done.returncode == -signal.SIGKILL, f"the child did not die at {point}:{when} ({done.returncode}):\n{output}"
    assert f"dying at {point}" in done.stdout, output
    world.seen.add(point)
    return done.stdout


def sweep_one(ctx: RunContext, model: str) -> str:
    """The idle sweeper (the real observe/decide/act; ENDPOINT_IDLE_MINUTES=0 here) on this model's endpoint only."""
    from shared.sweeper import Policy, act, decide, observe

    outcomes = []
    for obs in observe(ctx.settings, ctx.ledger, ctx.backend):
        if obs.model == model:
            decision = decide(obs, Policy.from_settings(ctx.settings), utcnow())
            outcomes.append(act(decision, obs, ctx.settings, ctx.ledger, ctx.backend).result)
    return ",".join(outcomes)


# -- what convergence means -------------------------------------------------------------------------------------


def runs_of(world: World, model: str) -> dict[str, RunRecord]:
    return {run.run_id: run for run in world.ctx.ledger.query_eq(RunRecord, PartitionKey=model)}


def assert_live(
    world: World, model: str, version: str, *, superseded: tuple[str, ...] = (), failed: tuple[str, ...] = ()
) -> ModelRecord:
    """The documented end state of a rollout: ``version`` live, all of the traffic on its deployment, no other
    deployment on the endpoint (no orphan), every run finished (the live one, the others as given), it answers."""
    from tests.integration.test_runs_support import chat

    ctx = world.ctx
    record = model_of(ctx, model)
    assert record.state == "live" and record.live_version == version and not record.deployment, record
    info = ctx.backend.get_endpoint(record.endpoint_name)
    assert info is not None
    assert {k: v for k, v in info.traffic.items() if v} == {record.live_deployment: 100}, info.traffic
    assert info.deployments == (record.live_deployment,), f"orphans on {info.name}: {info.deployments}"
    runs = runs_of(world, model)
    assert all(run.state in TERMINAL_RUN_STATES for run in runs.values()), {r: x.state for r, x in runs.items()}
    states = {run.registered_version: run.state for run in runs.values()}
    assert states[version] == "live", states
    for old in superseded:
        assert states[old] == "superseded", states
    for bad in failed:
        assert states[bad] == "failed", states
    assert chat(ctx, record.endpoint_name).strip()
    return record


def stop_everything(ctx: RunContext) -> None:
    """Stop every process of the world's platform, also those orphaned by killed children and devhosts."""
    from localml.state import alive, read_json, stop

    layout = ctx.backend.layout
    ctx.backend.shutdown()
    for path in [*layout.endpoints.glob("*/router.json"), *layout.endpoints.glob("*/deployments/*/server.json")]:
        record = read_json(path)
        if alive(record):
            stop(record, timeout=5)


def platform_processes(ctx: RunContext, endpoint: str) -> list[dict]:
    """The process records (router, one server per deployment) of an endpoint that are still alive."""
    from localml.state import alive, read_json

    folder = ctx.backend.layout.endpoint(endpoint)
    paths = [folder / "router.json", *folder.glob("deployments/*/server.json")]
    return [record for path in paths if alive(record := read_json(path))]


def dump(value: object) -> str:
    return json.dumps(value, indent=1, default=str)


# -- the world ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fault_world(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One namespace, one trained job (and its damaged copy) for every fault-injection test of the session."""
    from localml import LocalBackend
    from shared.ledger import Ledger
    from shared.runs.submit import start_run_for_dataset
    from shared.settings import load_settings
    from tests.integration.test_runs_support import FAST_TRAINING, EventSink, prepare_dataset
    from tests.isolation import isolated_env

    sink = EventSink().start()  # the training job's own events land here (the storm test replays them)
    env = isolated_env(
        azurite,
        tmp_path_factory.mktemp("faults") / "state",
        GATEWAY_API_KEYS="fault-key",
        FINETUNE_PARAMETERS=json.dumps(FAST_TRAINING),
        AUTOTUNE_HOST_URL=sink.url,
        ORPHAN_GRACE_MINUTES="0",  # the harness checks the state after the grace: orphans are deleted
        ENDPOINT_IDLE_MINUTES="0",  # sweeps put a model to sleep at once (they are only run on purpose)
        PREPARE_MAX_ATTEMPTS="3",
        RECONCILE_SCHEDULE="*/1 * * * * *",  # for the devhosts these tests start
        IDLE_SWEEP_SCHEDULE="0 0 0 1 1 *",  # never on its own: sweeps are run on purpose
        JOB_POLL_AFTER_MINUTES="100000",  # the training run's event is delivered by the storm test alone
        PROMOTION_POLICY="always",  # every version is evaluated (crash points included) and promoted whatever it scores
        EVAL_MAX_EXAMPLES="2",
        EVAL_MAX_NEW_TOKENS="16",
    )
    # Settings from ``env`` alone, never the process environment: the world lives for the whole session, and
    # other tests' settings must not see its ENDPOINT_IDLE_MINUTES=0 or its one-second reconcile schedule.
    settings = load_settings(env)
    ctx = RunContext(settings, Ledger(settings), LocalBackend(settings))
    try:
        run = start_run_for_dataset(ctx.ledger, prepare_dataset(ctx, "fault-base", seed=5), ctx)
        assert run.job_name, run.error
        wait_for(lambda: ctx.backend.get_job(run.job_name).state.terminal, 300, "the tiny model's training")
        assert ctx.backend.get_job(run.job_name).state.value == "completed"
        world = World(env, ctx, run.job_name, damaged_copy(ctx, run.job_name))
        world.sink = sink
        yield world
    finally:
        stop_everything(ctx)
        sink.stop()
