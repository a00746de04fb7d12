"""HTTP routes for models: their state and activity, waking a sleeping one, pinning (logic in shared/models.py).

Management routes: they inherit the app's function-key auth level in Azure (see function_app.py).
"""

import azure.functions as func

from functions.http import error_response, json_response

bp = func.Blueprint()


def _context():
    from shared.ledger import get_ledger
    from shared.settings import get_settings

    return get_settings(), get_ledger()


def _unknown(model: str) -> func.HttpResponse:
    return error_response(404, "model_not_found", f"model {model!r} is not known (GET /api/models lists them)")


def _model(req: func.HttpRequest) -> tuple[str, func.HttpResponse | None]:
    """The route's model name, or the 400 that says why it is not a valid one."""
    from shared.names import InvalidNameError, validate_model_name

    model = req.route_params.get("model", "")
    try:
        validate_model_name(model)
    except InvalidNameError as exc:
        return model, error_response(400, "invalid_model_name", str(exc))
    return model, None


@bp.route(route="api/models", methods=["GET"])
def models_list(req: func.HttpRequest) -> func.HttpResponse:
    """Every model: state, versions, endpoint, last activity and when it will be considered idle."""
    from shared.models import list_model_views

    settings, ledger = _context()
    return json_response({"models": list_model_views(ledger, settings)})


@bp.route(route="api/models/{model}", methods=["GET"])
def models_get(req: func.HttpRequest) -> func.HttpResponse:
    from shared.models import get_model_view

    model, invalid = _model(req)
    if invalid:
        return invalid
    settings, ledger = _context()
    view = get_model_view(ledger, settings, model)
    return json_response(view) if view is not None else _unknown(model)


@bp.route(route="api/models/{model}/wake", methods=["POST"])
def models_wake(req: func.HttpRequest) -> func.HttpResponse:
    """Wake a sleeping model: 202 while the reconciler redeploys it; 200 when there is nothing to wake."""
    from shared.models import get_model_view, request_wake

    model, invalid = _model(req)
    if invalid:
        return invalid
    settings, ledger = _context()
    woke = request_wake(ledger, model, reason="POST /api/models/{model}/wake", settings=settings)
    view = get_model_view(ledger, settings, model)
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

    model, invalid = _model(req)
    if invalid:
        return invalid
    settings, ledger = _context()
    if set_pinned(ledger, model, pinned) is None:
        return _unknown(model)
    return json_response(get_model_view(ledger, settings, model))


@bp.route(route="api/models/{model}/pin", methods=["POST"])
def models_pin(req: func.HttpRequest) -> func.HttpResponse:
    """Never put this model to sleep (until unpinned). Does not wake a sleeping model."""
    return _pin(req, True)


@bp.route(route="api/models/{model}/pin", methods=["DELETE"])
def models_unpin(req: func.HttpRequest) -> func.HttpResponse:
    return _pin(req, False)
