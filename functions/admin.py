"""Operational routes: health."""

import azure.functions as func

from functions.http import json_response

bp = func.Blueprint()


@bp.route(route="api/health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared.health import check_health

    report = check_health()
    return json_response(report, 200 if report["status"] == "ok" else 503)
