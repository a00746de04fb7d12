"""The ledger against a real Azurite: records round-trip, and concurrent writers never lose an update."""

import threading

import pytest

from shared.ledger import AlreadyExistsError, ConflictError, Ledger, ModelRecord, RunRecord


def test_run_record_round_trips_with_json_fields(ledger: Ledger):
    run = RunRecord(model="support-bot", run_id="support-bot-abc", dataset_id="abc", parameters={"lr": 5e-6})
    run.transition("submitted")
    ledger.create(run)
    loaded = ledger.get(RunRecord, "support-bot", "support-bot-abc")
    assert loaded is not None
    assert loaded.parameters == {"lr": 5e-6}
    assert loaded.timeline[0][0] == "submitted"
    assert loaded.etag


def test_create_twice_is_reported(ledger: Ledger):
    ledger.create(ModelRecord(model="m1"))
    with pytest.raises(AlreadyExistsError):
        ledger.create(ModelRecord(model="m1"))


def test_two_writers_one_wins_the_other_sees_the_conflict(ledger: Ledger):
    ledger.create(ModelRecord(model="race"))
    first = ledger.get(ModelRecord, "models", "race")
    second = ledger.get(ModelRecord, "models", "race")
    first.desired_version = "1"
    ledger.save(first)
    second.desired_version = "2"
    with pytest.raises(ConflictError):
        ledger.save(second)
    assert ledger.get(ModelRecord, "models", "race").desired_version == "1"


def test_concurrent_mutations_are_all_applied(ledger: Ledger):
    ledger.create(ModelRecord(model="counter", desired_version="0"))

    def bump(current):
        current.desired_version = str(int(current.desired_version) + 1)
        return current

    threads = [
        threading.Thread(target=ledger.mutate, args=(ModelRecord, "models", "counter", bump, 50)) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.get(ModelRecord, "models", "counter").desired_version == "6"


def test_lease_is_exclusive_until_released(ledger: Ledger):
    assert ledger.acquire_lease("model:a", "worker-1", 30)
    assert not ledger.acquire_lease("model:a", "worker-2", 30)
    assert ledger.acquire_lease("model:a", "worker-1", 30)  # renewal by the holder
    ledger.release_lease("model:a", "worker-1")
    assert ledger.acquire_lease("model:a", "worker-2", 30)


def test_query_eq_quotes_values(ledger: Ledger):
    ledger.create(RunRecord(model="m", run_id="r1", job_name="job'1"))
    ledger.create(RunRecord(model="m", run_id="r2", job_name="job2"))
    assert [r.run_id for r in ledger.query_eq(RunRecord, job_name="job'1")] == ["r1"]
