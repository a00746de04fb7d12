"""Corpus retention on Azurite: the newest CORPUS_KEEP complete corpora and every corpus a run or version still
needs stay, the others go (manifest first), only under ``datasets/{model}/corpora/{id}/``; an abandoned build goes
after ORPHAN_GRACE_MINUTES; a pass is idempotent, and one that died midway is finished by the next."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from shared.corpus import CorpusOptions, Selection, build_corpus, corpus_blob, corpus_prefix, read_manifest, select
from shared.ledger import DatasetRecord, Ledger, ModelRecord
from shared.reconcile.corpora import collect_corpora, retain_corpora
from shared.reconcile.tick import reconcile_all
from shared.runs.context import RunContext
from shared.runs.retry import retry_run
from shared.timeutil import utcnow
from tests import factories
from tests.integration.ingest_helpers import container, put_dataset  # noqa: F401 - fixture
from tests.unit.chatdata_helpers import many

MODEL = "bot"  # put_dataset's model
OPTIONS = CorpusOptions(test_percent=20)


@pytest.fixture
def datasets(container) -> list[DatasetRecord]:  # noqa: F811
    return [put_dataset(container, f"d{n}", many(12, f"set{n}"), 5 - n) for n in range(1, 5)]


def context(settings: Any, ledger: Ledger, *, keep: int = 3, grace: float = 30) -> RunContext:
    return RunContext(dataclasses.replace(settings, corpus_keep=keep, orphan_grace_minutes=grace), ledger)


def built(container, members: list[DatasetRecord], options: CorpusOptions = OPTIONS) -> Selection:  # noqa: F811
    """A complete corpus of ``members``."""
    selection = select(MODEL, members, options, utcnow())
    assert build_corpus(container, selection).done
    return selection


def next_second() -> None:
    """Blob times have whole seconds: what is written next is strictly newer than what was written before."""
    time.sleep(1.001 - time.time() % 1)


def stored(container, corpus_id: str) -> list[str]:  # noqa: F811
    """Every blob under the corpus's prefix, staged-only ones included."""
    prefix = corpus_prefix(MODEL, corpus_id)
    return sorted(b.name for b in container.list_blobs(name_starts_with=prefix, include=["uncommittedblobs"]))


def everything(container) -> list[str]:  # noqa: F811
    return sorted(b.name for b in container.list_blobs(include=["uncommittedblobs"]))


def with_corpus(selection: Selection) -> dict[str, Any]:
    return {"corpus": {"corpus_id": selection.corpus_id}}


def test_the_newest_corpus_keep_stay_the_rest_go_and_again_is_a_no_op(settings, ledger, container, datasets) -> None:  # noqa: F811
    old = [built(container, datasets[:n]) for n in (1, 2)]
    next_second()
    new = [built(container, datasets[:n]) for n in (3, 4)]
    corpora = old + new
    for n, selection in enumerate(corpora):  # every run has ended: nothing but CORPUS_KEEP protects a corpus
        factories.run(ledger, MODEL, f"r{n}", state="superseded", **with_corpus(selection))
    ctx = context(settings, ledger, keep=2)

    done = retain_corpora(ctx, MODEL)

    reason = "deleted: older than the newest CORPUS_KEEP (2) and no run needs it"
    assert done == {f"{MODEL}/{s.corpus_id}": reason for s in old}
    assert all(stored(container, s.corpus_id) == [] for s in old)
    for selection in new:
        manifest = read_manifest(container, MODEL, selection.corpus_id)
        assert manifest is not None and container.download_blob(manifest["files"]["train"]).readall()
    assert all(container.get_blob_client(f"datasets/{MODEL}/{d.dataset_id}/train.jsonl").exists() for d in datasets)
    before = everything(container)
    assert retain_corpora(ctx, MODEL) == {}
    assert everything(container) == before


