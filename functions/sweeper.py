"""Triggers for sweeper (see shared/sweeper.py)."""

import azure.functions as func

bp = func.Blueprint()
