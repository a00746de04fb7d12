"""HTTP routes for runs (see shared/runs/views.py, retry.py and promotion.py): list, detail, cancel, retry,
promote (deploy a version the promotion gate held, or that awaits approval) and reject (one awaiting approval)."""

import azure.functions as func

from functions import deps
from functions.http import handles_errors, json_response, not_found

bp = func.Blueprint()


def _no_run(run_id: str) -> func.HttpResponse:
    return not_found("run_not_found", f"no run {run_id!r}")


@bp.route(route="api/runs", methods=["GET"])
@handles_errors
def runs_list(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runs.views import list_runs, parse_limit

    body = list_runs(
        deps.run_context(),
        model=req.params.get("model") or None,
        state=req.params.get("state") or None,
        limit=parse_limit(req.params.get("limit")),
        continuation=req.params.get("continuation") or None,
    )
    return json_response(body)


@bp.route(route="api/runs/{run_id}", methods=["GET"])
def runs_get(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runs.views import run_detail

    run_id = req.route_params.get("run_id", "")
    body = run_detail(deps.run_context(), run_id)
    return json_response(body) if body is not None else _no_run(run_id)


@bp.route(route="api/runs/{run_id}/cancel", methods=["POST"])
@handles_errors
def runs_cancel(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runs.views import cancel_run, summary

    run_id = req.route_params.get("run_id", "")
    run = cancel_run(deps.run_context(), run_id)
    return json_response(summary(run), 202) if run is not None else _no_run(run_id)


@bp.route(route="api/runs/{run_id}/retry", methods=["POST"])
@handles_errors
def runs_retry(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runs.retry import retry_run
    from shared.runs.views import summary

    run_id = req.route_params.get("run_id", "")
    run = retry_run(deps.run_context(), run_id)
    if run is None:
        return _no_run(run_id)
    body = {**summary(run), "attempt": run.details.get("attempt"), "previous_error": run.details.get("previous_error")}
    return json_response(body, 202)


@bp.route(route="api/runs/{run_id}/promote", methods=["POST"])
@handles_errors
def runs_promote(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runs.promotion import promote_run
    from shared.runs.views import summary

    run_id = req.route_params.get("run_id", "")
    run = promote_run(deps.run_context(), run_id)
    if run is None:
        return _no_run(run_id)
    return json_response({**summary(run), "override": (run.evaluation or {}).get("override")}, 202)


@bp.route(route="api/runs/{run_id}/reject", methods=["POST"])
@handles_errors
def runs_reject(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runs.promotion import reject_run
    from shared.runs.views import summary

    run_id = req.route_params.get("run_id", "")
    run = reject_run(deps.run_context(), run_id)
    return json_response(summary(run)) if run is not None else _no_run(run_id)
