"""Shared setup for the ingest tests: the training container on Azurite, sample data, and reading outputs back."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from shared.ledger import DatasetRecord, Ledger, RunRecord
from shared.timeutil import iso, utcnow
from tests.unit.chatdata_helpers import jsonl as chat_jsonl
from tests.unit.chatdata_helpers import run as prepare_rows


def chat_rows(n: int, tag: str = "") -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"{tag}How do I reset my autotune password, case {i}?"},
                {"role": "assistant", "content": f"Open Settings, choose Reset password and follow step {i}."},
            ]
        }
        for i in range(n)
    ]


def jsonl(rows: list[Any], extra: bytes = b"") -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows) + extra


def put_dataset(container, dataset_id: str, rows: list, days_ago: float, model: str = "bot") -> DatasetRecord:
    """A prepared dataset of ``model`` as preparation leaves it (its splits at 20% held out) and its record."""
    result = prepare_rows(chat_jsonl(*rows), test_percent=20)
    prefix = f"datasets/{model}/{dataset_id}/"
    for split in ("train", "test"):
        container.upload_blob(f"{prefix}{split}.jsonl", result.raw[split], overwrite=True)
    return DatasetRecord(
        model=model,
        dataset_id=dataset_id,
        state="prepared",
        prefix=prefix,
        prepared_at=iso(utcnow() - timedelta(days=days_ago)),
        report=result.report,
    )


@pytest.fixture
def container(settings):
    """The test's own training container (created empty)."""
    from shared.storage import blob_service

    client = blob_service(settings).get_container_client(settings.training_container)
    client.create_container()
    yield client
    client.delete_container()


@pytest.fixture
def no_training(monkeypatch, tmp_path):
    """Run submission fails fast on a missing base model: the run is created but no training process starts."""
    from shared.backends import reset_backends
    from shared.settings import reset_settings

    monkeypatch.setenv("LOCAL_BASE_MODEL", str(tmp_path / "no-such-model"))
    reset_settings()
    reset_backends()
    yield
    reset_backends()


def read_jsonl(container, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in container.download_blob(name).readall().splitlines()]


def runs_of(ledger: Ledger, model: str) -> list[RunRecord]:
    return ledger.query_eq(RunRecord, PartitionKey=model)
