"""HTTP routes for models: their state and activity, waking a sleeping one, pinning (logic in shared/models.py).

Management routes: they inherit the app's function-key auth level in Azure (see function_app.py).
"""

import azure.functions as func

from functions import deps
from functions.http import error_response, handles_errors, json_response, not_found

bp = func.Blueprint()


def _unknown(model: str) -> func.HttpResponse:
    return not_found("model_not_found", f"model {model!r} is not known (GET /api/models lists them)")


def _model(req: func.HttpRequest) -> str:
    """The route's model name; an invalid one raises (answered 400 by ``handles_errors``)."""
    from shared.names import validate_model_name

    return validate_model_name(req.route_params.get("model", ""))


@bp.route(route="api/models", methods=["GET"])
def models_list(req: func.HttpRequest) -> func.HttpResponse:
    """Every model: state, versions, endpoint, last activity and when it will be considered idle."""
    from shared.models import list_model_views

    return json_response({"models": list_model_views(deps.settings(), deps.ledger())})


@bp.route(route="api/models/{model}", methods=["GET"])
@handles_errors
def models_get(req: func.HttpRequest) -> func.HttpResponse:
    from shared.models import get_model_view

    model = _model(req)
    view = get_model_view(deps.settings(), deps.ledger(), model)
    return json_response(view) if view is not None else _unknown(model)


@bp.route(route="api/models/{model}/wake", methods=["POST"])
@handles_errors
def models_wake(req: func.HttpRequest) -> func.HttpResponse:
    """Wake a sleeping model: 202 while the reconciler redeploys it; 200 when there is nothing to wake."""
    from shared.models import get_model_view, request_wake

    model = _model(req)
    settings, ledger = deps.settings(), deps.ledger()
    # An operator's wake also retries a failed wake before its backoff is over (requests wait for it).
    woke = request_wake(settings, ledger, model, reason="POST /api/models/{model}/wake", force=True)
    view = get_model_view(settings, ledger, model)
    if view is None:
        return _unknown(model)
    if woke:
        message = "waking: the reconciler redeploys the desired version; requests answer 503 until it is live"
        return json_response({**view, "message": message}, 202, headers={"Location": f"/api/models/{model}"})
    if view["state"] == "sleeping":
        return error_response(409, "nothing_to_deploy", f"model {model!r} is sleeping but has no version to deploy")
    return json_response({**view, "message": f"model {model!r} is {view['state']}, not sleeping: nothing to wake"})


def _pin(req: func.HttpRequest, pinned: bool) -> func.HttpResponse:
    from shared.models import get_model_view, set_pinned

    model = _model(req)
    settings, ledger = deps.settings(), deps.ledger()
    if set_pinned(ledger, model, pinned) is None:
        return _unknown(model)
    return json_response(get_model_view(settings, ledger, model))


@bp.route(route="api/models/{model}/pin", methods=["POST"])
@handles_errors
def models_pin(req: func.HttpRequest) -> func.HttpResponse:
    """Never put this model to sleep (until unpinned). Does not wake a sleeping model."""
    return _pin(req, True)


@bp.route(route="api/models/{model}/pin", methods=["DELETE"])
@handles_errors
def models_unpin(req: func.HttpRequest) -> func.HttpResponse:
    return _pin(req, False)
