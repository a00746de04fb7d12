"""The blob trigger leaves no connection open per blob: the bound client only names the blob.

The real Functions worker caches the SDK ``BlobClient`` it binds, one per distinct blob, and never closes it.
Reading through it would keep one socket open per blob ever delivered (60 uploads, 60 sockets); the ingest
reads through a client of its own that is closed when it ends. Sockets are counted with psutil against the
test's Azurite blob endpoint, and the count is shown to move when clients are kept the worker's way.
"""

from __future__ import annotations

import gc
from types import SimpleNamespace

import psutil

from functions import ingest as triggers
from shared.ingest import ingest_delivered_blob
from shared.ledger import DatasetRecord
from tests.integration import ingest_helpers
from tests.integration.ingest_helpers import chat_rows, jsonl

MODEL = "support-bot"
container = ingest_helpers.container  # fixtures
no_training = ingest_helpers.no_training


def blob_sockets(settings) -> int:
    """Sockets this process holds to the blob endpoint (Azurite's blob port), whatever their state: one the
    server closed for idleness is CLOSE_WAIT here, still an open file until the client closes it."""
    from shared.storage import blob_service

    gc.collect()  # a client nobody references any more closes its sockets when collected: count only live ones
    port = int(blob_service(settings).url.split(":")[2].split("/")[0])
    return sum(1 for conn in psutil.Process().net_connections(kind="tcp") if conn.raddr and conn.raddr.port == port)


def upload(container, name: str, rows: int) -> None:
    container.get_blob_client(name).upload_blob(jsonl(chat_rows(rows, tag=name)), overwrite=True)


def test_the_trigger_uses_the_binding_only_for_the_blobs_identity(container, ledger, no_training):
    upload(container, f"incoming/{MODEL}/identity.jsonl", 40)
    # What the handler may use of the bound client: its container and blob name (nothing to read with).
    bound = SimpleNamespace(container_name=container.container_name, blob_name=f"incoming/{MODEL}/identity.jsonl")
    triggers.ingest_blob.build().get_user_function()(bound)
    [record] = ledger.query_eq(DatasetRecord, PartitionKey=MODEL)
    assert record.state == "prepared"


def test_ingesting_many_blobs_leaves_no_connection_open(container, settings, ledger, no_training):
    names = [f"incoming/{MODEL}/drop-{i}.jsonl" for i in range(5)]
    for name in names:
        upload(container, name, 30)
    ingest_delivered_blob(container.container_name, names[0], settings=settings, ledger=ledger)  # warm the ledger
    baseline = blob_sockets(settings)
    for name in names[1:]:
        assert ingest_delivered_blob(container.container_name, name, settings=settings, ledger=ledger).action
    assert blob_sockets(settings) <= baseline

    # The measurement can see leaks: clients kept the way the worker keeps its bound ones hold a socket each.
    from shared.storage import blob_service

    kept = []
    for name in names[1:]:
        service = blob_service(settings)
        service.get_blob_client(container.container_name, name).download_blob().readall()
        kept.append(service)
    assert blob_sockets(settings) >= baseline + len(kept)
    for service in kept:
        service.close()
    assert blob_sockets(settings) <= baseline
