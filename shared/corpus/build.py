"""Materialising a corpus snapshot blob to blob, in resumable pieces: one member dataset at a time.

Layout (container TRAINING_CONTAINER): ``datasets/{model}/corpora/{corpus_id}/train.jsonl``, ``test.jsonl`` and
``manifest.json``; while it is being built, ``state/progress.json`` and one ``state/digests-{n}.bin`` per member.

Why pieces: a corpus can be far larger than what one Function invocation can copy. Each call merges members until
its time budget is spent (at least one, which preparation of that same file already fitted into one invocation),
staging their rows as uncommitted blocks named after the member (``m{n}-…``) and checkpointing after each member:
its counts and block count in ``progress.json``, the digests of the rows it added in ``digests-{n}.bin``. The next
call (another tick, another instance, after a crash) reloads the digests and carries on with the next member; a
member cut off midway is merged again, restaging the same block ids with the same bytes. When the last member is
in, both files are committed from every member's blocks, and ``manifest.json`` is written last: a corpus is
complete exactly when its manifest exists, and a complete corpus is never built twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.blobstream import BlockBlobWriter, block_id_for, commit_blocks, read_chunks, read_json, write_json
from shared.corpus.merge import SPLITS, CorpusDataError, Merger, load_digests
from shared.corpus.select import LATEST, Member, Selection
from shared.timeutil import iso

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PROGRESS = "state/progress.json"


def corpus_prefix(model: str, corpus_id: str) -> str:
    return f"datasets/{model}/corpora/{corpus_id}/"


def corpus_blob(model: str, corpus_id: str, name: str) -> str:
    """``datasets/{model}/corpora/{corpus_id}/{name}``: ``train.jsonl``, ``test.jsonl`` or ``manifest.json``."""
    return f"{corpus_prefix(model, corpus_id)}{name}"


@dataclass
class BuildResult:
    """Where a build stands after one call: ``manifest`` is set once the corpus is complete."""

    corpus_id: str
    members_done: int
    members_total: int
    manifest: dict[str, Any] | None = None
    resumed_from: int = 0
    seconds: float = 0.0
    counts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.manifest is not None


def read_manifest(container: ContainerClient, model: str, corpus_id: str) -> dict[str, Any] | None:
    return read_json(container, corpus_blob(model, corpus_id, MANIFEST))


def build_corpus(
    container: ContainerClient, selection: Selection, *, budget_seconds: float = 60.0, now: str | None = None
) -> BuildResult:
    """Advance the build of ``selection``'s corpus by at least one member, then while ``budget_seconds`` last."""
    started = time.monotonic()
    model, cid, members = selection.model, selection.corpus_id, selection.members
    manifest = read_manifest(container, model, cid)
    if manifest is not None:
        return BuildResult(cid, len(members), len(members), manifest)
    if not members:
        raise ValueError(f"corpus {cid} of model {model} has no member dataset")
    if selection.options.mode == LATEST:  # the newest dataset's own files are the corpus: nothing to copy
        counts = [{"dataset_id": m.dataset_id, "train": m.train, "test": m.test} for m in members]
        files = {split: members[-1].split_blob(split) for split in SPLITS}
        manifest = _manifest(selection, counts, files, now)
        write_json(container, corpus_blob(model, cid, MANIFEST), manifest)
        return BuildResult(cid, len(members), len(members), manifest, seconds=time.monotonic() - started)
    prefix = corpus_prefix(model, cid)
    progress = read_json(container, prefix + PROGRESS) or {"corpus_id": cid, "started_at": now or iso(), "done": []}
    done: list[dict[str, Any]] = progress["done"]
    _check_progress(done, members, cid)
    seen: set[bytes] = set()
    for index in range(len(done)):
        load_digests(seen, container.download_blob(_digests_name(prefix, index)).readall())
    result = BuildResult(cid, len(done), len(members), resumed_from=len(done))
    merger = Merger(
        test_percent=selection.options.test_percent,
        max_train_rows=selection.options.max_train_rows,
        seen=seen,
        train_rows=sum(item["counts"]["train"] for item in done),
    )
    while len(done) < len(members):
        if len(done) > result.resumed_from and time.monotonic() - started >= budget_seconds:
            break
        index = len(done)
        done.append(_merge_member(container, prefix, merger, index, members[index]))
        progress["updated_at"] = iso()
        write_json(container, prefix + PROGRESS, progress)
        member = members[index].dataset_id
        log.info("corpus %s of %s: member %d/%d (%s) merged", cid, model, index + 1, len(members), member)
    result.members_done = len(done)
    result.counts = [item["counts"] for item in done]
    if len(done) == len(members):
        result.manifest = _finish(container, selection, done, now)
    result.seconds = time.monotonic() - started
    return result


