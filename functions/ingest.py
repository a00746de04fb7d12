"""Triggers for ingest (see shared/ingest.py)."""

import azure.functions as func

bp = func.Blueprint()
