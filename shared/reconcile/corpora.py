"""Corpus retention: old corpus snapshots are deleted, so a model retrained for months does not pay for a full
copy of its data per run, for ever.

Why it is safe: a corpus is complete exactly when its manifest exists, and its id is a function of its members
and settings, so a deleted corpus is rebuilt (byte-identical) if a run ever selects it again, while its member
datasets exist. Per model, retention keeps
- every corpus an unfinished run references (its recorded corpus, the one a ``waiting`` run is building, and the
  one a waiting run would select now: it may be built but not yet recorded on the run);
- the corpora of the runs behind the model's live and desired versions (the promotion gate reads the champion's
  held-out split; the smoke test the challenger's);
- the newest ``CORPUS_KEEP`` complete corpora (by when their manifest was written);
and deletes the other corpora: the manifest first (from then on the corpus is incomplete: never used, only
rebuilt), then ``state/progress.json`` (a build never resumes from a checkpoint whose digests are gone), then
the rest. A prefix with no manifest and no ``state/progress.json`` holds nothing a build could resume (what a
retention pass left when it died): deleted at once. A build with a checkpoint that no run uses any more
(a waiting run's data changed, so its corpus id did) is deleted once its newest blob is ``ORPHAN_GRACE_MINUTES``
old.

Only blobs under ``datasets/{model}/corpora/{corpus_id}/`` are ever deleted: a ``CORPUS_MODE=latest`` corpus is a
manifest pointing at its dataset's own prepared files, which stay. Everything is decided on one listing, under
the leases that serialise corpus selection (``train:{model}``, held by ``advance_model`` and by a retry while it
checks the run's corpus and requeues it) and the rollout
(``model:{model}``), on records read after taking them: runs first, then the model, so a run that becomes live
meanwhile is seen as unfinished or as live. A model is looked at once per ``RETENTION_INTERVAL_SECONDS``: a run
makes at most one corpus, and a few runs a day make a handful.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.corpus.build import MANIFEST, PROGRESS, corpus_prefix
from shared.ledger import DatasetRecord, ModelRecord, RunRecord
from shared.reconcile.lease import model_lease, model_lease_name
from shared.records import TERMINAL_RUN_STATES
from shared.runs.context import RunContext, new_owner
from shared.runs.waiting import training_lease_name
from shared.timeutil import utcnow

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

log = logging.getLogger(__name__)

RETENTION_INTERVAL_SECONDS = 3600.0  # per model; held as a lease that is never released, so it spans instances


@dataclass
class StoredCorpus:
    """What one listing says about a corpus prefix: its blobs, when its manifest was written, its newest blob."""

    corpus_id: str
    prefix: str
    names: list[str] = field(default_factory=list)
    completed_at: datetime | None = None
    newest: datetime | None = None

    @property
    def complete(self) -> bool:
        return self.completed_at is not None

    def deletion_order(self) -> list[str]:
        """Manifest first, the build's checkpoint next, then the rest: a crash anywhere leaves a prefix that is
        either still complete or holds nothing a build would resume from."""
        first = [name for name in (self.prefix + MANIFEST, self.prefix + PROGRESS) if name in self.names]
        return first + sorted(set(self.names) - set(first))


def collect_corpora(ctx: RunContext, models: Iterable[str]) -> dict[str, str]:
    """The tick's pass: retention for each model not looked at within ``RETENTION_INTERVAL_SECONDS``; returns
    ``{"model/corpus_id": what happened}`` for each corpus deleted, and ``{model: why}`` for a model skipped or
    failed (one model's storage trouble never stops the others)."""
    outcome: dict[str, str] = {}
    for model in models:
        interval, owner = f"corpora:{model}", new_owner("corpora")
        if not ctx.ledger.acquire_lease(interval, owner, RETENTION_INTERVAL_SECONDS):
            continue  # looked at within the interval (the lease is left to expire, never released)
        try:
            done = retain_corpora(ctx, model)
            if done.get(model, "").startswith("skipped"):
                ctx.ledger.release_lease(interval, owner)  # busy now: the next tick looks again
            outcome.update(done)
        except Exception as exc:  # one model's storage trouble must not stop the others; next interval retries
            log.exception("corpus retention for model %s failed", model)
            outcome[model] = f"error: {type(exc).__name__}: {exc}"
    return outcome


def retain_corpora(ctx: RunContext, model: str, container: ContainerClient | None = None) -> dict[str, str]:
    """Delete ``model``'s corpora that retention does not keep (see the module); idempotent. ``container``: the
    training container (the settings' one when None)."""
    with (
        model_lease(ctx, training_lease_name(model), "corpora") as training,
        model_lease(ctx, model_lease_name(model), "corpora") as rollout,
    ):
        if not (training and rollout):
            return {model: "skipped: lease held elsewhere"}
        kept = kept_corpus_ids(ctx, model)
        container = container or _container(ctx)
        stored = list_corpora(container, model)
        outcome: dict[str, str] = {}
        for corpus, reason in doomed(stored, kept, ctx.settings.corpus_keep, ctx.settings.orphan_grace_minutes):
            for name in corpus.deletion_order():
                _delete(container, name)
            log.info(  # routine housekeeping, not a fault: the tick's summary line lists it too
                "deleted corpus %s of model %s (%d blobs): %s",
                corpus.corpus_id,
                model,
                len(corpus.names),
                reason,
                extra={"model": model},
            )
            outcome[f"{model}/{corpus.corpus_id}"] = f"deleted: {reason}"
        return outcome


def kept_corpus_ids(ctx: RunContext, model: str) -> set[str]:
    """The corpora the model's runs and versions still need (read runs first, then the model: see the module)."""
    from shared.corpus import CorpusOptions, select

    runs = ctx.ledger.query_eq(RunRecord, PartitionKey=model)
    record = ctx.ledger.get(ModelRecord, "models", model)
    kept: set[str] = set()
    for run in runs:
        if run.state not in TERMINAL_RUN_STATES:
            kept.add(str((run.corpus or {}).get("corpus_id") or ""))
            kept.add(str((run.details.get("building") or {}).get("corpus_id") or ""))
    if any(run.state == "waiting" for run in runs):
        records = ctx.ledger.query_eq(DatasetRecord, PartitionKey=model)
        selection = select(model, records, CorpusOptions.from_settings(ctx.settings), utcnow())
        kept.add(selection.corpus_id if selection.members else "")
    if record is not None:
        versions = {record.live_run_id, record.desired_run_id} - {""}
        kept.update(str((run.corpus or {}).get("corpus_id") or "") for run in runs if run.run_id in versions)
    return kept - {""}


def list_corpora(container: ContainerClient, model: str) -> list[StoredCorpus]:
    """Every corpus prefix of ``model`` with its blobs (staged-only ones too: an abandoned build's files), in one
    listing; nothing when the container does not exist yet."""
    from azure.core.exceptions import ResourceNotFoundError

    root = f"datasets/{model}/corpora/"
    found: dict[str, StoredCorpus] = {}
    with contextlib.suppress(ResourceNotFoundError):
        for blob in container.list_blobs(name_starts_with=root, include=["uncommittedblobs"]):
            corpus_id, sep, rest = blob.name[len(root) :].partition("/")
            if not corpus_id or not sep or not rest:
                continue  # not inside a corpus's folder: never ours to delete
            corpus = found.setdefault(corpus_id, StoredCorpus(corpus_id, corpus_prefix(model, corpus_id)))
            corpus.names.append(blob.name)
            when = blob.last_modified
            corpus.newest = when if corpus.newest is None or when > corpus.newest else corpus.newest
            if rest == MANIFEST:
                corpus.completed_at = when
    return sorted(found.values(), key=lambda c: c.corpus_id)


def doomed(
    stored: list[StoredCorpus], kept: set[str], keep_newest: int, grace_minutes: float, now: datetime | None = None
) -> Iterator[tuple[StoredCorpus, str]]:
    """The corpora to delete, each with the reason (a pure decision over one listing)."""
    complete = sorted((c for c in stored if c.complete), key=lambda c: (c.completed_at, c.corpus_id), reverse=True)
    newest = {c.corpus_id for c in complete[: max(keep_newest, 1)]}
    cutoff = (now or utcnow()) - timedelta(minutes=grace_minutes)
    for corpus in stored:
        if corpus.corpus_id in kept or corpus.corpus_id in newest:
            continue
        if corpus.complete:
            yield corpus, f"older than the newest CORPUS_KEEP ({keep_newest}) and no run needs it"
        elif corpus.prefix + PROGRESS not in corpus.names:
            yield corpus, "incomplete, with nothing a build would resume from"
        elif corpus.newest is not None and corpus.newest <= cutoff:
            yield corpus, f"a build no run uses, untouched for ORPHAN_GRACE_MINUTES ({grace_minutes:g})"


def _container(ctx: RunContext) -> ContainerClient:
    from shared.storage import blob_service

    return blob_service(ctx.settings).get_container_client(ctx.settings.training_container)


def _delete(container: ContainerClient, name: str) -> None:
    """Delete one blob; gone already is fine. A blob with staged blocks only cannot be deleted on Azure (they
    expire after a week): committing an empty block list makes it an empty blob that can."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        container.delete_blob(name)
    except ResourceNotFoundError:
        client = container.get_blob_client(name)
        with contextlib.suppress(ResourceNotFoundError):
            if client.get_block_list("uncommitted")[1]:
                client.commit_block_list([])
                client.delete_blob()


__all__ = [
    "RETENTION_INTERVAL_SECONDS",
    "StoredCorpus",
    "collect_corpora",
    "doomed",
    "kept_corpus_ids",
    "list_corpora",
    "retain_corpora",
]
