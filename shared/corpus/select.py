"""Which datasets make a model's corpus, in which order, and the corpus id that names that choice.

Why a pure function of the ledger's dataset records: the same selection is made when a run is about to be
submitted, when the models API lists what is not trained yet, and in tests; it must never depend on when or where
it runs beyond the clock passed in (``CORPUS_MAX_AGE_DAYS``). Members are ordered oldest first, because the first
occurrence of a conversation wins (its prompt and prompt_id are the ones kept).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.ledger import DatasetRecord
from shared.timeutil import parse_iso

CUMULATIVE = "cumulative"
LATEST = "latest"
MODES = (CUMULATIVE, LATEST)
CORPUS_FORMAT = 1  # bump when the corpus files' content changes for the same members and settings
CORPUS_ID_CHARS = 16


@dataclass(frozen=True)
class CorpusOptions:
    """The settings that shape a corpus (each is recorded in its manifest and folded into its id)."""

    mode: str = CUMULATIVE
    max_train_rows: int = 0  # 0: no limit
    max_age_days: float = 0  # 0: no limit
    test_percent: int = 10

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"CORPUS_MODE must be one of {', '.join(MODES)}, got {self.mode!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> CorpusOptions:
        return cls(
            mode=settings.corpus_mode,
            max_train_rows=settings.corpus_max_train_rows,
            max_age_days=settings.corpus_max_age_days,
            test_percent=settings.test_split_percent,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "CORPUS_MODE": self.mode,
            "CORPUS_MAX_TRAIN_ROWS": self.max_train_rows,
            "CORPUS_MAX_AGE_DAYS": self.max_age_days,
            "TEST_SPLIT_PERCENT": self.test_percent,
        }


@dataclass(frozen=True)
class Member:
    """One dataset in a corpus: where its prepared splits are and how many rows its own report counted."""

    dataset_id: str
    prefix: str
    prepared_at: str
    train: int
    test: int
    tools: bool = True  # rows may carry tools (False when its report counts none: read without looking)

    def split_blob(self, split: str) -> str:
        return f"{self.prefix}{split}.jsonl"


@dataclass
class Selection:
    """The members (oldest first), the datasets left out with the reason, and the corpus id."""

    model: str
    options: CorpusOptions
    members: list[Member]
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def corpus_id(self) -> str:
        return corpus_id(self.model, [m.dataset_id for m in self.members], self.options)

    @property
    def newest(self) -> Member | None:
        return self.members[-1] if self.members else None


def prepared_at(record: DatasetRecord) -> str:
    """When the dataset became usable (older records, from before ``prepared_at`` existed, have created_at)."""
    return record.prepared_at or record.created_at


def eligible(records: Iterable[DatasetRecord]) -> list[DatasetRecord]:
    """Prepared datasets, oldest first (ties broken by id so the order is total)."""
    usable = [r for r in records if r.state == "prepared"]
    return sorted(usable, key=lambda r: (prepared_at(r), r.dataset_id))


def select(model: str, records: Iterable[DatasetRecord], options: CorpusOptions, now: datetime) -> Selection:
    """The corpus a run of ``model`` trains on now: every prepared dataset that is not excluded, not older than
    ``max_age_days`` and (newest first) within ``max_train_rows``; in ``latest`` mode the newest such dataset alone.

    The row cap is applied to whole datasets by their own train counts (an upper bound: the corpus deduplicates),
    newest kept first; the newest dataset is always kept, and cut to the cap while its rows are merged.
    """
    left_out: dict[str, str] = {}
    candidates: list[DatasetRecord] = []
    cutoff = now - timedelta(days=options.max_age_days) if options.max_age_days > 0 else None
    for record in eligible(records):
        when = parse_iso(prepared_at(record))
        if record.excluded:
            left_out[record.dataset_id] = "excluded"
        elif cutoff is not None and when is not None and when < cutoff:
            left_out[record.dataset_id] = f"prepared over {options.max_age_days:g} days ago (CORPUS_MAX_AGE_DAYS)"
        else:
            candidates.append(record)
    if options.mode == LATEST and candidates:
        for record in candidates[:-1]:
            left_out[record.dataset_id] = "not the newest dataset (CORPUS_MODE=latest)"
        candidates = candidates[-1:]
    keep_from = 0  # candidates[keep_from:] fit under the row cap, counted newest first
    rows = 0
    for index in range(len(candidates) - 1, -1, -1):
        rows += _count(candidates[index], "train")
        if options.max_train_rows and rows > options.max_train_rows and index < len(candidates) - 1:
            keep_from = index + 1
            reason = f"over CORPUS_MAX_TRAIN_ROWS ({options.max_train_rows}) with the newer datasets"
            left_out.update(dict.fromkeys((r.dataset_id for r in candidates[:keep_from]), reason))
            break
    members = [_member(r) for r in candidates[keep_from:]]
    return Selection(model=model, options=options, members=members, left_out=left_out)


def _count(record: DatasetRecord, split: str) -> int:
    value = (record.report or {}).get(split, 0)
    return value if isinstance(value, int) else 0


def _member(record: DatasetRecord) -> Member:
    return Member(
        dataset_id=record.dataset_id,
        prefix=record.prefix or f"datasets/{record.model}/{record.dataset_id}/",
        prepared_at=prepared_at(record),
        train=_count(record, "train"),
        test=_count(record, "test"),
        tools=(record.report or {}).get("rows_with_tools", 1) != 0,  # reports from before the count: look
    )


def corpus_id(model: str, dataset_ids: Iterable[str], options: CorpusOptions) -> str:
    """16 hex characters naming a corpus: its model, sorted member ids and the settings that shape its files.

    The same members under the same settings give the same id, so a corpus identical to the one a model last
    trained on is recognised (and not trained again), and its files, once built, are reused.
    """
    key = {
        "format": CORPUS_FORMAT,
        "model": model,
        "datasets": sorted(dataset_ids),
        "mode": options.mode,
        "max_train_rows": options.max_train_rows,
        "test_percent": options.test_percent,
    }
    raw = json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:CORPUS_ID_CHARS]


__all__ = [
    "CUMULATIVE",
    "LATEST",
    "MODES",
    "CorpusOptions",
    "Member",
    "Selection",
    "corpus_id",
    "eligible",
    "prepared_at",
    "select",
]
