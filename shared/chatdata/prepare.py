"""The preparation: stream lines through the rules, dedup, split by hash, write train/test/rejected, report.

Every non-blank input line ends in exactly one of train, test or rejected (``train + test + rejected ==
total_lines``); nothing is dropped silently. Memory is constant in the input size apart from the dedup set
(one 16-byte digest per kept conversation). Writers are plain ``write(bytes)`` callables so the same code writes
local files (CLI, benchmark) and staged blob blocks (ingest); they are given ~1 MiB blocks as ``bytearray`` objects
that are never changed after the call, so a writer may keep them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import orjson
from xxhash import xxh3_128_digest

from shared.chatdata import rules, stats
from shared.chatdata.overlap import Overlap
from shared.chatdata.reader import InputError, StreamInfo, TooLong, decompressed, iter_lines
from shared.chatdata.rows import clean_line
from shared.chatdata.sniff import describe_non_jsonl

if TYPE_CHECKING:
    from types import SimpleNamespace

    from shared.settings import Settings

Writer = Callable[[bytes], Any]

RAW_CHARS = 2048  # raw text kept per rejected line
FIRST_REJECTIONS = 20  # rejections echoed in the report itself
FLUSH_BYTES = 1 << 20
WRITES_IN_FLIGHT = 4  # output blocks queued for the writing thread (memory: this many MiB at most)
DIGEST_BYTES = 16

# whole-dataset rejection codes
EMPTY_FILE = "empty_file"
NOT_JSONL = "not_jsonl"
UNREADABLE = "unreadable"
TOO_FEW_TRAIN_ROWS = "too_few_train_rows"
TOO_FEW_TEST_ROWS = "too_few_test_rows"


class PrepareOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of one preparation; ``from_settings`` maps the app settings onto them."""

    test_percent: int = 10
    max_line_bytes: int = 1 << 20
    max_seq_length: int = 2048
    min_train_rows: int = 10
    min_test_rows: int = 1
    epochs: float = 3  # the notebook's num_train_epochs, for the training-token estimate
    source: str = ""
    # the app settings a preparation follows, by environment name (``from_settings`` reads exactly these)
    SETTINGS: ClassVar[tuple[str, ...]] = (
        "TEST_SPLIT_PERCENT",
        "MAX_LINE_BYTES",
        "MAX_SEQ_LENGTH",
        "MIN_TRAIN_ROWS",
        "FINETUNE_PARAMETERS",
    )

    def __post_init__(self) -> None:
        if not 0 <= self.test_percent <= 100:
            raise ValueError(f"test percent must be between 0 and 100, got {self.test_percent}")

    @classmethod
    def from_settings(cls, settings: Settings | SimpleNamespace, **overrides: Any) -> PrepareOptions:
        """From the app's settings, or from ``load_some_settings(SETTINGS)`` as a namespace (offline CLI)."""
        epochs = settings.finetune_parameters.get("num_train_epochs") or 3
        values: dict[str, Any] = {
            "test_percent": settings.test_split_percent,
            "max_line_bytes": settings.max_line_bytes,
            "max_seq_length": settings.max_seq_length,
            "min_train_rows": settings.min_train_rows,
            "epochs": epochs if isinstance(epochs, (int, float)) else 3,
        }
        values.update(overrides)
        return cls(**values)


class _Buffered:
    """Collects output lines and hands them to the writer in ~1 MiB pieces (one blob block, one file write).

    Lines are appended to one ``bytearray`` (no object per line, no join); a full block is handed over as it is and
    never touched again, and a new one started. The blocks go through ``writing``, shared by the three outputs:
    written beside the parsing (file and network writes release the GIL) but one at a time and in order, so a
    writer never sees two calls at once."""

    __slots__ = ("block", "count", "writer", "writing")

    def __init__(self, writer: Writer, writing: Overlap):
        self.writer = writer
        self.writing = writing
        self.block = bytearray()
        self.count = 0

    def add(self, line: bytes) -> None:
        self.block += line
        self.count += 1
        if len(self.block) >= FLUSH_BYTES:
            self.flush()

    def add_row(self, prompt_json: bytes, prompt_id_json: bytes, messages_json: bytes | bytearray, end: bytes) -> None:
        """Add one output row from its pieces, copied once, straight into the block."""
        block = self.block
        block += b'{"prompt":'
        block += prompt_json
        block += b',"prompt_id":'
        block += prompt_id_json
        block += b',"messages":'
        block += messages_json
        block += end
        self.count += 1
        if len(block) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.block:
            self.writing.submit(self.writer, self.block)  # type: ignore[arg-type]  # bytes-like, never changed again
            self.block = bytearray()


