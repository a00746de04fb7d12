"""Timer trigger of the reconciler (see shared/reconcile): blue/green deployments and the job backstop."""

import azure.functions as func

from functions import deps

bp = func.Blueprint()


@bp.timer_trigger(schedule="%RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
def reconcile(timer: func.TimerRequest) -> None:
    from shared.reconcile.tick import reconcile_all

    reconcile_all(deps.run_context())