def _merge_member(
    container: ContainerClient, prefix: str, merger: Merger, index: int, member: Member
) -> dict[str, Any]:
    writers = {
        split: BlockBlobWriter(container.get_blob_client(f"{prefix}{split}.jsonl"), block_id_prefix=f"m{index:05d}-")
        for split in SPLITS
    }
    sources = [(split, member.split_blob(split), _chunks(container, member.split_blob(split))) for split in SPLITS]
    counts, digests = merger.add_member(
        member.dataset_id, sources, writers["train"].write, writers["test"].write, tools=member.tools
    )
    blocks = {split: len(writer.stage_rest()) for split, writer in writers.items()}
    container.upload_blob(_digests_name(prefix, index), digests, overwrite=True)
    return {"dataset_id": member.dataset_id, "counts": counts.as_dict(), "blocks": blocks}


def _chunks(container: ContainerClient, name: str) -> Iterator[bytes]:
    """A member file's bytes; a file that is gone is the member's fault (named), not a storage outage."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        yield from read_chunks(container.get_blob_client(name))
    except ResourceNotFoundError:
        raise CorpusDataError(
            f"{container.container_name}/{name} does not exist (deleted since it was prepared?)"
        ) from None


def _check_progress(done: list[dict[str, Any]], members: list[Member], corpus_id: str) -> None:
    for item, member in zip(done, members, strict=False):
        if item["dataset_id"] != member.dataset_id:
            found = item["dataset_id"]
            raise ValueError(f"corpus {corpus_id}: the checkpoint lists {found} where {member.dataset_id} goes")
    if len(done) > len(members):
        raise ValueError(f"corpus {corpus_id}: checkpoint lists more members than the corpus has")


def _finish(
    container: ContainerClient, selection: Selection, done: list[dict[str, Any]], now: str | None
) -> dict[str, Any]:
    model, cid = selection.model, selection.corpus_id
    prefix = corpus_prefix(model, cid)
    files = {split: f"{prefix}{split}.jsonl" for split in SPLITS}
    for split in SPLITS:
        ids = [
            block_id_for(f"m{index:05d}-", n) for index, item in enumerate(done) for n in range(item["blocks"][split])
        ]
        commit_blocks(container.get_blob_client(files[split]), ids)
    manifest = _manifest(selection, [item["counts"] for item in done], files, now)
    write_json(container, prefix + MANIFEST, manifest)
    for index in range(len(done)):  # the checkpoints served their purpose; a leftover costs bytes, not correctness
        _delete_quietly(container, _digests_name(prefix, index))
    _delete_quietly(container, prefix + PROGRESS)
    log.info("corpus %s of %s complete: %d train, %d test", cid, model, manifest["train"], manifest["test"])
    return manifest


def _manifest(
    selection: Selection, counts: list[dict[str, Any]], files: dict[str, str], now: str | None
) -> dict[str, Any]:
    prepared = {m.dataset_id: m.prepared_at for m in selection.members}
    datasets = [{**item, "prepared_at": prepared.get(item["dataset_id"], "")} for item in counts]
    return {
        "corpus_id": selection.corpus_id,
        "model": selection.model,
        "mode": selection.options.mode,
        "created_at": now or iso(),
        "settings": selection.options.as_dict(),
        "datasets": datasets,
        "left_out": selection.left_out,
        "train": sum(item["train"] for item in counts),
        "test": sum(item["test"] for item in counts),
        "duplicates": sum(item.get("duplicates", 0) for item in counts),
        "over_cap": sum(item.get("over_cap", 0) for item in counts),
        "files": files,
    }


def _digests_name(prefix: str, index: int) -> str:
    return f"{prefix}state/digests-{index:05d}.bin"


def _delete_quietly(container: ContainerClient, name: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):
        container.delete_blob(name)


__all__ = ["MANIFEST", "BuildResult", "build_corpus", "corpus_blob", "corpus_prefix", "read_manifest"]
