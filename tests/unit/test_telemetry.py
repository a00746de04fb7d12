"""shared.telemetry: log_context ids on records, isolation between tasks, cheap import, real export.

The export test runs the real azure-monitor-opentelemetry exporter in a child process (exporters are
process-wide and cannot be uninstalled) against a loopback server standing in for Application Insights'
ingestion endpoint, and checks that the ids arrive as customDimensions (envelope properties).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared.telemetry import ContextFilter, current_context, log_context

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("shared.test_telemetry")


def test_log_context_nests_merges_and_restores() -> None:
    assert current_context() == {}
    with log_context(model="support-bot") as outer:
        assert outer == {"model": "support-bot"}
        with log_context(run_id="support-bot-1a2b", job_name=None, dataset_id="") as inner:
            assert inner == {"model": "support-bot", "run_id": "support-bot-1a2b"}
            with log_context(model="other"):
                assert current_context()["model"] == "other"
            assert current_context() == inner
        assert current_context() == {"model": "support-bot"}
    assert current_context() == {}


def test_records_from_child_loggers_carry_the_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log.info("outside")
    with log_context(run_id="r-1", model="m", job_name="job-7"):
        logging.getLogger("shared.some.deep.module").info("inside")
    outside, inside = caplog.records
    assert not hasattr(outside, "run_id")
    assert (inside.run_id, inside.model, inside.job_name) == ("r-1", "m", "job-7")
    assert not hasattr(inside, "dataset_id")


def test_extra_values_win_and_do_not_collide(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with log_context(run_id="from-context", model="m"):
        log.info("explicit", extra={"run_id": "from-extra"})
    [record] = caplog.records
    assert record.run_id == "from-extra"
    assert record.model == "m"


def test_concurrent_tasks_keep_their_own_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def handler(run_id: str) -> None:
        with log_context(run_id=run_id):
            for step in range(3):
                await asyncio.sleep(0)
                log.info("step %d", step)

    async def main() -> None:
        await asyncio.gather(handler("a"), handler("b"))

    asyncio.run(main())
    by_run: dict[str, int] = {}
    for record in caplog.records:
        by_run[record.run_id] = by_run.get(record.run_id, 0) + 1
    assert by_run == {"a": 3, "b": 3}


def test_filter_works_on_a_handler_of_ones_own() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    with log_context(job_name="job-1"):
        assert ContextFilter().filter(record) is True
    assert record.job_name == "job-1"


def _run_child(code: str, env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("APPLICATIONINSIGHTS_", "OTEL_", "PYTHON_APPLICATIONINSIGHTS"))
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "TMPDIR": str(tmp_path),  # the exporter's offline retry storage
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # no SDK stats to Microsoft
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",  # no Azure VM metadata (IMDS) lookups
            **env_extra,
        }
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_import_is_cheap_and_nothing_exports_without_a_connection_string(tmp_path: Path) -> None:
    result = _run_child(
        """
        import sys
        import shared.telemetry as t
        heavy = [m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry", "azure.core"))]
        assert heavy == [], heavy
        with t.log_context(run_id="r"):
            pass
        assert t.configure_telemetry() is False
        assert not any(m.startswith("azure.monitor") for m in sys.modules)
        print("ok")
        """,
        {},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_configure_never_raises_on_bad_settings(tmp_path: Path) -> None:
    result = _run_child(
        """
        import shared.telemetry as t
        with t.log_context(run_id="r"):  # settings cannot load: no exception escapes
            pass
        print(t.configure_telemetry())
        """,
        {"AzureWebJobsStorage": "", "TEST_SPLIT_PERCENT": "lots"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert "telemetry not configured" in result.stderr


class _Ingestion:
    """Stands in for Application Insights' ingestion endpoint (POST /v2.1/track)."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        ingestion = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                items = json.loads(body)
                ingestion.envelopes.extend(items if isinstance(items, list) else [items])
                reply = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


@pytest.fixture
def ingestion() -> Iterator[_Ingestion]:
    server = _Ingestion()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def test_logs_reach_application_insights_with_the_ids_as_custom_dimensions(
    ingestion: _Ingestion, tmp_path: Path
) -> None:
    connection = f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint={ingestion.url}"
    result = _run_child(
        """
        import logging
        from opentelemetry._logs import get_logger_provider
        import shared.telemetry as t

        log = logging.getLogger("shared.runs")
        with t.log_context(run_id="support-bot-1a2b", model="support-bot"):
            with t.log_context(job_name="clever_job_42"):
                log.warning("job submitted")
        assert t.configure_telemetry() is True
        t._reset_for_tests()
        assert t.configure_telemetry() is True  # a second configuration finds the first and adds nothing
        otel = [h for h in logging.getLogger().handlers if type(h).__module__.startswith("opentelemetry")]
        assert len(otel) == 1, otel
        get_logger_provider().force_flush()
        print("flushed")
        """,
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": connection},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    messages = [e for e in ingestion.envelopes if e.get("data", {}).get("baseType") == "MessageData"]
    submitted = [e["data"]["baseData"] for e in messages if e["data"]["baseData"]["message"] == "job submitted"]
    assert len(submitted) == 1, ingestion.envelopes
    properties = submitted[0]["properties"]
    assert properties["run_id"] == "support-bot-1a2b"
    assert properties["model"] == "support-bot"
    assert properties["job_name"] == "clever_job_42"


def test_the_app_configures_export_at_start_up_and_quiets_the_sdk_loggers(
    ingestion: _Ingestion, tmp_path: Path
) -> None:
    # An instance that only serves HTTP never enters log_context: export must not wait for one. Worker 4.34
    # (PYTHON_ENABLE_OPENTELEMETRY) leaves the exporter to the app, so importing function_app configures it.
    connection = f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint={ingestion.url}"
    result = _run_child(
        """
        import logging
        import function_app  # every cold start
        import shared.telemetry as t

        sdk = (
            "azure.core.pipeline.policies.http_logging_policy",
            "azure.identity",
            "azure.monitor.opentelemetry.exporter",
        )
        assert all(logging.getLogger(name).getEffectiveLevel() >= logging.WARNING for name in sdk)  # at once
        t._startup.join(timeout=60)
        from opentelemetry._logs import get_logger_provider
        otel = [h for h in logging.getLogger().handlers if type(h).__module__.startswith("opentelemetry")]
        assert len(otel) == 1, otel
        logging.getLogger("functions.gateway").warning("served a chat completion")
        logging.getLogger("azure.core.pipeline.policies.http_logging_policy").info("Request URL: 'https://x/'")
        get_logger_provider().force_flush()
        print("flushed")
        """,
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": connection, "PYTHON_ENABLE_OPENTELEMETRY": "true"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    messages = [e["data"]["baseData"]["message"] for e in ingestion.envelopes if e["data"]["baseType"] == "MessageData"]
    assert "served a chat completion" in messages
    assert not any("Request URL" in message for message in messages)  # SDK HTTP logging is not exported
    assert not any("Transmission" in message for message in messages)  # nor the exporter's own logs


def test_start_up_without_a_connection_string_loads_no_exporter(tmp_path: Path) -> None:
    result = _run_child(
        """
        import sys
        import function_app
        import shared.telemetry as t

        t._startup.join(timeout=60)
        assert t.configure_telemetry() is False
        assert not [m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry.sdk"))]
        print("ok")
        """,
        {},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