def test_corpora_runs_and_versions_need_are_kept_however_old(settings, ledger, container, datasets) -> None:  # noqa: F811
    live, desired, queued, unused = (built(container, datasets[:n]) for n in range(1, 5))
    next_second()
    newest = built(container, datasets[:4], CorpusOptions(test_percent=20, max_train_rows=1000))
    building = select(MODEL, datasets[1:], OPTIONS, utcnow())  # a waiting run's build, one member in
    assert not build_corpus(container, building, budget_seconds=0).done
    factories.run(ledger, MODEL, "r-live", state="live", **with_corpus(live))
    factories.run(ledger, MODEL, "r-desired", state="held", **with_corpus(desired))  # promoted by hand
    factories.run(ledger, MODEL, "r-queued", state="queued", **with_corpus(queued))
    factories.run(ledger, MODEL, "r-unused", state="failed", **with_corpus(unused))
    factories.run(ledger, MODEL, "r-wait", state="waiting", details={"building": {"corpus_id": building.corpus_id}})
    factories.live_model(ledger, MODEL, live_run_id="r-live", desired_run_id="r-desired", desired_version="4")
    ctx = context(settings, ledger, keep=1, grace=0)

    assert retain_corpora(ctx, MODEL) == {
        f"{MODEL}/{unused.corpus_id}": "deleted: older than the newest CORPUS_KEEP (1) and no run needs it"
    }
    for selection in (live, desired, queued, newest):
        assert read_manifest(container, MODEL, selection.corpus_id) is not None, selection.members
    assert stored(container, building.corpus_id)  # an unfinished build, but a waiting run's: no grace applies
    assert build_corpus(container, building).done  # and it resumes where it was


def test_a_latest_mode_corpus_loses_its_manifest_and_never_its_datasets_files(
    settings,
    ledger,
    container,  # noqa: F811
    datasets,
) -> None:
    latest = CorpusOptions(mode="latest", test_percent=20)
    old = built(container, datasets[:1], latest)
    next_second()
    new = built(container, datasets[:2], latest)
    assert stored(container, old.corpus_id) == [corpus_blob(MODEL, old.corpus_id, "manifest.json")]
    files = read_manifest(container, MODEL, old.corpus_id)["files"]

    done = retain_corpora(context(settings, ledger, keep=1), MODEL)

    assert list(done) == [f"{MODEL}/{old.corpus_id}"]
    assert stored(container, old.corpus_id) == []
    assert read_manifest(container, MODEL, new.corpus_id) is not None
    assert files == {split: f"datasets/{MODEL}/d1/{split}.jsonl" for split in ("train", "test")}
    assert all(container.get_blob_client(name).exists() for name in files.values())


def test_an_abandoned_build_goes_only_after_the_grace(settings, ledger, container, datasets) -> None:  # noqa: F811
    abandoned = select(MODEL, datasets, OPTIONS, utcnow())  # its run's data changed since: a new corpus id
    assert not build_corpus(container, abandoned, budget_seconds=0).done
    names = stored(container, abandoned.corpus_id)
    assert corpus_blob(MODEL, abandoned.corpus_id, "state/progress.json") in names
    assert corpus_blob(MODEL, abandoned.corpus_id, "train.jsonl") in names  # staged blocks only

    assert retain_corpora(context(settings, ledger, grace=60), MODEL) == {}
    assert stored(container, abandoned.corpus_id) == names

    done = retain_corpora(context(settings, ledger, grace=0), MODEL)
    assert done == {
        f"{MODEL}/{abandoned.corpus_id}": "deleted: a build no run uses, untouched for ORPHAN_GRACE_MINUTES (0)"
    }
    assert stored(container, abandoned.corpus_id) == []
    assert build_corpus(container, abandoned).done  # selected again: built from scratch


class DiesAfterFirstDelete:
    """The real container client, except that the process dies on its second deletion."""

    def __init__(self, real: Any) -> None:
        self.real, self.deleted = real, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def delete_blob(self, name: str, **kwargs: Any) -> None:
        if self.deleted:
            raise SystemExit("the process died")
        self.real.delete_blob(name, **kwargs)
        self.deleted.append(name)


