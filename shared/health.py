"""Health report: version, settings validity and storage reachability, never a secret value."""

from __future__ import annotations

import time
from typing import Any

from shared import __version__


def check_health() -> dict[str, Any]:
    from shared.settings import SettingsError, get_settings

    report: dict[str, Any] = {"status": "ok", "version": __version__}
    try:
        settings = get_settings()
    except SettingsError as exc:
        report.update(status="degraded", settings={"ok": False, "problems": exc.problems})
        return report
    report["settings"] = {"ok": True, "ml_backend": settings.ml_backend}
    started = time.perf_counter()
    try:
        from shared.storage import blob_service

        blob_service(settings).get_service_properties(timeout=5)
        report["storage"] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as exc:  # noqa: BLE001 - any failure means storage is not usable
        report.update(status="degraded", storage={"ok": False, "error": type(exc).__name__})
    return report
