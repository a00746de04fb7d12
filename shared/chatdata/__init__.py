"""Chat data preparation: stream, validate, normalise, dedup, split and report any size of JSONL.

Pure Python (no Azure imports), so the CLI, the blob trigger, the benchmark and the tests share one code path.
Entry point: ``prepare(chunks, train, test, rejected, options) -> report``.
"""

from shared.chatdata.prepare import PrepareOptions, conversation_digest, prepare, split_of
from shared.chatdata.reader import InputError, StreamInfo, content_id, file_chunks
from shared.chatdata.rules import REASONS, WARNINGS

__all__ = [
    "REASONS",
    "WARNINGS",
    "InputError",
    "PrepareOptions",
    "StreamInfo",
    "content_id",
    "conversation_digest",
    "file_chunks",
    "prepare",
    "split_of",
]
