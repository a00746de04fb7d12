"""Composition root of the Functions app: one FunctionApp, one blueprint per concern, no logic.

Importing this module is every cold start, so it imports only azure.functions and the thin trigger
modules; the application (``shared/``) loads its SDKs on first use.
"""

import azure.functions as func

from functions import admin, deploy, events, gateway, ingest, models, runs, sweeper
from shared.telemetry import configure_at_startup

# Once per process, before any function runs: an instance that only serves HTTP exports too, and the SDK's
# per-request logging is quiet from the first storage call (the exporter loads on a background thread).
configure_at_startup()

# Management routes need a function key in Azure (func start and the devhost do not check keys locally);
# the chat gateway and health routes opt out explicitly and check their own API keys.
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (admin.bp, ingest.bp, events.bp, deploy.bp, gateway.bp, models.bp, runs.bp, sweeper.bp):
    app.register_functions(blueprint)
