"""Health report: version, settings validity and storage reachability, never a secret value.

Why no retries and short timeouts: a health probe must answer while the thing it checks is down. With the
storage SDK's default retry policy an unreachable account took about 70 s to report, longer than a load
balancer or ``az`` waits; here each service gets one try with a short connect timeout, and blob and table
are checked at once, so the answer comes in a few seconds at worst, 503 naming what is down.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared import __version__

# One try per service: connecting should take milliseconds; reading the answer a little more.
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 3
_PROBE = {"retry_total": 0, "connection_timeout": CONNECT_TIMEOUT_SECONDS, "read_timeout": READ_TIMEOUT_SECONDS}


def check_health() -> dict[str, Any]:
    from shared.settings import SettingsError, get_settings

    report: dict[str, Any] = {"status": "ok", "version": __version__}
    try:
        settings = get_settings()
    except SettingsError as exc:
        report.update(status="degraded", settings={"ok": False, "problems": exc.problems})
        return report
    report["settings"] = {"ok": True, "ml_backend": settings.ml_backend}
    with ThreadPoolExecutor(2, thread_name_prefix="health") as pool:
        blob, table = pool.submit(_probe_blob, settings), pool.submit(_probe_table, settings)
        services = {"blob": blob.result(), "table": table.result()}
    storage_ok = all(service["ok"] for service in services.values())
    report["storage"] = {"ok": storage_ok, **services}
    if not storage_ok:
        report["status"] = "degraded"
        report["down"] = [f"storage.{name}" for name, service in services.items() if not service["ok"]]
    return report


def _timed(probe: Any) -> dict[str, Any]:
    """``{"ok", "ms"}``, or ``{"ok": False, "error": <exception type>}``: the type only, since an SDK message can
    quote the request URL (a SAS token in a connection string would be in it)."""
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure means the service is not usable
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _probe_blob(settings: Any) -> dict[str, Any]:
    from shared.storage import blob_service

    return _timed(lambda: blob_service(settings, **_PROBE).get_service_properties(timeout=READ_TIMEOUT_SECONDS))


def _probe_table(settings: Any) -> dict[str, Any]:
    from shared.storage import table_service

    return _timed(lambda: table_service(settings, **_PROBE).get_service_properties())
