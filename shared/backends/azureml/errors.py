"""Azure errors → ``BackendError`` worded for the person who has to act on them.

Why: a run that fails with "(AuthorizationFailed) The client '...' does not have authorization to perform
action 'Microsoft.MachineLearningServices/workspaces/jobs/write'" tells an operator little; "the identity
needs the AzureML Data Scientist role on workspace X" tells them what to click. Transient failures (throttling,
5xx, network) are marked ``retryable`` so the reconciler simply tries again on a later tick.

No Azure SDK import at module level: ``azure.core.exceptions`` is imported inside ``to_backend_error``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from shared.backends.base import BackendError

if TYPE_CHECKING:
    from shared.settings import Settings

QUOTA_CODES = re.compile(r"quota", re.IGNORECASE)
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
DATA_SCIENTIST = "AzureML Data Scientist"


def workspace_words(settings: Settings) -> str:
    return (
        f"workspace {settings.azureml_workspace_name} (resource group {settings.azure_resource_group}, "
        f"subscription {settings.azure_subscription_id})"
    )


def identity_words(settings: Settings) -> str:
    if settings.azure_client_id:
        return f"the managed identity {settings.azure_client_id} (AZURE_CLIENT_ID)"
    return "the app's identity"


def _status_and_code(exc: BaseException) -> tuple[int | None, str, str]:
    status = getattr(exc, "status_code", None)
    error = getattr(exc, "error", None)
    code = str(getattr(error, "code", "") or "")
    message = str(getattr(error, "message", "") or getattr(exc, "message", "") or exc)
    return status, code, message


def quota_advice(setting: str, size: str) -> str:
    return (
        f"Not enough quota for {size or 'this VM size'}. Azure ML needs 20% spare quota on top of what a "
        "deployment uses (for upgrades), so request more quota for that VM family in the workspace's region "
        f"or choose a smaller size in {setting}."
    )


def is_not_found(exc: BaseException) -> bool:
    """A 404 from the REST API (``ResourceNotFoundError`` or an ``HttpResponseError`` with status 404)."""
    return getattr(exc, "status_code", None) == 404 or type(exc).__name__ == "ResourceNotFoundError"


def to_backend_error(
    exc: BaseException,
    settings: Settings,
    *,
    action: str,
    setting: str | None = None,
    size: str = "",
) -> BackendError:
    """Translate ``exc`` raised while doing ``action`` (e.g. "submit the fine-tuning job")."""
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, BackendError):
        return exc
    status, code, message = _status_and_code(exc)
    where = workspace_words(settings)
    if (
        isinstance(exc, ClientAuthenticationError)
        or type(exc).__name__ == "CredentialUnavailableError"
        or (status == 401)
    ):
        return BackendError(
            f"Could not authenticate to Azure to {action}: {message}. In Azure the Function App's managed identity "
            "is used; set AZURE_CLIENT_ID to its client id when it is user-assigned. Locally, sign in with "
            "'az login'.",
            setting="AZURE_CLIENT_ID",
            code="auth",
        )
    if status == 403 or code in {"AuthorizationFailed", "Forbidden", "LinkedAuthorizationFailed"}:
        return BackendError(
            f"Permission denied to {action}: {identity_words(settings)} needs the '{DATA_SCIENTIST}' role on "
            f"{where} (and 'Reader' on its resource group to read metrics). Azure said: {message}",
            setting="AZURE_CLIENT_ID",
            code="forbidden",
        )
    if QUOTA_CODES.search(code) or (status in (400, 409) and QUOTA_CODES.search(message)):
        return BackendError(
            f"Could not {action}: {quota_advice(setting or 'INSTANCE_TYPE', size)} Azure said: {message}",
            setting=setting or "INSTANCE_TYPE",
            code="quota",
        )
    if status in RETRYABLE_STATUS or (isinstance(exc, (ServiceRequestError, ServiceResponseError)) and not status):
        return BackendError(
            f"Azure ML is busy or unreachable ({status or type(exc).__name__}) while trying to {action}; "
            f"it will be tried again. Azure said: {message}",
            retryable=True,
            code="transient",
        )
    if code in {"WorkspaceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound"}:
        return BackendError(
            f"Could not {action}: {where} was not found. Check AZUREML_WORKSPACE_NAME, AZURE_RESOURCE_GROUP and "
            f"AZURE_SUBSCRIPTION_ID. Azure said: {message}",
            setting="AZUREML_WORKSPACE_NAME",
            code="workspace_not_found",
        )
    return BackendError(
        f"Could not {action}: {message}" + (f" (check {setting})" if setting else ""),
        setting=setting,
        code=code or type(exc).__name__,
    )
