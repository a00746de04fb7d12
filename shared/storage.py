"""Clients for the app's storage account, from a connection string or an identity-based connection.

Why here: the Functions host reads ``AzureWebJobsStorage`` (or ``AzureWebJobsStorage__accountName`` +
managed identity in Azure) for its own bindings, and our code must reach the same account the same way.
SDK imports stay inside the functions so that importing this module costs nothing at cold start.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shared.settings import Settings

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient


@lru_cache(maxsize=4)
def credential(client_id: str = "") -> Any:
    """DefaultAzureCredential, shared per process (token caches are per credential object)."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id or None)


def _service_uri(settings: Settings, service: str, explicit: str) -> str:
    if explicit:
        return explicit
    return f"https://{settings.storage_account_name}.{service}.core.windows.net"


def blob_service(settings: Settings, **options: Any) -> BlobServiceClient:
    """``options`` go to the SDK client (``retry_total``, ``connection_timeout``...: the health probe's)."""
    from azure.storage.blob import BlobServiceClient

    if settings.storage_connection_string:
        return BlobServiceClient.from_connection_string(settings.storage_connection_string, **options)
    return BlobServiceClient(
        _service_uri(settings, "blob", settings.storage_blob_uri),
        credential=credential(settings.storage_client_id),
        **options,
    )


def table_service(settings: Settings, **options: Any) -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **options)
    return TableServiceClient(
        endpoint=_service_uri(settings, "table", settings.storage_table_uri),
        credential=credential(settings.storage_client_id),
        **options,
    )