def split_of(digest: bytes, test_percent: int) -> str:
    """ "test" for ``test_percent``% of conversations by their hash: the same conversation always lands in the
    same split, whichever file (and however many files) it arrives in."""
    return "test" if int.from_bytes(digest[:8], "big") % 100 < test_percent else "train"


def conversation_digest(messages_json: bytes, tools_json: bytes | None = None) -> bytes:
    """Fixed-size digest of the normalised conversation (compact JSON of the messages, and of tools when given):
    the dedup and split key. XXH3-128: a frozen, platform-independent algorithm (so splits never move), and
    about 4x faster than SHA-256, which matters once per row. The dataset id uses SHA-256 (see reader)."""
    if tools_json is None:
        return xxh3_128_digest(messages_json)
    return xxh3_128_digest(messages_json + b"\x00" + tools_json)


class _Run:
    """State of one preparation (kept off the hot loop's locals only where it must be shared)."""

    def __init__(self, options: PrepareOptions, train: Writer, test: Writer, rejected: Writer, write_beside: bool):
        self.options = options
        self.max_seq_length = options.max_seq_length
        self.test_percent = options.test_percent
        self.writing = Overlap(WRITES_IN_FLIGHT, beside=write_beside)
        self.train = _Buffered(train, self.writing)
        self.test = _Buffered(test, self.writing)
        self.rejected = _Buffered(rejected, self.writing)
        self.reasons: Counter[str] = Counter()
        self.warnings: Counter[str] = Counter()
        self.shapes: Counter[str] = Counter()
        self.tokens: Counter[int] = Counter()
        self.messages: Counter[int] = Counter()
        self.first_rejections: list[dict[str, Any]] = []
        self.seen: dict[bytes, int] = {}  # digest -> first line number
        self.total = 0
        self.blank = 0
        self.objects = 0
        self.over_max_seq = 0
        self.train_tokens = 0
        self.rows_with_tools = 0  # kept rows that carry tools (the corpus reads the others without a parse)

    def reject(self, line_no: int, reason: str, detail: str, raw: bytes | str, raw_len: int | None = None) -> None:
        self.reasons[reason] += 1
        text = raw if isinstance(raw, str) else raw[: RAW_CHARS * 4].decode("utf-8", errors="replace")
        length = raw_len if raw_len is not None else len(raw)
        entry: dict[str, Any] = {"line": line_no, "reason": reason, "detail": detail[: rules.DETAIL_CHARS]}
        if len(text) > RAW_CHARS or length > RAW_CHARS * 4:
            entry["raw"] = text[:RAW_CHARS]
            entry["raw_bytes"] = length  # cut: the full line stays in the original upload
        else:
            entry["raw"] = text
        self.rejected.add(orjson.dumps(entry) + b"\n")
        if len(self.first_rejections) < FIRST_REJECTIONS:
            self.first_rejections.append({k: entry[k] for k in ("line", "reason", "detail")})

    def accept(self, line_no: int, raw: bytes, conv: rules.Conversation) -> None:
        """Keep a line that the full check passed (the slow way: tools, extra keys, warnings)."""
        dumps = orjson.dumps
        prompt = conv.prompt
        if prompt is None:
            prompt = next((m["content"] for m in conv.messages if m["role"] == "user"), "")
        self.keep(
            line_no,
            raw,
            dumps(conv.messages),
            prompt,
            conv.prompt_id,
            conv.shape,
            conv.chars,
            len(conv.messages),
            None if conv.tools is None else dumps(conv.tools),
            conv.warnings,
        )

    def keep(
        self,
        line_no: int,
        raw: bytes,
        messages_json: bytes | bytearray,
        prompt: str,
        prompt_id: str | None,
        shape: str,
        chars: int,
        count: int,
        tools_json: bytes | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        """Dedup, write to train or test, and count one valid conversation (both ways end here: the hot path)."""
        digest = (
            xxh3_128_digest(messages_json) if tools_json is None else conversation_digest(messages_json, tools_json)
        )
        first = self.seen.setdefault(digest, line_no)
        if first != line_no:
            self.reject(line_no, rules.DUPLICATE, f"same conversation as line {first}", bytes(raw))
            return
        if warnings:
            self.warnings.update(warnings)
        if tools_json is not None:
            self.rows_with_tools += 1
        self.shapes[shape] += 1
        tokens = stats.estimate_tokens(chars, count)
        self.tokens[tokens] += 1
        self.messages[count] += 1
        if tokens > self.max_seq_length:
            self.over_max_seq += 1
        if int.from_bytes(digest[:8], "big") % 100 < self.test_percent:  # split_of, inlined: the hot path
            out = self.test
        else:
            out = self.train
            self.train_tokens += tokens
        dumps = orjson.dumps
        out.add_row(
            dumps(prompt),
            dumps(prompt_id or digest.hex()),
            messages_json,
            b"}\n" if tools_json is None else b',"tools":' + tools_json + b"}\n",
        )


def prepare(
    chunks: Iterable[bytes],
    train: Writer,
    test: Writer,
    rejected: Writer,
    options: PrepareOptions | None = None,
    *,
    write_beside: bool = True,
    content_sha256: str = "",
) -> dict[str, Any]:
    """Prepare one input stream (chunks of bytes, gzip or not) into the three writers; return the report.

    Never raises for bad data: bad lines are rejected one by one, and an unreadable stream (corrupt gzip) or a
    dataset too small to train on is rejected as a whole with ``accepted: false`` and a ``rejection`` sentence.
    ``write_beside``: hand each ~1 MiB block to a helper thread, for writers that wait on the network (blob
    blocks); pass False for local files, whose writes are quick: handing them over costs more CPU than it saves.
    ``content_sha256``: the content's SHA-256 when the caller read the very same bytes before (ingest's first pass
    reads the same blob version): it names the dataset, and the content is not hashed a second time.
    """
    options = options or PrepareOptions()
    started = time.perf_counter()
    info = StreamInfo(known_sha256=content_sha256)
    run = _Run(options, train, test, rejected, write_beside)
    try:
        unreadable = _run_lines(chunks, run, info)
        for out in (run.train, run.test, run.rejected):
            out.flush()
    finally:
        run.writing.close()  # every byte written (or the writer's error raised) before the report
    return _report(run, info, options, unreadable, time.perf_counter() - started)


def _run_lines(chunks: Iterable[bytes], run: _Run, info: StreamInfo) -> str | None:
    """The hot loop: every line to train, test or rejected; returns why the stream is unreadable, if it is."""
    options = run.options
    decode, check, LineError, fast = rules.decode_line, rules.check, rules.LineError, clean_line
    scratch = bytearray()  # the clean lines' messages JSON, encoded into one reused buffer
    max_line = options.max_line_bytes
    line_no = 0
    unreadable: str | None = None
    try:
        for raw in iter_lines(decompressed(chunks, info), info, max_line):
            line_no += 1
            if type(raw) is TooLong:
                run.total += 1
                detail = f"{raw.length} bytes, over the limit of {max_line} bytes (MAX_LINE_BYTES)"
                run.reject(line_no, rules.LINE_TOO_LONG, detail, raw.head, raw.length)
                continue
            if not raw or raw.isspace():
                run.blank += 1
                continue
            run.total += 1
            clean = fast(raw, scratch)
            if clean is not None:
                run.objects += 1
                run.keep(line_no, raw, *clean)
                continue
            try:
                value = decode(raw)
                if type(value) is dict:
                    run.objects += 1
                conv = check(value)
            except LineError as err:
                run.reject(line_no, err.reason, err.detail, raw)
                continue
            run.accept(line_no, raw, conv)
    except InputError as exc:
        unreadable = str(exc)
    return unreadable


def _verdict(run: _Run, info: StreamInfo, options: PrepareOptions, unreadable: str | None) -> dict[str, str] | None:
    if unreadable:
        return {"code": UNREADABLE, "message": f"The file cannot be read to the end: {unreadable}."}
    if run.total == 0:
        return {"code": EMPTY_FILE, "message": "The file is empty: it holds no non-blank line."}
    if run.train.count + run.test.count == 0 and run.objects * 2 < run.total:
        # nothing usable and most lines are not even JSON objects: say what the file is, in one sentence
        return {"code": NOT_JSONL, "message": describe_non_jsonl(info.head)}
    if run.train.count < options.min_train_rows:
        return {
            "code": TOO_FEW_TRAIN_ROWS,
            "message": f"Only {run.train.count} training conversation(s) after validation; at least "
            f"{options.min_train_rows} are needed (MIN_TRAIN_ROWS, Azure ML's minimum). "
            f"{run.total - run.train.count - run.test.count} of {run.total} lines were rejected: see reasons.",
        }
    if run.test.count < options.min_test_rows:
        return {
            "code": TOO_FEW_TEST_ROWS,
            "message": f"No conversation landed in the test split ({options.test_percent}% by hash, "
            f"TEST_SPLIT_PERCENT); add conversations or raise TEST_SPLIT_PERCENT.",
        }
    return None


def _report(
    run: _Run, info: StreamInfo, options: PrepareOptions, unreadable: str | None, seconds: float
) -> dict[str, Any]:
    verdict = _verdict(run, info, options, unreadable)
    shapes = dict(run.shapes.most_common())
    token_stats = stats.percentiles(run.tokens)
    kept = run.train.count + run.test.count
    return {
        "dataset_id": info.dataset_id,
        "content_sha256": info.content_sha256,
        "source": options.source,
        "accepted": verdict is None,
        "rejection": verdict,
        "format": next(iter(shapes)) if len(shapes) == 1 else ("mixed" if shapes else "none"),
        "formats": shapes,
        "total_lines": run.total,
        "blank_lines": run.blank,
        "train": run.train.count,
        "test": run.test.count,
        "rejected": run.rejected.count,
        "reasons": dict(run.reasons.most_common()),
        "warnings": dict(run.warnings.most_common()),
        "first_rejections": run.first_rejections,
        "tokens_per_example": {**token_stats, "mean": stats.mean(run.tokens)},
        "over_max_seq_length": run.over_max_seq,
        "rows_with_tools": run.rows_with_tools,
        "max_seq_length": options.max_seq_length,
        "token_estimate": stats.TOKEN_ESTIMATE_METHOD,
        "messages_per_example": {
            "min": stats.percentiles(run.messages)["min"],
            "p50": stats.percentiles(run.messages)["p50"],
            "max": stats.percentiles(run.messages)["max"],
            "mean": stats.mean(run.messages),
        },
        "train_tokens": run.train_tokens,
        "epochs": options.epochs,
        "estimated_training_tokens": int(run.train_tokens * options.epochs),
        "test_split_percent": options.test_percent,
        "min_train_rows": options.min_train_rows,
        "bytes": info.content_bytes,
        "input_bytes": info.input_bytes,
        "compression": info.compression,
        "bom": info.bom,
        "line_endings": info.line_endings,
        "seconds": round(seconds, 3),
        "mb_per_second": round(info.input_bytes / 1e6 / seconds, 1) if seconds > 0 else None,
        "kept_fraction": round(kept / run.total, 4) if run.total else 0.0,
    }
