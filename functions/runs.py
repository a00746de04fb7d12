"""HTTP routes for runs (see shared/runs.py)."""

import azure.functions as func

bp = func.Blueprint()
