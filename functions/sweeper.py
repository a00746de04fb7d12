"""Timer trigger of the idle endpoint sweeper (logic in shared/sweeper.py)."""

import logging

import azure.functions as func

from functions import deps

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.timer_trigger(arg_name="timer", schedule="%IDLE_SWEEP_SCHEDULE%", run_on_startup=False)
def sweep_idle_endpoints(timer: func.TimerRequest) -> None:
    """Delete managed endpoints idle for ENDPOINT_IDLE_MINUTES; the models stay and sleep until woken."""
    from shared.sweeper import sweep

    if timer.past_due:
        log.info("idle sweep is running late (past due)")
    sweep(deps.settings(), deps.ledger(), deps.backend())
