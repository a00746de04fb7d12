"""devhost's pure parts: timer schedules, settings files, blob paths, route templates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devhost.bindings import FunctionSpec
from devhost.blobs import blob_from_event, parse_blob_path
from devhost.http import Router
from devhost.settings import ConfigError, load_local_settings, resolve
from devhost.timers import parse_schedule

START = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


def test_schedule_from_setting_is_ncrontab_with_seconds_first() -> None:
    schedule = parse_schedule("%RECONCILE_SCHEDULE%", {"RECONCILE_SCHEDULE": "0 */1 * * * *"})
    assert schedule.expression == "0 */1 * * * *"
    assert schedule.next_after(START) == START + timedelta(minutes=1)
    every_15s = parse_schedule("*/15 * * * * *", {})
    assert every_15s.next_after(START) == START + timedelta(seconds=15)
    weekdays_9am = parse_schedule("30 0 9 * * 1-5", {})  # second 30, minute 0, hour 9, Monday to Friday
    assert weekdays_9am.next_after(START) == datetime(2026, 11, 23, 9, 0, 30, tzinfo=UTC)  # 2026-11-20 is a Friday


def test_schedule_timespan_is_an_interval() -> None:
    schedule = parse_schedule("00:05:00", {})
    assert schedule.next_after(START) == START + timedelta(minutes=5)


def test_missed_occurrences_collapse_to_the_latest() -> None:
    schedule = parse_schedule("0 */10 * * * *", {})
    assert schedule.latest_until(START + timedelta(minutes=25)) == START + timedelta(minutes=20)


@pytest.mark.parametrize(
    ("raw", "env", "message"),
    [
        ("%MISSING%", {}, "names app setting MISSING, which is not set"),
        ("%SCHED%", {"SCHED": "*/5 * * * *"}, "NCRONTAB needs 6 fields"),
        ("%SCHED%", {"SCHED": "*/5 * * * *"}, "%SCHED% (= '*/5 * * * *')"),
        ("0 0 25 * * *", {}, "timer schedule 0 0 25 * * *"),
        ("00:00:00", {}, "longer than zero"),
    ],
)
def test_bad_schedules_name_the_schedule_and_setting(raw: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_schedule(raw, env)
    assert message in str(error.value)


def test_local_settings_never_override_the_environment(tmp_path: Path) -> None:
    values = {"A": "from file", "B": "from file", "N": 3, "T": True}
    (tmp_path / "local.settings.sample.json").write_text(json.dumps({"Values": values}))
    env = {"B": "from env"}
    applied = load_local_settings(tmp_path, env)
    assert env == {"A": "from file", "B": "from env", "N": "3", "T": "true"}
    assert "B" not in applied
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"A": "local wins over sample"}}))
    env = {}
    load_local_settings(tmp_path, env)
    assert env == {"A": "local wins over sample"}


def test_broken_settings_file_says_where(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text('{"Values": {"A": 1,}}')
    with pytest.raises(ConfigError, match=r"local.settings.json: invalid JSON at line 1 column"):
        load_local_settings(tmp_path, {})


def test_resolve_replaces_each_setting() -> None:
    assert resolve("%C%/in/%D%/{name}", {"C": "training", "D": "x"}) == "training/in/x/{name}"


def test_blob_path_binds_name_across_folders() -> None:
    path = parse_blob_path("%TRAINING_CONTAINER%/incoming/{name}", {"TRAINING_CONTAINER": "training"})
    assert (path.container, path.prefix) == ("training", "incoming/")
    assert path.match("training", "incoming/support-bot/2026-11-20.jsonl") == {"name": "support-bot/2026-11-20.jsonl"}
    assert path.match("training", "datasets/x.jsonl") is None
    assert path.match("other", "incoming/x.jsonl") is None
    typed = parse_blob_path("c/{model}/{file}.jsonl", {})
    assert typed.match("c", "bot/a/b.jsonl") == {"model": "bot", "file": "a/b"}
    with pytest.raises(ConfigError, match="container"):
        parse_blob_path("{container}/x", {})


def test_blob_created_event_names_its_blob() -> None:
    event = {"subject": "/blobServices/default/containers/training/blobs/incoming/bot/a b.jsonl"}
    assert blob_from_event(event) == ("training", "incoming/bot/a b.jsonl")
    by_url = {"subject": "", "data": {"url": "https://acct.blob.core.windows.net/training/incoming/a%20b.jsonl"}}
    assert blob_from_event(by_url) == ("training", "incoming/a b.jsonl")


def _http(name: str, route: str | None, methods: list[str] | None = None) -> FunctionSpec:
    trigger = {"type": "httpTrigger", "name": "req", "route": route, "methods": methods}
    return FunctionSpec(name=name, trigger=trigger, bindings=[trigger], func=lambda req: None)


def test_routes_most_specific_template_wins() -> None:
    router = Router(
        [
            _http("by_id", "api/models/{model}/datasets/{dataset_id}", ["GET"]),
            _http("upload", "api/models/{model}/datasets", ["POST"]),
            _http("status", "api/models/status", ["GET"]),
            _http("model", "api/models/{model}", ["GET"]),
            _http("files", "files/{*path}"),
            _http("numbered", "n/{id:int}/{opt?}"),
            _http("unrouted", None),
        ],
        prefix="",
    )

    def match(method: str, path: str) -> tuple[str, dict[str, str]] | None:
        found = router.match(method, path)
        return (found[0].spec.name, found[1]) if found else None

    assert match("GET", "/api/models/status") == ("status", {})
    assert match("GET", "/api/models/bot") == ("model", {"model": "bot"})
    assert match("GET", "/api/models/bot/datasets/d1") == ("by_id", {"model": "bot", "dataset_id": "d1"})
    assert match("POST", "/api/models/bot/datasets") == ("upload", {"model": "bot"})
    assert match("GET", "/api/models/bot/datasets") is None  # only POST is declared
    assert match("GET", "/api/models/a%2Fb") == ("model", {"model": "a/b"})
    assert match("DELETE", "/files/a/b/c.txt") == ("files", {"path": "a/b/c.txt"})
    assert match("GET", "/n/5") == ("numbered", {"id": "5"})
    assert match("GET", "/n/5/x") == ("numbered", {"id": "5", "opt": "x"})
    assert match("GET", "/n/five") is None
    assert match("GET", "/unrouted") == ("unrouted", {})  # no route: the function name
    assert Router([_http("h", "health")], prefix="api").match("GET", "/api/health") is not None
