"""HTTP routes of the scoring gateway: OpenAI chat completions, the model list and Azure ML native scoring.

Thin by design: convert the request to plain values, call ``shared.gateway.service``, convert the reply.
The handlers are ``async`` so that many requests wait on their endpoints at once on one worker's event loop,
sharing one pooled HTTP client. The logic (and its docs) lives in ``shared/gateway/``.
"""

import time

import azure.functions as func

from functions import deps
from shared.gateway.service import Reply

bp = func.Blueprint()


def _headers(req: func.HttpRequest) -> dict[str, str]:
    return {name.lower(): value for name, value in req.headers.items()}


def _response(reply: Reply) -> func.HttpResponse:
    return func.HttpResponse(
        body=reply.body,
        status_code=reply.status,
        headers=reply.headers,
        mimetype=reply.media_type,
        charset="utf-8",
    )


@bp.function_name("gateway_chat_completions")
@bp.route(route="v1/chat/completions", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def chat_completions(req: func.HttpRequest) -> func.HttpResponse:
    started = time.perf_counter()
    return _response(await deps.gateway().chat_completions(_headers(req), req.get_body() or b"", started))


@bp.function_name("gateway_list_models")
@bp.route(route="v1/models", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def list_models(req: func.HttpRequest) -> func.HttpResponse:
    started = time.perf_counter()
    return _response(await deps.gateway().list_models(_headers(req), started))


@bp.function_name("gateway_get_model")
@bp.route(route="v1/models/{model}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def get_model(req: func.HttpRequest) -> func.HttpResponse:
    started = time.perf_counter()
    return _response(await deps.gateway().get_model(req.route_params.get("model", ""), _headers(req), started))


@bp.function_name("gateway_score")
@bp.route(route="api/models/{model}/score", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def score(req: func.HttpRequest) -> func.HttpResponse:
    started = time.perf_counter()
    model = req.route_params.get("model", "")
    return _response(await deps.gateway().score(model, _headers(req), req.get_body() or b"", started))
