"""HTTP routes for models (see shared/models.py)."""

import azure.functions as func

bp = func.Blueprint()
