"""Telemetry: structured logs that carry run id, model and job name, exported to Application Insights.

Usage (in a trigger or anywhere in ``shared/``)::

    from shared.telemetry import log_context

    with log_context(run_id=run.run_id, model=run.model, job_name=job_name):
        log.info("job submitted")  # -> customDimensions.run_id / .model / .job_name in App Insights

``log_context(run_id=, model=, job_name=, dataset_id=)`` nests: an inner block adds or overrides ids and
the outer ones come back on exit; ``None`` or empty values are ignored, so callers pass what they know.
The ids live in a ``contextvars.ContextVar`` (per thread / per asyncio task): a thread you start yourself
does not inherit them unless you run it with ``contextvars.copy_context().run``.

Why a filter and not a log-record factory: ``ContextFilter`` adds the ids as record attributes only when the
record does not already carry them, so ``log.info(..., extra={"run_id": ...})`` keeps working (a factory
would make ``extra`` raise on the duplicate key). ``log_context`` attaches the filter to the root logger's
handlers on entry, which covers the OpenTelemetry handler (record attributes become customDimensions),
the Functions worker's handler and pytest's caplog alike.

Export: host.json ``telemetryMode: OpenTelemetry``, and the infra sets both worker switches: newer Python
workers read ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` and configure azure-monitor-opentelemetry themselves;
worker 4.34 (what Azure runs for Python 3.11 today) reads ``PYTHON_ENABLE_OPENTELEMETRY``, which only wires
trace context, so the app must configure the exporter. ``configure_at_startup()`` (called by function_app.py,
so on every cold start, HTTP-only instances included) quiets the SDK's per-request loggers at once and configures
the exporter on a background thread when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (Entra ID auth from
``APPLICATIONINSIGHTS_AUTHENTICATION_STRING``); it finds and keeps an exporter the worker installed, and the
import of function_app stays cheap (azure.monitor loads on that thread). Elsewhere (CLI) the first
``log_context`` configures it; never twice.

Follow one run end to end (Application Insights > Logs)::

    union traces, exceptions
    | where tostring(customDimensions.run_id) == "<run id>"
    | project timestamp, severityLevel, operation_Name, message,
              model = tostring(customDimensions.model), job = tostring(customDimensions.job_name)
    | order by timestamp asc
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

from shared.settings import Settings

__all__ = ["FIELDS", "ContextFilter", "configure_at_startup", "configure_telemetry", "current_context", "log_context"]

log = logging.getLogger(__name__)

FIELDS = ("run_id", "model", "job_name", "dataset_id")
# Chatty loggers that would bill per HTTP request if exported at INFO: the SDK's HTTP logging (two records per
# storage call), token refreshes, and the exporter's own upload logs ("Transmission succeeded").
_QUIET_LOGGERS = (
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",
    "azure.monitor",  # the exporter's upload logs among them (azure.monitor.opentelemetry.exporter)
    "urllib3",
)
_APP_LOGGERS = ("shared", "functions", "devhost")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("autotune_log_context", default=_EMPTY)

_lock = threading.Lock()
_configured = False
_exporting = False
_startup: threading.Thread | None = None  # the start-up configuration thread (tests join it)


class ContextFilter(logging.Filter):
    """Adds the current ``log_context`` ids to each record it sees (never overwriting ``extra`` values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


_FILTER = ContextFilter()


def current_context() -> dict[str, str]:
    """The ids in effect here (a copy): what a log record written now would carry."""
    return dict(_context.get())


@contextmanager
def log_context(
    *,
    run_id: str | None = None,
    model: str | None = None,
    job_name: str | None = None,
    dataset_id: str | None = None,
) -> Iterator[dict[str, str]]:
    """Tag every log record written inside the block with these ids (merged over any outer block's)."""
    given = {"run_id": run_id, "model": model, "job_name": job_name, "dataset_id": dataset_id}
    merged = {**_context.get(), **{key: str(value) for key, value in given.items() if value not in (None, "")}}
    token = _context.set(MappingProxyType(merged))
    _attach_filter()
    if not _configured:
        configure_telemetry()
    try:
        yield dict(merged)
    finally:
        _context.reset(token)


def _attach_filter() -> None:
    """Put the filter on the root logger's handlers that lack it (handlers can be added at any time)."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def configure_telemetry(settings: Settings | None = None) -> bool:
    """Once per process: apply LOG_LEVEL and, with a connection string, export to Application Insights.

    Returns True when logs are exported (by us or by whoever configured OpenTelemetry first). Never raises:
    telemetry must not take a function down with it.
    """
    global _configured, _exporting
    if _configured:
        return _exporting
    with _lock:
        if _configured:
            return _exporting
        _configured = True
        _quiet_sdk_loggers()
        try:
            if settings is None:
                from shared.settings import get_settings

                settings = get_settings()
            _apply_log_levels(settings.log_level)
            if settings.appinsights_connection_string:
                _exporting = _start_exporter(settings.appinsights_connection_string)
        except Exception:  # a telemetry problem is logged, never raised into the caller
            log.warning("telemetry not configured", exc_info=True)
        _attach_filter()
        return _exporting


def configure_at_startup() -> threading.Thread | None:
    """At import of the app (every cold start): quiet the SDK loggers now, configure export in the background.

    Cheap on the cold path: setting logger levels, plus starting a thread that reads the settings and, only
    with a connection string, imports and installs the exporter. Returns that thread (tests join it), or None
    when telemetry was configured already.
    """
    _quiet_sdk_loggers()
    _attach_filter()
    if _configured:
        return None
    global _startup
    _startup = threading.Thread(target=configure_telemetry, name="autotune-telemetry", daemon=True)
    _startup.start()
    return _startup


def _apply_log_levels(level: str) -> None:
    """LOG_LEVEL for the app's loggers; the default INFO leaves them as the host configured them."""
    if level != "INFO":
        for name in _APP_LOGGERS:
            logging.getLogger(name).setLevel(level)


def _quiet_sdk_loggers() -> None:
    """Exported log lines are billed: keep per-request SDK chatter at WARNING unless asked otherwise."""
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _start_exporter(connection_string: str) -> bool:
    if _otel_already_configured():
        log.debug("OpenTelemetry already configured (Functions worker); not configuring it again")
        return True
    from azure.monitor.opentelemetry import configure_azure_monitor

    # Entra ID auth (local auth is off in our Application Insights) comes from
    # APPLICATIONINSIGHTS_AUTHENTICATION_STRING, which the exporter reads itself.
    configure_azure_monitor(connection_string=connection_string, logger_name="", enable_live_metrics=False)
    _attach_filter()
    log.info("exporting telemetry to Application Insights")
    return True


def _otel_already_configured() -> bool:
    """True when an SDK logger provider is installed (the worker, or an earlier configure, did it)."""
    from opentelemetry._logs import get_logger_provider

    return type(get_logger_provider()).__module__.startswith("opentelemetry.sdk")


def _reset_for_tests() -> None:
    """Forget that configuration ran (tests only; exporters already installed stay installed)."""
    global _configured, _exporting
    with _lock:
        _configured = False
        _exporting = False