def test_a_pass_that_died_after_the_manifest_is_finished_by_the_next(settings, ledger, container, datasets) -> None:  # noqa: F811
    old = built(container, datasets[:3])
    next_second()
    built(container, datasets)
    train = container.download_blob(corpus_blob(MODEL, old.corpus_id, "train.jsonl")).readall()
    ctx = context(settings, ledger, keep=1, grace=60)
    dying = DiesAfterFirstDelete(container)

    with pytest.raises(SystemExit):
        retain_corpora(ctx, MODEL, dying)

    assert dying.deleted == [corpus_blob(MODEL, old.corpus_id, "manifest.json")]
    assert read_manifest(container, MODEL, old.corpus_id) is None  # incomplete: never trained on as it is
    assert retain_corpora(ctx, MODEL) == {
        f"{MODEL}/{old.corpus_id}": "deleted: incomplete, with nothing a build would resume from"
    }
    assert stored(container, old.corpus_id) == []
    assert retain_corpora(ctx, MODEL) == {}
    rebuilt = build_corpus(container, old)  # selected again: the same bytes
    assert container.download_blob(rebuilt.manifest["files"]["train"]).readall() == train


def test_the_tick_runs_retention_once_per_interval_and_waits_for_the_lease(
    settings,
    ledger,
    container,  # noqa: F811
    datasets,
) -> None:
    old = built(container, datasets[:1])
    next_second()
    built(container, datasets[:2])
    ledger.create(ModelRecord(model=MODEL))  # a model the tick knows, with nothing to deploy
    ctx = context(settings, ledger, keep=1)
    assert ledger.acquire_lease(f"train:{MODEL}", "someone building a corpus", 60)

    assert reconcile_all(ctx).corpora == {MODEL: "skipped: lease held elsewhere"}
    assert read_manifest(container, MODEL, old.corpus_id) is not None

    ledger.release_lease(f"train:{MODEL}", "someone building a corpus")
    assert list(reconcile_all(ctx).corpora) == [f"{MODEL}/{old.corpus_id}"]  # skipped: tried again next tick
    assert stored(container, old.corpus_id) == []
    old = built(container, datasets[:1])  # selected and built again meanwhile
    assert reconcile_all(ctx).corpora == {}  # looked at within the hour: not again
    assert read_manifest(container, MODEL, old.corpus_id) is not None


def test_a_retried_run_whose_corpus_was_deleted_gathers_the_corpus_anew(settings, ledger, container, datasets) -> None:  # noqa: F811
    for record in datasets:
        ledger.create(record)
    old = built(container, datasets[:1])
    next_second()
    built(container, datasets)
    corpus = {"corpus_id": old.corpus_id, "files": {"manifest": corpus_blob(MODEL, old.corpus_id, "manifest.json")}}
    factories.run(
        ledger, MODEL, "r-failed", state="failed", corpus=corpus, timeline=[["waiting", utcnow().isoformat()]]
    )
    ctx = context(settings, ledger, keep=1)
    assert list(retain_corpora(ctx, MODEL)) == [f"{MODEL}/{old.corpus_id}"]

    retried = retry_run(ctx, "r-failed")

    assert retried.state == "waiting" and retried.corpus == {}  # not queued on files that are gone
    assert retried.details["previous_corpus_id"] == old.corpus_id
    assert "built on the next reconcile tick" in retried.details["waiting_reason"]


def test_one_models_storage_error_leaves_the_others_to_their_retention(settings, ledger, container) -> None:  # noqa: F811
    models = ("stuck", MODEL)
    olds = {}
    for model in models:
        records = [put_dataset(container, f"{model}-d{n}", many(12, f"{model}{n}"), 1, model=model) for n in (1, 2)]
        olds[model] = select(model, records[:1], OPTIONS, utcnow())
        assert build_corpus(container, olds[model]).done
        next_second()
        assert build_corpus(container, select(model, records, OPTIONS, utcnow())).done
    leased = container.get_blob_client(corpus_blob("stuck", olds["stuck"].corpus_id, "train.jsonl"))
    lease = leased.acquire_lease()  # someone else's lease on a blob: its deletion is refused
    try:
        done = collect_corpora(context(settings, ledger, keep=1), models)
    finally:
        lease.release()

    assert done["stuck"].startswith("error: ") and "lease" in done["stuck"].lower()
    assert done[f"{MODEL}/{olds[MODEL].corpus_id}"].startswith("deleted: ")
    assert read_manifest(container, MODEL, olds[MODEL].corpus_id) is None
    assert read_manifest(container, "stuck", olds["stuck"].corpus_id) is None  # manifest first: incomplete now
    assert retain_corpora(context(settings, ledger, keep=1), "stuck") == {
        "stuck/" + olds["stuck"].corpus_id: "deleted: incomplete, with nothing a build would resume from"
    }
