"""One isolated namespace per test on a shared Azurite: its own tables, container and local state folder.

Why: tests (and developers running them side by side) share one Azurite; a fresh table prefix and container per
test means no test ever sees another's datasets, runs or models.
"""

from __future__ import annotations

import uuid
from pathlib import Path


def isolated_env(azurite: str, state_dir: Path, **extra: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": azurite,
        "LEDGER_TABLE_PREFIX": f"t{suffix}",
        "TRAINING_CONTAINER": f"training-{suffix}",
        "ML_BACKEND": "local",
        "LOCAL_STATE_DIR": str(state_dir),
        "TRAINING_DEBOUNCE_SECONDS": "0",  # one upload trains at once; the coalescing tests set their own window
        **extra,
    }
