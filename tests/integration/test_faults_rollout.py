"""Fault injection at every step boundary of the rollout state machine: whatever step the process dies at, the
next ticks converge to the documented end state.

The boundaries are taken from the code: every action the reconciler's steps module can take (``steps.HANDLERS``:
start, endpoint, create, provisioning, smoke test, traffic, cleanup, abandon, and any step added later, such as
an evaluation), a rollback, a wake and a sleep. At each, the process dies twice per rollout: ``before`` the
step's outcome is recorded (the platform acted, the ledger does not know) and ``after``; once by raising (in this
process) and once by SIGKILL (a child reconciler, sweeper or waker, whose lease stays held and whose platform
processes are orphaned). A first deployment and an update each get both positions and both ways of dying:
- first deployment: raise before the record, then kill after it;
- update: kill before the record, then raise after it.
Converged means (``assert_live``): the newest registered version live, all traffic on its deployment, no other
deployment on the endpoint, every run finished, and it answers; or the documented end state of the flow (a failed
first version: the model ``failed`` and nothing deployed; a sleep: asleep with the endpoint gone).

Real Azurite and the real local platform (scoring servers of the tiny model trained once per session).
"""

from __future__ import annotations

import pytest

from shared.crashpoints import AFTER, BEFORE
from shared.models import WAKE_POINT, request_wake
from shared.names import endpoint_name_for
from shared.reconcile import plan, steps
from shared.sweeper import SLEEP_POINT
from tests.integration.faults_support import (
    World,
    add_version,
    assert_live,
    converge,
    killed_at,
    live_on,
    platform_processes,
    raising_at,
    runs_of,
    sweep_one,
    tick,
)
from tests.integration.test_runs_support import model_of, wait_for

pytestmark = pytest.mark.slow

BOUNDARIES = (*steps.HANDLERS, plan.ROLLBACK, WAKE_POINT, SLEEP_POINT)


def name_for(point: str, flow: str) -> str:
    return f"{flow}-{point}".replace("_", "-")[:32]


def first_then_update(world: World, point: str) -> None:
    model = name_for(point, "fu")
    add_version(world, model)
    raising_at(world, model, point, BEFORE, lambda: tick(world))
    killed_at(world, "reconcile", model, point, AFTER)
    converge(world, model, live_on("1"))
    assert_live(world, model, "1")

    add_version(world, model)
    killed_at(world, "reconcile", model, point, BEFORE)
    raising_at(world, model, point, AFTER, lambda: tick(world))
    converge(world, model, live_on("2"))
    assert_live(world, model, "2", superseded=("1",))


def abandon(world: World, point: str) -> None:
    # A first deployment abandoned for a newer version while it provisions ...
    model = name_for(point, "first")
    add_version(world, model)
    tick(world)  # v1: endpoint, deployment begun, provisioning
    assert model_of(world.ctx, model).deployment.get("step") == plan.PROVISIONING
    add_version(world, model)
    raising_at(world, model, point, BEFORE, lambda: tick(world))
    killed_at(world, "reconcile", model, point, AFTER)
    converge(world, model, live_on("2"))
    assert_live(world, model, "2", superseded=("1",))
    # ... and an update abandoned the same way.
    model = name_for(point, "update")
    add_version(world, model)
    converge(world, model, live_on("1"))
    add_version(world, model)
    tick(world)
    assert model_of(world.ctx, model).deployment.get("version") == "2"
    add_version(world, model)
    killed_at(world, "reconcile", model, point, BEFORE)
    raising_at(world, model, point, AFTER, lambda: tick(world))
    converge(world, model, live_on("3"))
    assert_live(world, model, "3", superseded=("1", "2"))


