"""Faults that come from running many things at once: two reconcilers racing on one model with leases that
expire, a storm of duplicate and reordered job events through the devhost, the devhost killed mid-deployment,
and a poisoned drop that kills every preparation while another model deploys.

Real Azurite, the real local platform and the devhost as a real subprocess; the tiny model trained once per
session (``faults_support.fault_world``).
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devhost.testing import DevHostProcess
from localml.state import alive
from shared import crashpoints, ingest
from shared.ingest import ingest_blob
from shared.ledger import DatasetRecord, RunRecord
from shared.reconcile import plan, steps
from shared.reconcile.datasets import redrive_stale_datasets
from shared.storage import blob_service
from tests.integration.faults_support import (
    PROJECT_ROOT,
    Died,
    World,
    add_version,
    assert_live,
    live_on,
    platform_processes,
    tick,
)
from tests.integration.ingest_helpers import chat_rows, jsonl
from tests.integration.test_runs_support import job_events, model_of, wait_for

pytestmark = pytest.mark.slow

WEBHOOK = "/runtime/webhooks/eventgrid?functionName=on_ml_job_event"
ROLLOUT_POINTS = tuple(action for action in steps.HANDLERS if action != plan.ABANDON)  # from the code


def race(world: World, model: str) -> Counter[str]:
    """Two reconciler processes on the same model, one-second leases; the steps each recorded, counted."""
    command = [sys.executable, "-m", "tests.integration.faults_child", "reconcile", "--model", model]
    command += ["--lease", "1", "--interval", "0.05", "--ticks", "3000"]
    env = {**os.environ, **world.env, "PYTHONPATH": str(PROJECT_ROOT)}
    children = [
        subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    recorded: Counter[str] = Counter()
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-3000:]
        recorded.update(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("recorded "))
    return recorded


def test_two_reconcilers_racing_take_every_step_once(fault_world: World) -> None:
    world, model = fault_world, "racing"
    add_version(world, model)
    assert race(world, model) == Counter({point: 1 for point in ROLLOUT_POINTS})
    assert_live(world, model, "1")
    add_version(world, model)
    assert race(world, model) == Counter({point: 1 for point in ROLLOUT_POINTS})
    assert_live(world, model, "2", superseded=("1",))


def test_the_devhost_killed_mid_deployment_comes_back_and_finishes(fault_world: World) -> None:
    world, model = fault_world, "phoenix"
    add_version(world, model)
    env = {**world.env, "RECONCILE_SCHEDULE": "*/1 * * * * *"}
    first = DevHostProcess(env=env).start()
    try:
        wait_for(lambda: model_of(world.ctx, model).deployment.get("step") == plan.PROVISIONING, 120, "deploying")
    finally:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    endpoint = model_of(world.ctx, model).deployment["endpoint"]
    orphans = platform_processes(world.ctx, endpoint)  # the killed host's router and server, still running
    with DevHostProcess(env=env) as second:
        record = wait_for(lambda: live_on("1")(m := model_of(world.ctx, model)) and m, 240, "live after the restart")
        assert_live(world, model, "1")
        assert "Traceback" not in second.log(), second.log()[-3000:]
    assert record.endpoint_name == endpoint
    assert not platform_processes(world.ctx, endpoint)  # the clean exit stopped what it adopted
    for process in orphans:  # the killed host's own processes, adopted by the second host and stopped with it
        wait_for(lambda p=process: not alive(p), 15, f"process {process} of the killed host to be gone")


def test_a_poisoned_drop_ends_failed_while_another_model_deploys(
    fault_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, ctx = fault_world, fault_world.ctx
    monkeypatch.setattr(ingest, "STALE_CLAIM_SECONDS", 0)  # a claim whose owner died is stale at once
    deaths: list[str] = []

    def poison(point: str, when: str, model: str) -> None:
        if point == "prepare" and model == "poisoned":
            deaths.append(model)
            raise Died("the process died preparing the poisoned file")

    add_version(world, "bystander")
    container = blob_service(ctx.settings).get_container_client(ctx.settings.training_container)
    client = container.get_blob_client("incoming/poisoned/crashes-the-parser.jsonl")
    client.upload_blob(jsonl(chat_rows(40)), overwrite=True)
    previous = crashpoints.install(poison)
    try:
        with pytest.raises(Died):
            ingest_blob(client, settings=ctx.settings, ledger=ctx.ledger)  # the blob trigger's delivery
        for _ in range(400):
            with contextlib.suppress(Died):
                redrive_stale_datasets(ctx)  # the re-drive timer
            tick(world)  # the reconcile timer, meanwhile
            (dataset,) = ctx.ledger.query_eq(DatasetRecord, PartitionKey="poisoned")
            if dataset.state == "failed" and live_on("1")(model_of(ctx, "bystander")):
                break
    finally:
        crashpoints.install(previous)
    assert len(deaths) == 3 == ctx.settings.prepare_max_attempts
    assert dataset.state == "failed" and "started 3 times" in dataset.error and client.exists()
    assert_live(world, "bystander", "1")


def storm(event: dict, count: int, seed: int = 16) -> list[dict]:
    """Duplicates of a job's final event, late Running events and re-sent copies with new ids, shuffled."""
    running = copy.deepcopy(event)
    running["eventType"] = "Microsoft.MachineLearningServices.RunStatusChanged"
    running["data"]["runStatus"] = "Running"
    events = []
    for i in range(count):
        shape = copy.deepcopy((event, running)[i % 4 == 3])
        if i % 2:
            shape["id"] = str(uuid.uuid4())  # Event Grid retries keep the id; a re-publish gets a new one
        events.append(shape)
    random.Random(seed).shuffle(events)
    return events


def test_a_thousand_duplicate_and_reordered_job_events_register_once(fault_world: World) -> None:
    world, ctx = fault_world, fault_world.ctx
    (completed,) = [e for e in job_events(world.sink, world.job) if e["eventType"].endswith("RunCompleted")]
    (run,) = ctx.ledger.query_eq(RunRecord, PartitionKey="fault-base")
    assert run.state == "submitted"  # its event was never delivered until now
    env = {**world.env, "RECONCILE_SCHEDULE": "0 0 0 1 1 *"}
    with DevHostProcess(env=env) as host, httpx.Client(base_url=host.url, timeout=120) as http:

        def deliver(event: dict) -> int:
            return http.post(WEBHOOK, json=[event], headers={"aeg-event-type": "Notification"}).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = Counter(pool.map(deliver, storm(completed, 1000)))
        log = host.log()
    failures = [line for line in log.splitlines() if "(Failed" in line or "Traceback" in line]
    assert sum(statuses.values()) == 1000 and all(200 <= status < 300 for status in statuses), (statuses, log[-3000:])
    assert not failures, failures[:5]
    run = ctx.ledger.get(RunRecord, run.model, run.run_id)
    assert [state for state, _ in run.timeline].count("registered") == 1, run.timeline
    registered = ctx.settings.registered_model_name("fault-base")
    assert ctx.backend.get_model(registered, "1") is not None and ctx.backend.get_model(registered, "2") is None
