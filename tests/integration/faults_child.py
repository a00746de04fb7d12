"""A reconciler (or sweeper, or waker) in a process of its own, for the fault-injection tests: it does its work in
a loop and, when it reaches the named crash point, kills itself with SIGKILL (no ``finally``, no ``atexit``, its
leases left held and its child processes orphaned, as when a Function host's instance dies).

    python -m tests.integration.faults_child reconcile --model M [--die-at POINT:WHEN] [--lease S] [--ticks N]
    python -m tests.integration.faults_child sweep --model M --die-at sleep:after
    python -m tests.integration.faults_child wake --model M --die-at wake:after

The settings come from the environment (the test's namespace). Exit codes: killed by SIGKILL at the point (the
parent sees -9); 3: ran all its ticks without reaching it; 0: no point to die at and the work is done. Each step
it records is printed as ``recorded POINT`` (the racing test counts them across processes).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from shared import crashpoints


def _hook(die_at: str, model: str):
    def hook(point: str, when: str, who: str) -> None:
        if who != model:
            return
        if when == crashpoints.AFTER:
            print(f"recorded {point}", flush=True)
        if die_at and _matches(die_at, point, when):
            print(f"dying at {point}:{when}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _matches(die_at: str, point: str, when: str) -> bool:
    """``rollback:after`` matches every ``rollback:{step}`` point; other names match exactly."""
    name, _, moment = die_at.rpartition(":")
    return moment == when and (point == name or point.startswith(f"{name}:"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.faults_child")
    parser.add_argument("action", choices=("reconcile", "sweep", "wake"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--die-at", default="")
    parser.add_argument("--lease", type=float, default=2.0, help="seconds of the model lease (short: it expires)")
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args(argv)

    from shared import sweeper
    from shared.reconcile import tick
    from shared.runs.context import RunContext

    tick.LEASE_SECONDS = sweeper.LEASE_SECONDS = args.lease
    crashpoints.install(_hook(args.die_at, args.model))
    ctx = RunContext.default()
    for _ in range(args.ticks):
        if args.action == "reconcile":
            actions = tick.reconcile_model(ctx, args.model)
            if not args.die_at and actions in (["idle"], ["sleeping"]):
                return 0
        elif args.action == "sweep":
            from tests.integration.faults_support import sweep_one

            sweep_one(ctx, args.model)
        else:
            from shared.models import request_wake

            request_wake(ctx.settings, ctx.ledger, args.model, reason="faults_child")
        time.sleep(args.interval)
    return 3 if args.die_at else 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # no atexit: the local platform's processes this child started keep running for the parent
