"""Streaming blob I/O: read a blob in ranged chunks, write one as staged blocks. Never a whole blob in memory.

Why not ``download_blob().readall()`` / ``upload_blob(bytes)``: a training file can be several GB and a Function
instance has 1.5-2 GB of memory. Reads are fixed-size ranged GETs pinned to the ETag seen first (so two passes
over an upload read the same bytes, or fail loudly if it was replaced meanwhile); writes stage ~4 MiB blocks and
commit them at the end, so an output blob appears complete or not at all.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shared.errors import Conflict

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

READ_CHUNK = 4 * 1024 * 1024
BLOCK_SIZE = 4 * 1024 * 1024


def ensure_container(container: Any) -> None:
    """Create the container if it does not exist (Azure's infra creates it; a fresh Azurite has none)."""
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):
        container.create_container()


class BlobChangedError(Conflict, RuntimeError):
    """The blob was replaced while it was being read (its ETag changed)."""

    code = "blob_changed"


def read_chunks(client: BlobClient, etag: str | None = None, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
    """Yield the blob's bytes in ``chunk_size`` ranged reads, all of the version with ``etag`` (default: current)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    pinned = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
    try:
        properties = client.get_blob_properties(**pinned)
    except ResourceModifiedError as exc:
        raise BlobChangedError(f"{client.blob_name} changed before it was read") from exc
    etag, size = properties.etag, properties.size
    offset = 0
    while offset < size:
        length = min(chunk_size, size - offset)
        try:
            downloader = client.download_blob(
                offset=offset,
                length=length,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
                max_concurrency=1,
            )
            data = downloader.readall()
        except ResourceModifiedError as exc:
            raise BlobChangedError(f"{client.blob_name} changed while it was being read") from exc
        if not data:
            break
        offset += len(data)
        yield data


class BlockBlobWriter:
    """``write(bytes)`` into staged blocks; ``close()`` commits them (an empty blob when nothing was written).

    ``block_id_prefix`` (fixed width) names this writer's blocks apart from other writers' to the same blob, so
    that one blob can be built in pieces across invocations: each piece stages its blocks (``stage_rest``
    returns their ids) and the last commits every piece's ids with ``commit_blocks``.
    """

    def __init__(
        self,
        client: BlobClient,
        *,
        content_type: str = "application/x-ndjson",
        metadata: dict[str, str] | None = None,
        block_size: int = BLOCK_SIZE,
        block_id_prefix: str = "",
    ):
        self.client = client
        self.content_type = content_type
        self.metadata = metadata
        self.block_size = block_size
        self.block_id_prefix = block_id_prefix
        self.bytes_written = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._blocks: list[str] = []

    def write(self, data: bytes) -> int:
        self._buffer.append(data)
        self._buffered += len(data)
        self.bytes_written += len(data)
        if self._buffered >= self.block_size:
            self._stage()
        return len(data)

    def _stage(self) -> None:
        if not self._buffered:
            return
        data = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        block_id = block_id_for(self.block_id_prefix, len(self._blocks))
        self.client.stage_block(block_id, data, length=len(data))
        self._blocks.append(block_id)

    def stage_rest(self) -> list[str]:
        """Stage what is buffered and return the ids of every block this writer staged (nothing is committed)."""
        self._stage()
        return list(self._blocks)

    def close(self) -> None:
        commit_blocks(self.client, self.stage_rest(), content_type=self.content_type, metadata=self.metadata)

    def __enter__(self) -> BlockBlobWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()  # on error nothing is committed: staged blocks expire on their own after a week


def block_id_for(prefix: str, index: int) -> str:
    """The id of a writer's ``index``-th block (base64, as the service wants; equal length for equal prefixes)."""
    return base64.b64encode(f"{prefix}{index:08d}".encode()).decode()


def commit_blocks(
    client: BlobClient,
    block_ids: list[str],
    *,
    content_type: str = "application/x-ndjson",
    metadata: dict[str, str] | None = None,
) -> None:
    """Make the blob exactly these staged (or already committed) blocks, in this order."""
    from azure.storage.blob import BlobBlock, ContentSettings

    client.commit_block_list(
        [BlobBlock(block_id=block_id) for block_id in block_ids],
        content_settings=ContentSettings(content_type=content_type),
        metadata=metadata,
    )


def write_json(container: Any, name: str, value: Any) -> None:
    """Store ``value`` as an indented JSON blob (reports, manifests, checkpoints: small files people read)."""
    import orjson
    from azure.storage.blob import ContentSettings

    container.upload_blob(
        name,
        orjson.dumps(value, option=orjson.OPT_INDENT_2),
        overwrite=True,
        content_settings=ContentSettings(content_type="application/json"),
    )


def read_json(container: Any, name: str) -> Any:
    """The JSON blob ``name``, or None when it does not exist."""
    import orjson
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return orjson.loads(container.download_blob(name).readall())
    except ResourceNotFoundError:
        return None
