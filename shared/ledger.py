"""The app's state in Azure Table storage: datasets, runs, models, activity and leases (the records themselves
are in ``shared.records``; this module re-exports them as the ledger's vocabulary).

Why tables: every Function instance and every trigger (blob, Event Grid, timer, HTTP) must agree on what
has happened, and the storage account the Functions host already needs gives us that for free. Writes
use optimistic concurrency (ETags): a writer that lost a race gets ``ConflictError`` (or ``mutate``
retries it against the fresh record); nothing is ever silently overwritten. Tables are created on demand.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from shared.errors import Conflict
from shared.records import (
    ActivityRecord,
    DatasetRecord,
    LeaseRecord,
    ModelRecord,
    Record,
    RunRecord,
    TrainingRecord,
)
from shared.settings import Settings
from shared.timeutil import iso, parse_iso, utcnow

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

log = logging.getLogger(__name__)

__all__ = [
    "ActivityRecord",
    "AlreadyExistsError",
    "ConflictError",
    "DatasetRecord",
    "LeaseRecord",
    "Ledger",
    "ModelRecord",
    "Record",
    "RunRecord",
    "TrainingRecord",
    "get_ledger",
    "reset_ledger",
]


class ConflictError(Conflict, RuntimeError):
    """Another writer changed the record since it was read (ETag mismatch)."""

    code = "etag_conflict"


class AlreadyExistsError(Conflict, RuntimeError):
    """A record with the same keys already exists."""

    code = "already_exists"


R = TypeVar("R", bound=Record)


def _odata_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Ledger:
    """Typed access to the state tables. One instance per process is enough (clients are thread-safe)."""

    def __init__(self, settings: Settings, service: TableServiceClient | None = None):
        self._settings = settings
        self._service = service
        self._tables: dict[str, TableClient] = {}

    def _table(self, cls: type[Record]) -> TableClient:
        name = f"{self._settings.ledger_table_prefix}{cls.TABLE}"
        client = self._tables.get(name)
        if client is None:
            from azure.core.exceptions import ResourceExistsError

            if self._service is None:
                from shared.storage import table_service

                self._service = table_service(self._settings)
            with contextlib.suppress(ResourceExistsError):
                self._service.create_table(name)
            client = self._service.get_table_client(name)
            self._tables[name] = client
        return client

    # -- reads -------------------------------------------------------------------------------
    def get(self, cls: type[R], partition: str, row: str) -> R | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._table(cls).get_entity(partition, row)
        except ResourceNotFoundError:
            return None
        return cls.from_entity(entity)

    def query(self, cls: type[R], where: str | None = None, **params: Any) -> Iterator[R]:
        """Entities matching an OData filter; ``@name`` placeholders are bound from ``params``."""
        table = self._table(cls)
        entities = table.query_entities(where, parameters=params) if where else table.list_entities()
        for entity in entities:
            yield cls.from_entity(entity)

    def query_eq(self, cls: type[R], **equals: str) -> list[R]:
        where = " and ".join(f"{key} eq {_odata_quote(str(value))}" for key, value in equals.items())
        return list(self.query(cls, where))

    # -- writes ------------------------------------------------------------------------------
    def create(self, record: R) -> R:
        from azure.core.exceptions import ResourceExistsError

        try:
            meta = self._table(type(record)).create_entity(record.to_entity())
        except ResourceExistsError as exc:
            raise AlreadyExistsError(f"{type(record).__name__} {record.keys()} already exists") from exc
        record.etag = meta.get("etag")
        return record

    def save(self, record: R) -> R:
        """Store a record read earlier; raise ``ConflictError`` if someone else changed it meanwhile."""
        if record.etag is None:
            return self.create(record)
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            meta = self._table(type(record)).update_entity(
                record.to_entity(),
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConflictError(f"{type(record).__name__} {record.keys()} changed since it was read") from exc
        record.etag = meta.get("etag")
        return record

    def upsert(self, record: R) -> R:
        """Last writer wins. Only for records where that is the intent (activity timestamps)."""
        from azure.data.tables import UpdateMode

        meta = self._table(type(record)).upsert_entity(record.to_entity(), mode=UpdateMode.REPLACE)
        record.etag = meta.get("etag")
        return record

    def delete(self, record: Record) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        pk, rk = record.keys()
        kwargs: dict[str, Any] = {}
        if record.etag:
            kwargs = {"etag": record.etag, "match_condition": MatchConditions.IfNotModified}
        try:
            self._table(type(record)).delete_entity(pk, rk, **kwargs)
        except ResourceModifiedError as exc:
            raise ConflictError(f"{type(record).__name__} {record.keys()} changed since it was read") from exc

    def mutate(
        self,
        cls: type[R],
        partition: str,
        row: str,
        change: Callable[[R | None], R | None],
        attempts: int = 8,
    ) -> R | None:
        """Read-modify-write with ETags, retried on conflict. ``change`` gets the current record (or None)
        and returns the record to store, or None to leave it as it is. It may run more than once."""
        for attempt in range(attempts):
            current = self.get(cls, partition, row)
            updated = change(current)
            if updated is None:
                return current
            try:
                return self.save(updated)
            except (ConflictError, AlreadyExistsError):
                log.debug("ledger conflict on %s %s/%s, attempt %d", cls.__name__, partition, row, attempt + 1)
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise ConflictError(f"{cls.__name__} {partition}/{row}: gave up after {attempts} conflicting writes")

    # -- leases ------------------------------------------------------------------------------
    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``owner``; False when someone else holds a live one."""
        now = utcnow()
        lease = self.get(LeaseRecord, "leases", name)
        if lease is not None and lease.owner != owner:
            expires = parse_iso(lease.expires_at)
            if expires is not None and expires > now:
                return False
        if lease is None:
            lease = LeaseRecord(name=name)
        lease.owner = owner
        lease.expires_at = iso(now + timedelta(seconds=seconds))
        try:
            self.save(lease)
        except (ConflictError, AlreadyExistsError):
            return False
        return True

    def release_lease(self, name: str, owner: str) -> None:
        lease = self.get(LeaseRecord, "leases", name)
        if lease is None or lease.owner != owner:
            return
        try:
            self.delete(lease)
        except ConflictError:
            log.debug("lease %s changed before release", name)

    def lease_held(self, name: str, now_iso: str | None = None) -> bool:
        lease = self.get(LeaseRecord, "leases", name)
        if lease is None:
            return False
        expires = parse_iso(lease.expires_at)
        now = parse_iso(now_iso) if now_iso else utcnow()
        return expires is not None and now is not None and expires > now


_default: Ledger | None = None


def get_ledger() -> Ledger:
    """The process-wide ledger on the configured storage account (created on first use)."""
    global _default
    if _default is None:
        from shared.settings import get_settings

        _default = Ledger(get_settings())
    return _default


def reset_ledger() -> None:
    """Forget the process-wide ledger (tests switch settings between cases)."""
    global _default
    _default = None
