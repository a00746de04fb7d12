"""Event Grid-sourced blob triggers: watch the container, deliver each new or changed blob once.

Why a watcher: in Azure, a storage account sends BlobCreated through Event Grid to
``/runtime/webhooks/blobs``; Azurite sends no events, so the devhost lists the container every few seconds
and delivers what is new. The webhook is served as well, for anything that does post events.

Exactly once, across restarts: like the Functions host's blob receipts (``azure-webjobs-hosts``), each delivery
is recorded in a table of the host's storage account (``devhostblobreceipts``: partition = function, row =
container/blob, with the blob's ETag). A blob fires again only when its ETag changes. A failing function is
retried on the next scan, up to ``MAX_ATTEMPTS`` times per ETag, then recorded as poison (as Azure moves the
message to a poison queue after five tries).

What the function receives depends on its parameter's annotation, as with the worker: the blob extension's
SDK types (``azurefunctions.extensions.bindings.blob.BlobClient``, ``ContainerClient``,
``StorageStreamDownloader``) get a client for the blob, so a multi-GB blob is streamed, never loaded;
``func.InputStream`` (or no annotation), ``bytes`` and ``str`` get the content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, unquote, urlparse

from azure.functions.blob import InputStream

from devhost.bindings import BLOB_TRIGGER, FunctionSpec, InvocationFailed, Invoker, finish_tasks
from devhost.settings import ConfigError, resolve

log = logging.getLogger("devhost")

RECEIPTS_TABLE = "devhostblobreceipts"
HOST_STORAGE = "AzureWebJobsStorage"
MAX_ATTEMPTS = 5
_SDK_TYPES = ("BlobClient", "ContainerClient", "StorageStreamDownloader")
_SUBJECT = re.compile(r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<blob>.+)$")


@dataclass(frozen=True)
class BlobPath:
    """A trigger path such as ``%TRAINING_CONTAINER%/incoming/{name}``, resolved and compiled."""

    container: str
    prefix: str  # the literal start of the blob name: what to list
    pattern: re.Pattern[str]

    def match(self, container: str, blob: str) -> dict[str, str] | None:
        if container != self.container:
            return None
        found = self.pattern.fullmatch(blob)
        return found.groupdict() if found else None


def parse_blob_path(raw: str, environ: MutableMapping[str, str] | None = None) -> BlobPath:
    """Resolve ``%SETTING%`` and compile ``{param}`` parts; the last parameter may span ``/``."""
    path = resolve(raw, environ, what="blob trigger path").strip("/")
    container, _, name = path.partition("/")
    if not container or "{" in container:
        raise ConfigError(f"blob trigger path {raw!r}: the first segment must be a container name")
    regex, position = "", 0
    params = list(re.finditer(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", name))
    for index, match in enumerate(params):
        regex += re.escape(name[position : match.start()])
        regex += f"(?P<{match.group(1)}>.+)" if index == len(params) - 1 else f"(?P<{match.group(1)}>[^/]+?)"
        position = match.end()
    regex += re.escape(name[position:])
    prefix = name[: params[0].start()] if params else name
    return BlobPath(container, prefix, re.compile(regex or ".+"))


def plain_etag(etag: str) -> str:
    """An ETag without its quotes: listings give ``0x8D...``, blob properties ``"0x8D..."``."""
    return str(etag).strip('"')


def blob_service(connection: str, environ: MutableMapping[str, str] | None = None) -> Any:
    """A BlobServiceClient for a binding's ``connection`` setting (connection string or identity-based)."""
    from azure.storage.blob import BlobServiceClient

    env = os.environ if environ is None else environ
    if env.get(connection):
        return BlobServiceClient.from_connection_string(env[connection])
    url = env.get(f"{connection}__blobServiceUri") or env.get(f"{connection}__serviceUri")
    if not url and env.get(f"{connection}__accountName"):
        url = f"https://{env[f'{connection}__accountName']}.blob.core.windows.net"
    if not url:
        raise ConfigError(f"connection setting {connection} (or {connection}__blobServiceUri) is not set")
    from azure.identity import DefaultAzureCredential

    return BlobServiceClient(url, credential=DefaultAzureCredential())


