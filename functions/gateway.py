"""Triggers for gateway (see shared/gateway.py)."""

import azure.functions as func

bp = func.Blueprint()
