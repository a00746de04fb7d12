"""A model's corpus: every conversation of its datasets that are not excluded, deduplicated across datasets by
the normalised-conversation digest preparation computed, and split by that same digest.

Why a corpus and not the newest file: a model retrained hands-off should grow with its data, not forget
yesterday's file. Splitting by the digest means a conversation's split never changes between corpora (as long as
TEST_SPLIT_PERCENT holds), so the held-out set only grows and never leaks into training.

- ``select``: which datasets are members (CORPUS_MODE, CORPUS_MAX_TRAIN_ROWS, CORPUS_MAX_AGE_DAYS, exclusions)
  and the ``corpus_id`` that names the choice;
- ``merge``: the streaming hot loop (dedup, split), independent of storage;
- ``build``: materialising ``datasets/{model}/corpora/{corpus_id}/`` blob to blob, resumable per member.
"""

from shared.corpus.build import BuildResult, build_corpus, corpus_blob, corpus_prefix, read_manifest
from shared.corpus.merge import CorpusDataError, MemberCounts, Merger
from shared.corpus.select import CUMULATIVE, LATEST, CorpusOptions, Member, Selection, corpus_id, select

__all__ = [
    "CUMULATIVE",
    "LATEST",
    "BuildResult",
    "CorpusDataError",
    "CorpusOptions",
    "Member",
    "MemberCounts",
    "Merger",
    "Selection",
    "build_corpus",
    "corpus_blob",
    "corpus_id",
    "corpus_prefix",
    "read_manifest",
    "select",
]
