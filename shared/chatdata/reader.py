"""Byte stream → lines, in constant memory: gzip (by magic bytes), UTF-8 BOM, LF or CRLF, capped line length.

Why not ``gzip.open``/``io.TextIOWrapper``: the input is an iterator of chunks (a blob download, a file, an HTTP
body), the line cap must hold *while* reading (a 5 GB file with no newline must not be read into memory), and
the exact decompressed bytes feed the content hash that names the dataset.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
HEAD_BYTES = 64 * 1024  # kept for sniffing what a non-JSONL file is
TOO_LONG_HEAD = 4096  # bytes of an over-long line kept for rejected.jsonl
DEFAULT_CHUNK = 4 * 1024 * 1024
DATASET_ID_CHARS = 16


class InputError(ValueError):
    """The stream cannot be read as a whole (corrupt or truncated gzip): one sentence for the report."""


@dataclass(frozen=True, slots=True)
class TooLong:
    """A line over the byte cap: only its first bytes and its length are kept."""

    head: bytes
    length: int


@dataclass
class StreamInfo:
    """What the reader learnt about the stream, filled in while lines are read."""

    input_bytes: int = 0
    content_bytes: int = 0
    compression: str = "none"
    bom: bool = False
    crlf_lines: int = 0
    lf_lines: int = 0
    head: bytes = b""
    _sha: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)

    @property
    def content_sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def dataset_id(self) -> str:
        return dataset_id_from_sha256(self.content_sha256)

    @property
    def line_endings(self) -> str:
        if self.crlf_lines and self.lf_lines:
            return "mixed"
        return "CRLF" if self.crlf_lines else "LF"


def dataset_id_from_sha256(hexdigest: str) -> str:
    """``dataset_id`` = first 16 hex characters of the SHA-256 of the *decompressed* content, so the same data
    gzipped or not is one dataset (64 bits: collisions are not a practical concern per model)."""
    return hexdigest[:DATASET_ID_CHARS]


def file_chunks(handle: BinaryIO, size: int = DEFAULT_CHUNK) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk


def decompressed(chunks: Iterable[bytes], info: StreamInfo) -> Iterator[bytes]:
    """Yield the content bytes: gunzipped when the stream starts with the gzip magic bytes (multi-member too).

    Counts input/content bytes, hashes the content and keeps its first ``HEAD_BYTES`` in ``info``.
    """
    iterator = iter(chunks)
    first = b""
    for chunk in iterator:  # find the first non-empty chunk (and at least 2 bytes for the magic)
        first += chunk
        if len(first) >= 2:
            break
    if not first:
        return
    if first[:2] == GZIP_MAGIC:
        info.compression = "gzip"
        stream = _gunzip(_chain(first, iterator), info)
    else:
        stream = _counted(_chain(first, iterator), info)
    for data in stream:
        if data:
            info.content_bytes += len(data)
            info._sha.update(data)
            if len(info.head) < HEAD_BYTES:
                info.head += data[: HEAD_BYTES - len(info.head)]
            yield data


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _counted(chunks: Iterable[bytes], info: StreamInfo) -> Iterator[bytes]:
    for chunk in chunks:
        info.input_bytes += len(chunk)
        yield chunk


def _gunzip(chunks: Iterable[bytes], info: StreamInfo) -> Iterator[bytes]:
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    fed = False  # has the current gzip member received input (so that ending before its end is truncation)
    for chunk in chunks:
        info.input_bytes += len(chunk)
        data = chunk
        while data:
            if not fed and not data.strip(b"\x00"):
                break  # zero padding after the last member
            fed = True
            try:
                out = decoder.decompress(data, DEFAULT_CHUNK)
            except zlib.error as exc:
                raise InputError(
                    f"the gzip stream is corrupt near compressed byte {info.input_bytes - len(data)}: {exc}"
                ) from exc
            if out:
                yield out
            if decoder.unconsumed_tail:
                data = decoder.unconsumed_tail
            elif decoder.eof:  # a new gzip member may follow (concatenated .gz files are valid gzip)
                data = decoder.unused_data
                decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                fed = False
            else:
                data = b""
    if fed:
        tail = decoder.flush()
        if tail:
            yield tail
        if not decoder.eof:
            raise InputError(
                f"the gzip stream ends early (truncated after {info.input_bytes} compressed bytes); upload it again"
            )


def iter_lines(content: Iterable[bytes], info: StreamInfo, max_line_bytes: int) -> Iterator[bytes | TooLong]:
    """Split content into lines without their terminators (``\\n``, ``\\r\\n``); a leading BOM is dropped.

    Yields ``bytes`` per line (blank ones too, so line numbers stay physical) or ``TooLong`` for a line over
    ``max_line_bytes``; memory stays within a chunk plus ``max_line_bytes``.
    """
    pending = b""
    skipping: bytearray | None = None  # head of an over-long line being skipped
    skipped = 0
    for chunk in _without_bom(content, info):
        if skipping is not None:
            cut = chunk.find(b"\n")
            if cut < 0:
                skipped += len(chunk)
                continue
            skipped += cut
            yield _too_long(bytes(skipping), skipped, info)
            skipping = None
            chunk = chunk[cut + 1 :]
        data = pending + chunk if pending else chunk
        parts = data.split(b"\n")
        pending = parts.pop()
        for part in parts:
            if part.endswith(b"\r"):
                part = part[:-1]
                info.crlf_lines += 1
            else:
                info.lf_lines += 1
            yield part if len(part) <= max_line_bytes else _too_long(part[:TOO_LONG_HEAD], len(part), info, False)
        if len(pending) > max_line_bytes:
            skipping = bytearray(pending[:TOO_LONG_HEAD])
            skipped = len(pending)
            pending = b""
    if skipping is not None:
        yield _too_long(bytes(skipping), skipped, info)
    elif pending:
        if pending.endswith(b"\r"):
            pending = pending[:-1]
        yield pending if len(pending) <= max_line_bytes else TooLong(pending[:TOO_LONG_HEAD], len(pending))


def _too_long(head: bytes, length: int, info: StreamInfo, count: bool = True) -> TooLong:
    if count:
        info.lf_lines += 1
    return TooLong(head, length)


def _without_bom(content: Iterable[bytes], info: StreamInfo) -> Iterator[bytes]:
    iterator = iter(content)
    first = b""
    for chunk in iterator:
        first += chunk
        if len(first) >= len(UTF8_BOM):
            break
    if first.startswith(UTF8_BOM):
        info.bom = True
        first = first[len(UTF8_BOM) :]
    if first:
        yield first
    yield from iterator


def content_id(chunks: Iterable[bytes]) -> StreamInfo:
    """Read a stream only to hash it: the ``dataset_id`` (and sizes) without parsing a line."""
    info = StreamInfo()
    for _ in decompressed(chunks, info):
        pass
    return info
