"""HTTP routes for runs (see shared/runs/views.py and shared/runs/retry.py): list, detail, cancel, retry."""

import azure.functions as func

from functions.http import error_response, json_response

bp = func.Blueprint()


@bp.route(route="api/runs", methods=["GET"])
def runs_list(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runs.context import RunContext
    from shared.runs.views import RunQueryError, list_runs, parse_limit

    try:
        body = list_runs(
            RunContext.default(),
            model=req.params.get("model") or None,
            state=req.params.get("state") or None,
            limit=parse_limit(req.params.get("limit")),
            continuation=req.params.get("continuation") or None,
        )
    except RunQueryError as exc:
        return error_response(400, "invalid_parameter", str(exc), field=exc.field)
    return json_response(body)


@bp.route(route="api/runs/{run_id}", methods=["GET"])
def runs_get(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runs.context import RunContext
    from shared.runs.views import run_detail

    run_id = req.route_params.get("run_id", "")
    body = run_detail(RunContext.default(), run_id)
    if body is None:
        return error_response(404, "run_not_found", f"no run {run_id!r}")
    return json_response(body)


@bp.route(route="api/runs/{run_id}/cancel", methods=["POST"])
def runs_cancel(req: func.HttpRequest) -> func.HttpResponse:
    from shared.backends.base import BackendError
    from shared.runs.context import RunContext
    from shared.runs.views import RunStateError, cancel_run, summary

    run_id = req.route_params.get("run_id", "")
    try:
        run = cancel_run(RunContext.default(), run_id)
    except RunStateError as exc:
        return error_response(409, "run_not_cancelable", str(exc))
    except BackendError as exc:
        return error_response(502, "backend_error", str(exc))
    if run is None:
        return error_response(404, "run_not_found", f"no run {run_id!r}")
    return json_response(summary(run), 202)


@bp.route(route="api/runs/{run_id}/retry", methods=["POST"])
def runs_retry(req: func.HttpRequest) -> func.HttpResponse:
    from shared.runs.context import RunContext
    from shared.runs.retry import RetryStateError, retry_run
    from shared.runs.views import summary

    run_id = req.route_params.get("run_id", "")
    try:
        run = retry_run(RunContext.default(), run_id)
    except RetryStateError as exc:
        return error_response(409, "run_not_retryable", str(exc))
    if run is None:
        return error_response(404, "run_not_found", f"no run {run_id!r}")
    body = {**summary(run), "attempt": run.details.get("attempt"), "previous_error": run.details.get("previous_error")}
    return json_response(body, 202)
