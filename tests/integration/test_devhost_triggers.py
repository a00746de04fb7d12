"""devhost's blob triggers, timers and shutdown, each against its own devhost subprocess and container."""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from azure.storage.blob import BlobServiceClient

from devhost.testing import DevHostProcess
from tests.integration.test_devhost import EVENTS, FIXTURE_APP, fixture_env, read_records, wait_for_records


@pytest.fixture
def env(azurite: str, tmp_path: Path) -> dict[str, str]:
    return fixture_env(azurite, tmp_path)


@pytest.fixture
def container(env: dict[str, str], azurite: str):
    client = BlobServiceClient.from_connection_string(azurite).get_container_client(env["TRAINING_CONTAINER"])
    client.create_container()
    yield client
    client.delete_container()


def fast_host(env: dict[str, str], poll: str = "0.2") -> DevHostProcess:
    return DevHostProcess(FIXTURE_APP, env=env, args=["--blob-poll-seconds", poll])


def test_blob_trigger_fires_once_per_blob_across_restart(env: dict[str, str], container) -> None:
    record = Path(env["DEVHOST_TEST_RECORD"])
    container.upload_blob("incoming/a.jsonl", b"first")  # there before the host starts: delivered at start
    container.upload_blob("elsewhere/ignored.jsonl", b"not under incoming/")
    with fast_host(env):
        (row,) = wait_for_records(record, "on_blob", name="incoming/a.jsonl")
        assert row["content"] == "first"
        assert row["client"] == "azure.storage.blob._blob_client.BlobClient"  # the SDK type, not bytes
        container.upload_blob("incoming/sub/b.jsonl", b"second")
        assert len(wait_for_records(record, "on_blob", name="incoming/sub/b.jsonl")) == 1
        time.sleep(1)  # several more scans
    with fast_host(env) as restarted:
        container.upload_blob("incoming/c.jsonl", b"third")
        assert len(wait_for_records(record, "on_blob", name="incoming/c.jsonl")) == 1
        time.sleep(1)
        names = sorted(row["name"] for row in read_records(record, "on_blob"))
        assert names == ["incoming/a.jsonl", "incoming/c.jsonl", "incoming/sub/b.jsonl"]  # nothing re-fired
        container.upload_blob("incoming/a.jsonl", b"changed", overwrite=True)  # a new ETag is a new delivery
        rows = wait_for_records(record, "on_blob", count=2, name="incoming/a.jsonl")
        assert [row["content"] for row in rows] == ["first", "changed"]
        restarted.wait_for_log("Executed 'Functions.on_blob' (Succeeded")


def test_blob_trigger_input_stream_and_path_pattern(env: dict[str, str], container) -> None:
    record = Path(env["DEVHOST_TEST_RECORD"])
    with fast_host(env):
        container.upload_blob("stream/notes.txt", b"hello stream")
        container.upload_blob("stream/notes.csv", b"not .txt: no match")
        (row,) = wait_for_records(record, "on_stream")
        assert row["name"] == f"{env['TRAINING_CONTAINER']}/stream/notes.txt"
        assert row["length"] == len(b"hello stream")
        assert row["content"] == "hello stream"
        time.sleep(0.6)
        assert len(read_records(record, "on_stream")) == 1


def test_failing_blob_function_is_retried_then_given_up(env: dict[str, str], container) -> None:
    record = Path(env["DEVHOST_TEST_RECORD"])
    with fast_host(env) as host:
        container.upload_blob("incoming/bad.jsonl", b"fail")
        assert len(wait_for_records(record, "on_blob", count=5, name="incoming/bad.jsonl")) == 5
        time.sleep(1)
        assert len(read_records(record, "on_blob")) == 5  # five tries per ETag, like Azure, then poison
        host.wait_for_log("failed 5 times; giving up")
        assert httpx.get(f"{host.url}/admin/host/status").json()["state"] == "Running"


def test_blob_webhook_delivers_once_with_the_same_receipts(env: dict[str, str], container) -> None:
    record = Path(env["DEVHOST_TEST_RECORD"])
    with fast_host(env, poll="3600") as host:  # scans only at start: deliveries below come from the webhook
        container.upload_blob("incoming/hook.jsonl", b"via webhook")
        event = json.loads((EVENTS / "storage-blob-created.eventgrid.json").read_text())[0]
        event["subject"] = f"/blobServices/default/containers/{env['TRAINING_CONTAINER']}/blobs/incoming/hook.jsonl"
        url = f"{host.url}/runtime/webhooks/blobs"
        params = {"functionName": "Host.Functions.on_blob"}
        headers = {"aeg-event-type": "Notification"}
        for _ in range(2):  # Event Grid delivers at least once: the second is a duplicate
            assert httpx.post(url, params=params, json=[event], headers=headers).status_code == 202
        rows = wait_for_records(record, "on_blob", name="incoming/hook.jsonl")
        assert len(rows) == 1, host.log()
        row = rows[0]
        assert row["content"] == "via webhook"
        handshake = json.loads((EVENTS / "subscription-validation.eventgrid.json").read_text())
        response = httpx.post(url, params=params, json=handshake, headers={"aeg-event-type": "SubscriptionValidation"})
        assert response.json() == {"validationResponse": handshake[0]["data"]["validationCode"]}
        assert httpx.post(url, params=params, content=b"nope", headers=headers).status_code == 400
        # Admin invoke runs the function now, receipt or not.
        response = httpx.post(
            f"{host.url}/admin/functions/on_blob", json={"input": f"{container.container_name}/incoming/hook.jsonl"}
        )
        assert response.status_code == 202
        assert len(wait_for_records(record, "on_blob", count=2, name="incoming/hook.jsonl")) == 2


