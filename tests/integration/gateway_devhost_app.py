"""The function app, with the gateway's targets pointed at a stub scoring endpoint: for devhost tests and bench.

Why: the devhost runs the app in its own process, where a test cannot inject anything; this module is that
process's app (``python -m devhost --app tests.integration.gateway_devhost_app``). It uses the targets
module's one seam, ``set_resolver``, and reads the stub's URI and key from the JSON file named by
``GATEWAY_STUB_TARGET_FILE`` on every lookup, so a test can rotate the endpoint key while the host runs.
Everything else (routes, auth, ledger, cache, upstream client) is the real app.
"""

import json
import os
from pathlib import Path

from function_app import app  # noqa: F401 - the devhost looks for the module's FunctionApp
from shared.backends.base import ScoringTarget
from shared.gateway import targets
from shared.ledger import ModelRecord


def _stub_target(record: ModelRecord) -> ScoringTarget:
    conf = json.loads(Path(os.environ["GATEWAY_STUB_TARGET_FILE"]).read_text(encoding="utf-8"))
    return ScoringTarget(uri=conf["url"], headers={"Authorization": f"Bearer {conf['key']}"})


targets.set_resolver(_stub_target)
