"""Where an evaluation's conversations come from: a run's held-out split, or the model's golden set.

Why the golden set goes through ``chatdata.prepare``: it must mean what training data means (the same
validation, normalisation and dedup), and its owner gets the same line-numbered reasons for what was left
out. It is read whole at the start of an evaluation and never ingested: ``incoming/{model}/eval.jsonl`` is not
a training drop (see ``shared.dropzone.classify``).

Everything here streams: a held-out split is read in ranged chunks and only the chosen examples (and, for
"which rows are new", one id per row) are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shared.dropzone import GOLDEN_FILE, INCOMING
from shared.evaluation.examples import Selection, Selector, rows_from_lines

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["eval_blob", "golden_blob", "read_golden", "read_split"]


def golden_blob(model: str) -> str:
    """The model's golden set, provided by its owner: asked at every evaluation, never trained on."""
    return f"{INCOMING}{model}/{GOLDEN_FILE}"


def eval_blob(model: str, run_id: str) -> str:
    """Per-example questions, answers and scores of one run's evaluation (in TRAINING_CONTAINER)."""
    return f"evals/{model}/{run_id}.json"


def _raw_chunks(settings: Settings, blob_path: str) -> Iterator[bytes] | None:
    """The blob's bytes in ranged chunks, or None when it does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    from shared.blobstream import read_chunks
    from shared.storage import blob_service

    client = blob_service(settings).get_blob_client(settings.training_container, blob_path)
    try:
        client.get_blob_properties()
    except ResourceNotFoundError:
        return None
    return read_chunks(client)


def _rows(settings: Settings, blob_path: str) -> Iterator[Any] | None:
    from shared.chatdata.reader import StreamInfo, TooLong, iter_lines

    chunks = _raw_chunks(settings, blob_path)
    if chunks is None:
        return None
    lines = iter_lines(chunks, StreamInfo(), settings.max_line_bytes)
    return rows_from_lines(b"" if isinstance(line, TooLong) else line for line in lines)


def read_split(
    settings: Settings,
    blob_path: str,
    limit: int,
    exclude: frozenset[str] | set[str] = frozenset(),
    *,
    collect_ids: bool = False,
) -> Selection | None:
    """Up to ``limit`` examples of a prepared split (ids in ``exclude`` left out) and, with ``collect_ids``,
    the id of every askable row; None when the split does not exist."""
    rows = _rows(settings, blob_path)
    if rows is None:
        return None
    selector = Selector(limit, exclude, collect_ids=collect_ids)
    for row in rows:
        selector.add(row)
    return selector.result()


def read_golden(
    settings: Settings, model: str, limit: int, *, collect_ids: bool = False
) -> tuple[Selection | None, dict[str, Any] | None]:
    """Up to ``limit`` examples of the golden set, prepared with the training data's rules (with
    ``collect_ids``, the id of every askable row too), and a summary of that preparation; ``(None, None)``
    without a golden set, ``(None, summary)`` when the file as a whole is unusable (``summary["rejection"]``
    says why)."""
    from shared.chatdata import PrepareOptions, prepare

    path = golden_blob(model)
    chunks = _raw_chunks(settings, path)
    if chunks is None:
        return None, None
    selector = Selector(limit, collect_ids=collect_ids)

    def test_rows(block: bytes) -> None:  # called on chatdata's writing thread, one block at a time
        for row in rows_from_lines(block.split(b"\n")):
            selector.add(row)

    options = PrepareOptions.from_settings(
        settings, test_percent=100, min_train_rows=0, min_test_rows=1, source=f"{settings.training_container}/{path}"
    )
    report = prepare(chunks, _discard, test_rows, _discard, options)
    summary: dict[str, Any] = {
        "blob": path,
        "total_lines": report.get("total_lines"),
        "rows": report.get("test"),
        "rejected": report.get("rejected"),
        "reasons": report.get("reasons") or {},
    }
    if not report.get("accepted"):
        summary["rejection"] = report.get("rejection") or "the golden set was rejected"
        log.warning("model %s: golden set %s is unusable: %s", model, path, summary["rejection"])
        return None, summary
    return selector.result(), summary


def _discard(_: bytes) -> None:
    """Writer for the outputs a golden set does not have (train) or keeps only counted (rejected)."""
