"""Hot paths without ``azure.ai.ml``: scoring URI + key, invoking an endpoint, and its request metrics.

Why not the SDK here: the gateway resolves a scoring target on a cold request and the sweeper reads activity
every few minutes; importing ``azure.ai.ml`` costs seconds and hundreds of MB. These are three small ARM REST
calls made with azure-core (already loaded by azure-identity and the storage SDKs) and the same credential:
``GET onlineEndpoints/{name}`` and ``POST .../listKeys`` at api-version 2022-02-01-preview (what azure-ai-ml 1.35
sends, in ``../shared/contracts/aml-rest-spec``; key-auth endpoints only, the app creates no other), and Azure Monitor's
``GET {endpoint id}/providers/Microsoft.Insights/metrics`` for ``RequestsPerMinute``.
(azure-monitor-query 2.x dropped ``MetricsQueryClient``; this is the REST call it made.)
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.backends.azureml.errors import to_backend_error
from shared.backends.azureml.naming import to_azure
from shared.backends.base import BackendError, ScoringTarget

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.backends.azureml.client import RetrySettings
    from shared.settings import Settings

log = logging.getLogger(__name__)

ARM = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
ENDPOINTS_API_VERSION = "2022-02-01-preview"
METRICS_API_VERSION = "2018-01-01"
REQUESTS_METRIC = "RequestsPerMinute"
MAX_LOOKBACK = timedelta(days=30)


def endpoint_resource_id(settings: Settings, endpoint: str) -> str:
    return (
        f"/subscriptions/{settings.azure_subscription_id}/resourceGroups/{settings.azure_resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{settings.azureml_workspace_name}"
        f"/onlineEndpoints/{endpoint}"
    )


def _minute(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ArmRest:
    """ARM REST calls with azure-core: bearer token for ARM, retry with backoff on 408/429/5xx."""

    def __init__(
        self,
        settings: Settings,
        credential: Callable[[], Any],
        *,
        transport: Any = None,
        retry: RetrySettings,
    ):
        self.settings = settings
        self._credential = credential
        self._transport = transport
        self._retry = retry
        self._lock = threading.Lock()
        self._arm: Any = None
        self._plain: Any = None

    def _pipeline(self, *, authenticated: bool) -> Any:
        from azure.core import PipelineClient
        from azure.core.pipeline import policies

        chain: list[Any] = [policies.HeadersPolicy(), policies.UserAgentPolicy("autotune")]
        if authenticated:
            chain.append(policies.RetryPolicy(**self._retry.kwargs()))
            chain.append(policies.BearerTokenCredentialPolicy(self._credential(), ARM_SCOPE))
        else:
            chain.append(policies.RetryPolicy(retry_total=0))  # scoring: the caller decides about retries
        chain.append(policies.HttpLoggingPolicy())
        kwargs = {"transport": self._transport} if self._transport is not None else {}
        return PipelineClient(base_url=ARM, policies=chain, **kwargs)

    @property
    def arm(self) -> Any:
        with self._lock:
            if self._arm is None:
                self._arm = self._pipeline(authenticated=True)
            return self._arm

    @property
    def plain(self) -> Any:
        with self._lock:
            if self._plain is None:
                self._plain = self._pipeline(authenticated=False)
            return self._plain

    def _call(self, method: str, path: str, params: dict[str, str], *, action: str) -> Any:
        from azure.core.exceptions import HttpResponseError
        from azure.core.rest import HttpRequest

        try:
            response = self.arm.send_request(HttpRequest(method, ARM + path, params=params))
            if response.status_code >= 400:
                raise HttpResponseError(response=response)
        except HttpResponseError:
            raise
        except Exception as exc:
            raise to_backend_error(exc, self.settings, action=action) from exc
        return response.json() if response.content else {}

    # ---------------------------------------------------------------------------------------- scoring target
    def scoring_target(self, endpoint: str, deployment: str | None = None) -> ScoringTarget:
        """Scoring URI + ``Authorization`` header with the endpoint key (the app's endpoints use key auth)."""
        from azure.core.exceptions import HttpResponseError

        path = endpoint_resource_id(self.settings, endpoint)
        params = {"api-version": ENDPOINTS_API_VERSION}
        action = f"get the scoring address of endpoint {endpoint}"
        try:
            body = self._call("GET", path, params, action=action)
            props = body.get("properties") or {}
            uri = str(props.get("scoringUri") or "")
            if not uri:
                raise BackendError(
                    f"Endpoint {endpoint} has no scoring URI yet (state {props.get('provisioningState')}).",
                    retryable=True,
                    code="endpoint_not_ready",
                )
            mode = str(props.get("authMode") or "Key")
            if mode.lower() != "key":
                # The app creates key-auth endpoints only (endpoints.build_endpoint); another mode means the
                # endpoint was changed by hand, and a token for it would need a different role and refresh.
                raise BackendError(
                    f"Endpoint {endpoint} uses auth mode {mode}; the app creates and scores key-auth endpoints only. "
                    "Set its auth mode back to key, or delete it and let the app recreate it.",
                    code="endpoint_auth_mode",
                )
            secret = str(self._call("POST", f"{path}/listKeys", params, action=action).get("primaryKey") or "")
        except HttpResponseError as exc:
            if exc.status_code == 404:
                raise BackendError(f"Endpoint {endpoint} does not exist.", code="endpoint_not_found") from None
            raise to_backend_error(exc, self.settings, action=action) from exc
        if not secret:
            raise BackendError(f"Endpoint {endpoint} returned no key.", retryable=True, code="endpoint_no_key")
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        if deployment:
            headers["azureml-model-deployment"] = to_azure(deployment)
        return ScoringTarget(uri=uri, headers=headers, deployment=deployment or "")

    # ---------------------------------------------------------------------------------------- invoke
    def invoke(self, target: ScoringTarget, payload: dict[str, Any], timeout: float = 60.0) -> Any:
        """POST ``payload`` to the scoring URI; return the parsed answer (JSON, else text)."""
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError
        from azure.core.rest import HttpRequest

        request = HttpRequest("POST", target.uri, json=payload, headers=dict(target.headers))
        connect = min(timeout, self.settings.gateway_connect_timeout)
        where = target.uri + (f" (deployment {target.deployment})" if target.deployment else "")
        try:
            response = self.plain.send_request(request, connection_timeout=connect, read_timeout=timeout)
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise BackendError(f"Could not reach {where}: {exc}", retryable=True, code="unreachable") from None
        status = response.status_code
        if status in (401, 403):
            raise BackendError(
                f"{where} rejected the credentials ({status}); the key may have been regenerated.",
                code="unauthorized",
            )
        if status == 404:
            raise BackendError(f"{where} answered 404 (endpoint or deployment gone).", code="not_found")
        if status >= 400:
            raise BackendError(
                f"{where} answered {status}: {response.text()[:500]}",
                retryable=status in (408, 424, 429) or status >= 500,
                code=f"http_{status}",
            )
        try:
            return response.json()
        except ValueError:
            return response.text()

    # ---------------------------------------------------------------------------------------- activity
    def endpoint_last_request(self, endpoint: str, *, now: datetime | None = None) -> str | None:
        """End of the last minute in which Azure Monitor counted requests on the endpoint (ISO), or None."""
        from azure.core.exceptions import HttpResponseError

        end = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        lookback = min(MAX_LOOKBACK, timedelta(minutes=max(60.0, 2 * self.settings.endpoint_idle_minutes)))
        params = {
            "api-version": METRICS_API_VERSION,
            "metricnames": REQUESTS_METRIC,
            "timespan": f"{_minute(end - lookback)}/{_minute(end)}",
            "interval": "PT1M",
            "aggregation": "Total,Maximum,Average",
        }
        path = endpoint_resource_id(self.settings, endpoint) + "/providers/Microsoft.Insights/metrics"
        try:
            body = self._call("GET", path, params, action=f"read request metrics of endpoint {endpoint}")
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return None
            raise to_backend_error(exc, self.settings, action=f"read request metrics of endpoint {endpoint}") from exc
        latest: datetime | None = None
        for metric in body.get("value") or []:
            for series in metric.get("timeseries") or []:
                for point in series.get("data") or []:
                    if any((point.get(key) or 0) > 0 for key in ("total", "maximum", "average", "count")):
                        stamp = datetime.fromisoformat(str(point["timeStamp"]).replace("Z", "+00:00"))
                        latest = stamp if latest is None or stamp > latest else latest
        if latest is None:
            return None
        # The point covers [timeStamp, timeStamp + 1 min): its end is the conservative "last request" time.
        return min(latest + timedelta(minutes=1), now or datetime.now(UTC)).astimezone(UTC).isoformat()