def test_timer_with_setting_schedule_fires(env: dict[str, str]) -> None:
    record = Path(env["DEVHOST_TEST_RECORD"])
    with fast_host({**env, "TICK_SCHEDULE": "* * * * * *"}):  # every second, from %TICK_SCHEDULE%
        rows = wait_for_records(record, "tick", count=2)
        assert len(rows) >= 2
        assert rows[0]["past_due"] is False
        assert rows[1]["status"]["Last"] is not None
        assert len(read_records(record, "yearly")) == 1  # run_on_startup, once


def test_bad_timer_schedule_disables_only_that_function(env: dict[str, str]) -> None:
    with fast_host({**env, "TICK_SCHEDULE": "*/5 * * * *"}) as host:  # five fields: not NCRONTAB
        status = httpx.get(f"{host.url}/admin/host/status").json()
        assert "NCRONTAB needs 6 fields" in status["errors"]["tick"]
        assert "TICK_SCHEDULE" in status["errors"]["tick"]
        assert httpx.get(f"{host.url}/api/async").text == "async ok"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_runs_atexit_and_leaves_no_child_process(env: dict[str, str], sig: signal.Signals) -> None:
    record = Path(env["DEVHOST_TEST_RECORD"])
    host = fast_host(env).start()
    try:
        pids = httpx.post(f"{host.url}/api/spawn", timeout=30).json()
        children = [psutil.Process(pids["kept"]), psutil.Process(pids["leaked"])]
        assert all(child.is_running() for child in children)
    finally:
        code = host.stop(sig)
    assert code == 0, host.log()[-3000:]
    (row,) = read_records(record, "atexit")  # the app's own atexit hook ran
    assert row["pids"] == [pids["kept"]]
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert f"{sig.name}: shutting down" in host.log()
    assert "ending 1 process(es) the app left running" in host.log()  # the leaked one, ended by the host


def test_shutdown_lets_a_running_request_finish(env: dict[str, str]) -> None:
    record = Path(env["DEVHOST_TEST_RECORD"])
    host = fast_host(env).start()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.get, f"{host.url}/api/slow", params={"seconds": "1.5"}, timeout=30)
        wait_for_records(record, "slow", phase="start")
        code = host.stop(signal.SIGTERM)
        assert pending.result().text == "slept 1.5"
    assert code == 0, host.log()[-3000:]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{host.url}/api/async")


def test_shutdown_does_not_wait_forever_for_a_hung_invocation(env: dict[str, str]) -> None:
    record = Path(env["DEVHOST_TEST_RECORD"])
    host = DevHostProcess(FIXTURE_APP, env=env, args=["--grace-seconds", "0.5"]).start()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(httpx.get, f"{host.url}/api/slow", params={"seconds": "60"}, timeout=60)
        wait_for_records(record, "slow", phase="start")
        started = time.monotonic()
        code = host.stop(signal.SIGTERM)
    assert code == 1  # invocations were cut off: say so
    assert time.monotonic() - started < 20
    assert "still running after" in host.log()
    assert len(read_records(record, "atexit")) == 1  # the app's atexit hooks ran all the same


def most_at_once(rows: list[dict]) -> int:
    """The most ``slow`` invocations running at the same time, from their start/end records (written in order)."""
    running = peak = 0
    for row in rows:
        running += 1 if row["phase"] == "start" else -1
        peak = max(peak, running)
    return peak


def test_sync_functions_run_on_the_workers_thread_pool_size(env: dict[str, str]) -> None:
    """The Python worker runs sync functions on min(32, CPUs + 4) threads, or PYTHON_THREADPOOL_THREAD_COUNT."""
    import os

    record = Path(env["DEVHOST_TEST_RECORD"])
    with fast_host({**env, "PYTHON_THREADPOOL_THREAD_COUNT": "2"}) as host, ThreadPoolExecutor(5) as pool:
        calls = [pool.submit(httpx.get, f"{host.url}/api/slow", params={"seconds": "1"}, timeout=60) for _ in range(5)]
        assert [call.result().status_code for call in calls] == [200] * 5
        assert most_at_once(read_records(record, "slow")) == 2
        assert httpx.get(f"{host.url}/admin/host/status").json()["syncThreads"] == 2
    with fast_host({**env, "PYTHON_THREADPOOL_THREAD_COUNT": "many"}) as host:  # not a number: the default, warned
        assert httpx.get(f"{host.url}/admin/host/status").json()["syncThreads"] == min(32, (os.cpu_count() or 1) + 4)
        assert "PYTHON_THREADPOOL_THREAD_COUNT" in host.log()