class Receipts:
    """Delivered blobs, per function, in a table of the host's storage account (see module doc)."""

    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        from azure.data.tables import TableServiceClient

        env = os.environ if environ is None else environ
        if not env.get(HOST_STORAGE):
            raise ConfigError(f"{HOST_STORAGE} must be a connection string for devhost's blob receipts")
        service = TableServiceClient.from_connection_string(env[HOST_STORAGE], retry_total=2)
        self._table = service.create_table_if_not_exists(RECEIPTS_TABLE)

    @staticmethod
    def row_key(container: str, blob: str) -> str:
        key = quote(f"{container}/{blob}", safe="")  # table keys may not hold / \ # ?
        return key if len(key) <= 512 else hashlib.sha256(key.encode()).hexdigest()

    def load(self, function: str) -> dict[str, dict[str, Any]]:
        """Every receipt of ``function``, by row key."""
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": function})
        return {row["RowKey"]: dict(row) for row in rows}

    def get(self, function: str, container: str, blob: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(self._table.get_entity(function, self.row_key(container, blob)))
        except ResourceNotFoundError:
            return None

    def put(self, function: str, container: str, blob: str, etag: str, status: str, attempts: int) -> None:
        entity = {
            "PartitionKey": function,
            "RowKey": self.row_key(container, blob),
            "Blob": f"{container}/{blob}",
            "BlobETag": etag,
            "Status": status,
            "Attempts": attempts,
        }
        self._table.upsert_entity(entity)


@dataclass
class BlobTrigger:
    spec: FunctionSpec
    path: BlobPath
    connection: str
    client: Any  # BlobServiceClient


def blob_argument(trigger: BlobTrigger, container: str, blob: str) -> Any:
    """The value for the trigger parameter, by its annotation (see module doc). Runs in a worker thread."""
    annotation = trigger.spec.arg_type()
    module = getattr(annotation, "__module__", "")
    if module.startswith("azurefunctions.extensions.bindings.blob") and annotation.__name__ in _SDK_TYPES:
        return _sdk_argument(annotation, trigger.connection, container, blob)
    client = trigger.client.get_blob_client(container, blob)
    downloader = client.download_blob()
    data = downloader.readall()
    if annotation is bytes:
        return data
    if annotation is str:
        return data.decode("utf-8")
    properties = downloader.properties
    return InputStream(
        data=data,
        name=f"{container}/{blob}",
        uri=client.url,
        length=properties.size,
        blob_properties={"ContentLength": properties.size, "ETag": properties.etag},
        metadata=dict(properties.metadata or {}),
    )


def _sdk_argument(pytype: type, connection: str, container: str, blob: str) -> Any:
    """Decode through the extension's own converter, from the model binding data the host would send."""
    from azurefunctions.extensions.base import Datum
    from azurefunctions.extensions.bindings import blob as blob_extension

    content = json.dumps({"Connection": connection, "ContainerName": container, "BlobName": blob})
    value = SimpleNamespace(version="1.0", source="AzureStorageBlobs", content_type="application/json", content=content)
    return blob_extension.BlobClientConverter.decode(
        Datum(value=value, type="model_binding_data"), trigger_metadata=None, pytype=pytype
    )


def blob_from_event(event: dict[str, Any]) -> tuple[str, str] | None:
    """(container, blob name) of a BlobCreated event, from its subject (or data.url)."""
    subject = str(event.get("subject") or "")
    found = _SUBJECT.match(subject)
    if found:
        return found.group("container"), found.group("blob")
    data = event.get("data")
    url = data.get("url") if isinstance(data, dict) else None
    if url:
        container, _, blob = unquote(urlparse(str(url)).path).lstrip("/").partition("/")
        if container and blob:
            return container, blob
    return None


class BlobTriggers:
    """The app's blob triggers: a watcher per trigger, the webhook's deliveries, one receipt store."""

    def __init__(self, specs: list[FunctionSpec], invoker: Invoker, poll_seconds: float = 2.0) -> None:
        self._invoker = invoker
        self._poll_seconds = poll_seconds
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._seen: dict[str, dict[str, str]] = {}  # function → row key → delivered ETag
        self._receipts: Receipts | None = None
        self.triggers: dict[str, BlobTrigger] = {}
        self.errors: dict[str, str] = {}
        for spec in specs:
            if spec.trigger_type != BLOB_TRIGGER:
                continue
            try:
                connection = str(spec.trigger.get("connection") or HOST_STORAGE)
                path = parse_blob_path(str(spec.trigger.get("path", "")))
                self.triggers[spec.name] = BlobTrigger(spec, path, connection, blob_service(connection))
            except ConfigError as exc:
                self.errors[spec.name] = str(exc)
                log.error("function %s is disabled: %s", spec.name, exc)

    def start(self) -> None:
        for trigger in self.triggers.values():
            self._tasks.append(asyncio.create_task(self._watch(trigger), name=f"blobs:{trigger.spec.name}"))

    async def _connect(self) -> Receipts | None:
        """The receipt store, retried until storage answers (the host keeps serving meanwhile)."""
        delay = 1.0
        while self._receipts is None and not self._stopping.is_set():
            try:
                self._receipts = await asyncio.to_thread(Receipts)
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - storage not reachable yet: blob triggers wait for it
                log.error("blob triggers wait for storage (%s): %s", HOST_STORAGE, type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, 30.0)
        return self._receipts

    async def _watch(self, trigger: BlobTrigger) -> None:
        try:
            receipts = await self._connect()
        except ConfigError as exc:
            self.errors[trigger.spec.name] = str(exc)
            log.error("function %s is disabled: %s", trigger.spec.name, exc)
            return
        if receipts is None:
            return
        rows = await asyncio.to_thread(receipts.load, trigger.spec.name)
        self._seen[trigger.spec.name] = {
            key: row["BlobETag"] for key, row in rows.items() if row.get("Status") in ("done", "poison")
        }
        container = trigger.client.get_container_client(trigger.path.container)
        missing_logged = False
        while not self._stopping.is_set():
            try:
                blobs = await asyncio.to_thread(
                    lambda: [
                        (b.name, plain_etag(b.etag)) for b in container.list_blobs(name_starts_with=trigger.path.prefix)
                    ]
                )
                missing_logged = False
            except Exception as exc:  # noqa: BLE001 - storage down or container missing: keep watching
                if not missing_logged:
                    problem = "not found yet" if type(exc).__name__ == "ResourceNotFoundError" else type(exc).__name__
                    log.info(
                        "function %s: container %s %s; still watching",
                        trigger.spec.name,
                        trigger.path.container,
                        problem,
                    )
                    missing_logged = True
                blobs = []
            seen = self._seen[trigger.spec.name]
            for name, etag in blobs:
                if self._stopping.is_set():
                    break
                key = Receipts.row_key(trigger.path.container, name)
                if seen.get(key) != etag and trigger.path.match(trigger.path.container, name) is not None:
                    await self.deliver(trigger, trigger.path.container, name, etag, "new blob")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll_seconds)

    async def deliver(
        self, trigger: BlobTrigger, container: str, blob: str, etag: str | None, reason: str, force: bool = False
    ) -> str:
        """Invoke ``trigger`` for one blob unless its receipt says this ETag was delivered (or ``force``).

        Returns ``done``, ``duplicate``, ``missing``, ``failed`` or ``poison``.
        """
        name = trigger.spec.name
        if self._receipts is None:
            log.error("function %s: blob %s/%s not delivered: storage not reachable yet", name, container, blob)
            return "failed"
        lock = self._locks.setdefault((name, container, blob), asyncio.Lock())
        async with lock:
            if etag is None:
                etag = await asyncio.to_thread(self._etag, trigger, container, blob)
                if etag is None:
                    log.warning("function %s: blob %s/%s does not exist (any more)", name, container, blob)
                    return "missing"
            key = Receipts.row_key(container, blob)
            receipt = await asyncio.to_thread(self._receipts.get, name, container, blob)
            same = receipt is not None and receipt.get("BlobETag") == etag
            if same and receipt.get("Status") in ("done", "poison") and not force:
                self._seen.setdefault(name, {})[key] = etag
                return "duplicate"
            attempts = int(receipt.get("Attempts", 0)) + 1 if same else 1
            try:
                argument = await asyncio.to_thread(blob_argument, trigger, container, blob)
                await self._invoker.invoke(
                    trigger.spec, {trigger.spec.arg_name: argument}, f"{reason}: {container}/{blob}"
                )
                status = "done"
            except InvocationFailed:
                status = "poison" if attempts >= MAX_ATTEMPTS else "failed"
            except Exception as exc:  # noqa: BLE001 - the blob could not be read: count it as a failed attempt
                log.error("function %s: cannot bind blob %s/%s: %s", name, container, blob, exc)
                status = "poison" if attempts >= MAX_ATTEMPTS else "failed"
            if status == "poison":
                log.error("function %s: blob %s/%s failed %d times; giving up on it", name, container, blob, attempts)
            await asyncio.to_thread(self._receipts.put, name, container, blob, etag, status, attempts)
            if status != "failed":
                self._seen.setdefault(name, {})[key] = etag
            return status

    @staticmethod
    def _etag(trigger: BlobTrigger, container: str, blob: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return plain_etag(trigger.client.get_blob_client(container, blob).get_blob_properties().etag)
        except ResourceNotFoundError:
            return None

    async def deliver_event(self, trigger: BlobTrigger, event: dict[str, Any]) -> str:
        """Handle one event posted to the blobs webhook; events for other blobs or types are ignored."""
        from devhost.eventgrid import event_type

        if not event_type(event).endswith("BlobCreated"):
            return "ignored"
        where = blob_from_event(event)
        if where is None or trigger.path.match(*where) is None:
            return "ignored"
        return await self.deliver(trigger, where[0], where[1], None, "BlobCreated event")

    async def stop(self, grace: float) -> None:
        """Let running invocations finish (up to ``grace`` seconds), then cancel what is left."""
        self._stopping.set()
        await finish_tasks(self._tasks, grace)
