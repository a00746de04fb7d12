"""The ledger's records: what the app remembers about datasets, runs, models, activity and leases, each a
dataclass stored as one table entity (``shared.ledger`` reads and writes them). Run and model states live here
with the records they belong to."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shared.timeutil import iso


@dataclass
class Record:
    """Base of the ledger's records: a dataclass stored as one table entity.

    ``TABLE`` names the table (after the prefix); ``JSON_FIELDS`` are stored as JSON text; ``etag`` is
    the version read, and ``None`` for a record not yet stored.
    """

    TABLE: ClassVar[str] = ""
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()

    def keys(self) -> tuple[str, str]:  # pragma: no cover - each record defines its keys
        raise NotImplementedError

    def to_entity(self) -> dict[str, Any]:
        pk, rk = self.keys()
        entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk}
        for f in dataclasses.fields(self):
            if f.name == "etag":
                continue
            value = getattr(self, f.name)
            if f.name in self.JSON_FIELDS:
                value = json.dumps(value, separators=(",", ":"), sort_keys=True)
            if value is not None:
                entity[f.name] = value
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in entity.items():
            if key not in names or key == "etag":
                continue
            if key in cls.JSON_FIELDS and isinstance(value, str):
                value = json.loads(value)
            kwargs[key] = value
        record = cls(**kwargs)
        metadata = getattr(entity, "metadata", None) or {}
        record.etag = metadata.get("etag")
        return record


@dataclass
class DatasetRecord(Record):
    """A prepared (or rejected) upload. ``dataset_id`` derives from the content hash.

    Every prepared dataset that is not ``excluded`` belongs to its model's corpus (see ``shared.corpus``)."""

    TABLE: ClassVar[str] = "Datasets"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("report",)

    model: str = ""
    dataset_id: str = ""
    state: str = "preparing"  # preparing | prepared | rejected | failed
    source_blob: str = ""
    source_etag: str = ""  # the upload's version whose preparations ``attempts`` counts
    attempts: int = 0  # preparations started for that upload (shared/ingest_limits.py)
    prefix: str = ""  # datasets/{model}/{dataset_id}/
    report: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    run_id: str = ""  # the run that first gathered this dataset into its corpus
    prepared_at: str = ""
    excluded: bool = False  # left out of every later corpus (DELETE /api/models/{model}/datasets/{id})
    excluded_at: str = ""
    created_at: str = field(default_factory=iso)
    updated_at: str = field(default_factory=iso)
    etag: str | None = None

    def keys(self) -> tuple[str, str]:
        return self.model, self.dataset_id


RUN_STATES = (
    "waiting",
    "queued",
    "submitted",
    "running",
    "completed",
    "registered",
    "deploying",
    "live",
    "held",
    "awaiting_approval",
    "failed",
    "canceled",
    "superseded",
)
# ``held`` ends a run (the promotion gate stopped its version) unless a person promotes it anyway.
TERMINAL_RUN_STATES = frozenset({"live", "held", "failed", "canceled", "superseded"})


@dataclass
class RunRecord(Record):
    """One corpus snapshot going through train -> register -> deploy. ``timeline`` is ``[[state, iso_time], ...]``.

    ``corpus`` (``{"corpus_id", "mode", "datasets": [{"dataset_id", "train", "test"}], "train", "test", "files"}``)
    is set when the run leaves ``waiting``; ``dataset_id`` names its newest member (runs from before corpora
    trained on that one dataset and have no ``corpus``).
    """

    TABLE: ClassVar[str] = "Runs"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("timeline", "metrics", "parameters", "details", "corpus", "evaluation")

    model: str = ""
    run_id: str = ""
    dataset_id: str = ""
    state: str = "queued"
    job_name: str = ""
    backend: str = ""
    error: str = ""
    registered_model: str = ""
    registered_version: str = ""
    studio_url: str = ""
    timeline: list[list[str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    corpus: dict[str, Any] = field(default_factory=dict)
    # The promotion gate's record of the version (``shared.evaluation.gate.evaluation_view``); {} until evaluated.
    evaluation: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=iso)
    updated_at: str = field(default_factory=iso)
    etag: str | None = None

    def keys(self) -> tuple[str, str]:
        return self.model, self.run_id

    def transition(self, state: str, *, error: str = "", at: str | None = None) -> None:
        """Move to ``state`` and stamp the timeline (callers decide whether the move is allowed)."""
        if state not in RUN_STATES:
            raise ValueError(f"unknown run state {state!r}")
        stamp = at or iso()
        self.state = state
        self.timeline.append([state, stamp])
        self.updated_at = stamp
        if error:
            self.error = error


MODEL_STATES = ("new", "deploying", "live", "sleeping", "failed")


@dataclass
class ModelRecord(Record):
    """A named, continuously retrained model: desired version vs what is live, and the deployment in flight.

    ``deployment`` holds the reconciler's progress (``{"version", "name", "step", "started_at", ...}``) so a
    crash between two steps resumes at the right one. ``wake_retry`` says when a sleeping model whose wake failed
    may be woken again (``shared/reconcile/wake.py``).
    """

    TABLE: ClassVar[str] = "Models"
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("deployment", "wake_retry")

    model: str = ""
    state: str = "new"
    desired_version: str = ""
    desired_run_id: str = ""
    live_version: str = ""
    live_run_id: str = ""
    live_deployment: str = ""
    endpoint_name: str = ""
    scoring_uri: str = ""
    deployment: dict[str, Any] = field(default_factory=dict)
    last_deployed_at: str = ""
    slept_at: str = ""
    sleep_reason: str = ""
    wake_retry: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    pinned: bool = False
    updated_at: str = field(default_factory=iso)
    etag: str | None = None

    def keys(self) -> tuple[str, str]:
        return "models", self.model


@dataclass
class TrainingRecord(Record):
    """Per model: the run that gathers new data (``waiting``) until it is submitted.

    Kept apart from ``ModelRecord`` so that data arriving never invalidates the reconciler's ETags; the ETag on
    this record is what makes two deliveries arriving at once join one run instead of opening two.
    """

    TABLE: ClassVar[str] = "Training"

    model: str = ""
    open_run_id: str = ""
    updated_at: str = field(default_factory=iso)
    etag: str | None = None

    def keys(self) -> tuple[str, str]:
        return "training", self.model


@dataclass
class ActivityRecord(Record):
    """Last scoring request per model, written by the gateway (debounced), read by the sweeper.

    Kept apart from ``ModelRecord`` so that traffic never invalidates the reconciler's ETags.
    """

    TABLE: ClassVar[str] = "Activity"

    model: str = ""
    last_request_at: str = ""
    etag: str | None = None

    def keys(self) -> tuple[str, str]:
        return "activity", self.model


@dataclass
class LeaseRecord(Record):
    """A short exclusive claim (e.g. one reconciler per model), taken and renewed with ETags."""

    TABLE: ClassVar[str] = "Leases"

    name: str = ""
    owner: str = ""
    expires_at: str = ""
    etag: str | None = None

    def keys(self) -> tuple[str, str]:
        return "leases", self.name


__all__ = [
    "MODEL_STATES",
    "RUN_STATES",
    "TERMINAL_RUN_STATES",
    "ActivityRecord",
    "DatasetRecord",
    "LeaseRecord",
    "ModelRecord",
    "Record",
    "RunRecord",
    "TrainingRecord",
]