def rollback(world: World, point: str) -> None:
    # A first version that cannot load: the model ends failed with nothing deployed; a good version then goes live.
    model = name_for(point, "first")
    add_version(world, model, broken=True)
    raising_at(world, model, point, BEFORE, lambda: tick(world))
    killed_at(world, "reconcile", model, point, AFTER)
    failed = converge(world, model, lambda m: m.state == "failed" and not m.deployment)
    assert "failed at step provisioning" in failed.error
    endpoint = endpoint_name_for(world.ctx.settings, model)
    collected(world, endpoint, ())  # the failed deployment, no longer referenced, is deleted
    assert {run.state for run in runs_of(world, model).values()} == {"failed"}
    add_version(world, model)
    converge(world, model, live_on("2"))
    assert_live(world, model, "2", failed=("1",))
    # An update that cannot load: rolled back, the old version keeps serving.
    model = name_for(point, "update")
    add_version(world, model)
    converge(world, model, live_on("1"))
    add_version(world, model, broken=True)
    killed_at(world, "reconcile", model, point, BEFORE)
    raising_at(world, model, point, AFTER, lambda: tick(world))
    record = converge(world, model, lambda m: live_on("1")(m) and m.desired_version == "1")
    collected(world, record.endpoint_name, (record.live_deployment,))  # what the crash left behind is deleted
    assert_live(world, model, "1", failed=("2",))


def wake(world: World, point: str) -> None:
    model = name_for(point, "sleepy")
    ctx = world.ctx
    add_version(world, model)
    converge(world, model, live_on("1"))
    for die_in_process, die_in_child in ((BEFORE, AFTER), (AFTER, BEFORE)):
        assert sweep_one(ctx, model) == "slept"
        if die_in_child == BEFORE:
            killed_at(world, "wake", model, point, BEFORE)
        raising_at(world, model, point, die_in_process, lambda: request_wake(ctx.settings, ctx.ledger, model, "test"))
        if die_in_child == AFTER:
            killed_at(world, "wake", model, point, AFTER)
        converge(world, model, live_on("1"))
        assert_live(world, model, "1")


def sleep(world: World, point: str) -> None:
    model = name_for(point, "tired")
    ctx = world.ctx
    add_version(world, model)
    record = converge(world, model, live_on("1"))
    for die_in_process, die_in_child in ((BEFORE, AFTER), (AFTER, BEFORE)):
        endpoint = record.endpoint_name
        if die_in_child == BEFORE:
            killed_at(world, "sweep", model, point, BEFORE)
        raising_at(world, model, point, die_in_process, lambda: sweep_one(ctx, model))
        if die_in_child == AFTER:
            killed_at(world, "sweep", model, point, AFTER)
        assert model_of(ctx, model).state == "sleeping"
        # The next sweep (once the dead sweeper's lease has expired) finishes what it began.
        wait_for(lambda e=endpoint: swept(world, model, e), 60, f"endpoint {endpoint} to be deleted")
        assert not platform_processes(ctx, endpoint)
        tick(world)
        asleep = model_of(ctx, model)
        assert asleep.state == "sleeping" and asleep.live_version == "1" and not asleep.deployment
        request_wake(ctx.settings, ctx.ledger, model, "test")  # not stuck: it wakes again
        record = converge(world, model, live_on("1"))
        assert_live(world, model, "1")


def swept(world: World, model: str, endpoint: str) -> bool:
    sweep_one(world.ctx, model)
    return world.ctx.backend.get_endpoint(endpoint) is None


def collected(world: World, endpoint: str, remaining: tuple[str, ...]) -> None:
    """Tick until only ``remaining`` deployments are left on the endpoint (a dead process's lease expires first)."""

    def done() -> bool:
        tick(world)
        info = world.ctx.backend.get_endpoint(endpoint)
        return (info.deployments if info else ()) == remaining

    wait_for(done, 60, f"only {remaining} left on {endpoint}")


FLOWS = {plan.ABANDON: abandon, plan.ROLLBACK: rollback, WAKE_POINT: wake, SLEEP_POINT: sleep}


@pytest.mark.parametrize("point", BOUNDARIES)
def test_a_crash_at_a_step_boundary_converges(fault_world: World, point: str) -> None:
    FLOWS.get(point, first_then_update)(fault_world, point)


def test_every_crash_point_reached_is_one_the_harness_covers(fault_world: World) -> None:
    """A crash point added without a step (so not in ``steps.HANDLERS``) must be added to BOUNDARIES."""
    if not fault_world.seen:
        pytest.skip("nothing to check: no boundary test ran before this one")
    uncovered = {point for point in fault_world.seen if point not in BOUNDARIES}
    assert not uncovered, f"crash points no fault test covers: {uncovered}"
