"""MAX_DROP_BYTES is sized from the measured preparation throughput and host.json's functionTimeout."""

from __future__ import annotations

import json
from pathlib import Path

from shared.ingest_limits import ASSUMED_AZURE_BYTES_PER_SECOND, TIMEOUT_SHARE
from shared.settings import SPEC

ROOT = Path(__file__).resolve().parents[2]


def _seconds(hhmmss: str) -> int:
    hours, minutes, seconds = (int(part) for part in hhmmss.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_the_default_max_drop_bytes_fits_the_function_timeout() -> None:
    timeout = _seconds(json.loads((ROOT / "host.json").read_text())["functionTimeout"])
    default = int(next(spec.default for spec in SPEC if spec.env == "MAX_DROP_BYTES"))
    budget = ASSUMED_AZURE_BYTES_PER_SECOND * timeout * TIMEOUT_SHARE
    assert default <= budget, f"MAX_DROP_BYTES {default} needs more than {TIMEOUT_SHARE:.0%} of {timeout} s"
    assert default >= budget / 2, "needlessly small: re-size it from the measured throughput"
