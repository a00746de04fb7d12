"""Triggers for deploy (see shared/deploy.py)."""

import azure.functions as func

bp = func.Blueprint()
