"""Triggers for events (see shared/events.py)."""

import azure.functions as func

bp = func.Blueprint()
