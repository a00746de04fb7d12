"""The request flows behind the gateway's routes: auth -> limits -> route -> upstream -> answer.

Why here and not in ``functions/gateway.py``: the trigger only converts between ``func.HttpRequest`` /
``func.HttpResponse`` and plain values, so these flows run the same under the Functions host, the devhost and
tests. The hot path (a cached, live model) does no storage round trip: auth is a comparison, the route a dict
lookup, activity a debounced background write. Every reply carries ``x-autotune-overhead-ms`` (time in the
gateway, the upstream call excluded) and, when the endpoint names it, ``x-autotune-deployment``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.backends.base import BackendError, ScoringTarget
from shared.gateway import openai_api, upstream
from shared.gateway.activity import ActivityRecorder, ledger_writer
from shared.gateway.auth import check_api_key
from shared.gateway.errors import GatewayError, bad_request
from shared.gateway.targets import Route, TargetCache
from shared.gateway.upstream_errors import answer_text, raise_for_upstream
from shared.jsonbody import InvalidJSONBody, parse_json_body
from shared.ledger import ConflictError, Ledger, ModelRecord
from shared.models import request_wake
from shared.settings import Settings, get_settings
from shared.timeutil import parse_iso, utcnow

log = logging.getLogger(__name__)

__all__ = ["WAKE_RETRY_AFTER_SECONDS", "Gateway", "Reply", "get_gateway"]

# Deploying a model takes seconds locally and 10-30 minutes on Azure ML; 30 s keeps polling clients patient
# without hammering (the openai client honours Retry-After up to 60 s in its own retries).
WAKE_RETRY_AFTER_SECONDS = 30
OVERHEAD_HEADER = "x-autotune-overhead-ms"
DEPLOYMENT_HEADER = "x-autotune-deployment"


@dataclass
class _Timing:
    """Per-request bookkeeping: which model, and how long the upstream call took (excluded from overhead)."""

    model: str = ""
    upstream_s: float = 0.0


@dataclass
class Reply:
    """A response as plain values; ``functions/gateway.py`` turns it into a ``func.HttpResponse``."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _epoch(text: str) -> int:
    moment = parse_iso(text) if text else None
    return int((moment or datetime.now(UTC)).timestamp())


class Gateway:
    """One per process (per settings): the target cache and the activity recorder live as long as it does."""

    def __init__(self, settings: Settings, ledger: Ledger | None = None):
        self.settings = settings
        self.ledger = ledger or Ledger(settings)
        self.targets = TargetCache(self.ledger, settings.endpoint_cache_ttl)
        self.activity = ActivityRecorder(ledger_writer(self.ledger))

    # -- entry points ------------------------------------------------------------------------
    async def chat_completions(self, headers: Mapping[str, str], body: bytes, started: float) -> Reply:
        """``POST /v1/chat/completions``."""

        async def work(timing: _Timing) -> Reply:
            self._admit(headers, body)
            request = openai_api.parse_chat_request(self._json_body(body), self.settings)
            timing.model = request.model
            payload = _json(openai_api.to_azureml_payload(request))
            result = await self._forward(request.model, payload, timing)
            raise_for_upstream(result, native=False)
            answer, stopped = openai_api.apply_stop(answer_text(result), request.stop)
            completion_id = openai_api.new_completion_id()
            if request.stream:
                sse = openai_api.chat_chunks_sse(request, answer, stopped, completion_id)
                reply = Reply(200, sse, {"Cache-Control": "no-cache"}, media_type="text/event-stream")
            else:
                reply = Reply(200, _json(openai_api.chat_completion(request, answer, stopped, completion_id)))
            reply.headers["x-request-id"] = completion_id
            return self._with_deployment(reply, result)

        return await self._handle("chat", "", started, work)

    async def score(self, model: str, headers: Mapping[str, str], body: bytes, started: float) -> Reply:
        """``POST /api/models/{model}/score``: the Azure ML scoring body, forwarded unchanged."""

        async def work(timing: _Timing) -> Reply:
            self._admit(headers, body)
            data = self._json_body(body)
            if not isinstance(data, dict) or "input_data" not in data:
                raise bad_request(
                    "the body must be an Azure ML scoring request: "
                    '{"input_data": {"input_string": [[{"role": "user", "content": "..."}]], "parameters": {...}}}',
                    param="input_data",
                )
            result = await self._forward(model, body, timing)
            raise_for_upstream(result, native=True)
            media_type = result.headers.get("content-type", "application/json")
            return self._with_deployment(Reply(result.status, result.body, media_type=media_type), result)

        return await self._handle("score", model, started, work)

    async def list_models(self, headers: Mapping[str, str], started: float) -> Reply:
        """``GET /v1/models``: models with a live or sleeping version."""

        async def work(timing: _Timing) -> Reply:
            check_api_key(headers, self.settings.gateway_api_keys)
            records = await asyncio.to_thread(lambda: list(self.ledger.query(ModelRecord)))
            data = [self._model_object(r) for r in sorted(records, key=lambda r: r.model) if self._listed(r)]
            return Reply(200, _json({"object": "list", "data": data}))

        return await self._handle("models", "", started, work)

    async def get_model(self, model: str, headers: Mapping[str, str], started: float) -> Reply:
        """``GET /v1/models/{model}`` (the openai client's ``models.retrieve``)."""

        async def work(timing: _Timing) -> Reply:
            check_api_key(headers, self.settings.gateway_api_keys)
            record = await asyncio.to_thread(self.ledger.get, ModelRecord, "models", model)
            if record is None or not self._listed(record):
                raise self._not_found(model)
            return Reply(200, _json(self._model_object(record)))

        return await self._handle("model", model, started, work)

    async def _handle(
        self, kind: str, model: str, started: float, work: Callable[[_Timing], Awaitable[Reply]]
    ) -> Reply:
        """Run one request; every outcome, an unexpected failure included, ends as an OpenAI-shaped reply."""
        timing = _Timing(model=model)
        try:
            reply = await work(timing)
        except GatewayError as exc:
            reply = Reply(exc.status, _json(exc.body()), dict(exc.headers))
        except Exception:  # the caller gets a clean 500; the log gets the traceback
            log.exception("gateway %s %s failed", kind, timing.model)
            error = GatewayError(500, "the gateway failed unexpectedly; see its logs", code="internal_error")
            reply = Reply(500, _json(error.body()))
        overhead_ms = max((time.perf_counter() - started - timing.upstream_s) * 1000, 0.0)
        reply.headers[OVERHEAD_HEADER] = f"{overhead_ms:.2f}"
        level = logging.WARNING if reply.status >= 500 else logging.DEBUG
        log.log(level, "gateway %s %s -> %d (overhead %.2f ms)", kind, timing.model, reply.status, overhead_ms)
        return reply

    # -- steps -------------------------------------------------------------------------------
    def _admit(self, headers: Mapping[str, str], body: bytes) -> None:
        """Key first, then size: the declared ``Content-Length`` is checked before the body is looked at."""
        check_api_key(headers, self.settings.gateway_api_keys)
        limit = self.settings.gateway_max_body_bytes
        declared = headers.get("content-length", "").strip()
        size = int(declared) if declared.isdigit() else len(body)
        if size > limit or len(body) > limit:
            raise GatewayError(
                413,
                f"the request body is {max(size, len(body))} bytes; at most {limit} are accepted "
                "(GATEWAY_MAX_BODY_BYTES)",
                code="request_too_large",
            )

    @staticmethod
    def _json_body(body: bytes) -> Any:
        if not body.strip():
            raise bad_request("the request body is empty; send a JSON object")
        try:
            return parse_json_body(body)
        except InvalidJSONBody as exc:
            raise bad_request(str(exc)) from None

    async def _route(self, model: str, *, force: bool = False) -> Route:
        route = None if force else self.targets.get(model)
        if route is None:
            try:
                route = await asyncio.to_thread(self.targets.load, model, force=force)
            except BackendError as exc:
                raise GatewayError(
                    502, f"could not look up the endpoint of model '{model}': {exc}", code="target_unavailable"
                ) from exc
        return route

    async def _forward(self, model: str, payload: bytes, timing: _Timing) -> upstream.UpstreamResult:
        route = await self._route(model)
        if route.exists:
            self.activity.touch(model)  # a request for a sleeping model is activity too: it must not sleep again
        target = await self._servable(route)

        async def refresh() -> ScoringTarget:
            return await self._servable(await self._route(model, force=True))

        sent = time.perf_counter()
        try:
            result = await upstream.post(
                target,
                payload,
                connect_timeout=self.settings.gateway_connect_timeout,
                read_timeout=self.settings.gateway_read_timeout,
                refresh=refresh,
            )
        except upstream.UpstreamTimeout as exc:
            timing.upstream_s = time.perf_counter() - sent
            raise GatewayError(
                504,
                f"model '{model}' did not answer within {self.settings.gateway_read_timeout:g} s "
                "(GATEWAY_READ_TIMEOUT_SECONDS)",
                code="upstream_timeout",
            ) from exc
        except upstream.UpstreamUnavailable as exc:
            timing.upstream_s = time.perf_counter() - sent
            await self._recheck(model)
            raise GatewayError(
                502, f"the endpoint of model '{model}' could not be reached ({exc})", code="upstream_unavailable"
            ) from exc
        timing.upstream_s = result.elapsed
        if result.status == 404 or result.status >= 500:
            # The endpoint or its deployment may have gone (put to sleep mid-flight, replaced): a model that is no
            # longer live answers 503 model_waking rather than passing the dying endpoint's error on.
            await self._recheck(model)
        return result

    async def _recheck(self, model: str) -> None:
        """The endpoint did not answer: look the route up again and raise 503 if the model is no longer live.

        One look-up per model serves every request that failed meanwhile, and for ``RECHECK_TTL`` seconds after
        it (``TargetCache.recheck``): a storm of failing requests must not become a storm of ledger reads and
        platform calls (ARM GET + listKeys on Azure ML).
        """
        try:
            route = await asyncio.to_thread(self.targets.recheck, model)
        except BackendError as exc:
            raise GatewayError(
                502, f"could not look up the endpoint of model '{model}': {exc}", code="target_unavailable"
            ) from exc
        await self._servable(route)

    async def _servable(self, route: Route) -> ScoringTarget:
        """The route's target, or the error that says why the model cannot serve now (waking it if asleep)."""
        if route.target is not None:
            return route.target
        model = route.model
        if not route.exists:
            raise self._not_found(model)
        retry = {"Retry-After": str(WAKE_RETRY_AFTER_SECONDS)}
        if route.state == "sleeping":
            if not self.settings.auto_wake:
                raise GatewayError(
                    503,
                    f"model '{model}' is asleep (its idle endpoint was deleted) and AUTO_WAKE is off: "
                    f"wake it with POST /api/models/{model}/wake",
                    code="model_sleeping",
                )
            try:
                woke = await asyncio.to_thread(request_wake, self.settings, self.ledger, model, "gateway request")
            except ConflictError:  # many requests raced to wake it; one of them did
                woke = False
            self.targets.invalidate(model)
            if not woke:
                self._raise_if_wake_failed(route)
            log.info("model %s asleep: %s", model, "wake requested" if woke else "already waking")
            raise GatewayError(
                503,
                f"model '{model}' was asleep and is being redeployed; retry in about {WAKE_RETRY_AFTER_SECONDS} s",
                code="model_waking",
                headers=retry,
            )
        if route.waking:
            raise GatewayError(
                503,
                f"model '{model}' is waking up (being redeployed); retry in about {WAKE_RETRY_AFTER_SECONDS} s",
                code="model_waking",
                headers=retry,
            )
        if route.state == "failed":
            raise GatewayError(
                503,
                f"model '{model}' has no live version: its last deployment failed (see GET /api/models/{model})",
                code="model_failed",
            )
        raise GatewayError(
            503,
            f"model '{model}' has no live version yet (state: {route.state or 'new'}); "
            f"retry in about {WAKE_RETRY_AFTER_SECONDS} s",
            code="model_not_ready",
            headers=retry,
        )

    @staticmethod
    def _raise_if_wake_failed(route: Route) -> None:
        """503 ``model_wake_failed`` (with the error and when the next request may try again) while a failed
        wake's backoff runs; requests do not redeploy in a loop."""
        retry_at = parse_iso(route.wake_retry_at)
        now = utcnow()
        if retry_at is None or retry_at <= now:
            return
        seconds = max(1, int((retry_at - now).total_seconds()))
        raise GatewayError(
            503,
            f"model '{route.model}' could not be woken ({route.error}); requests try again after "
            f"{route.wake_retry_at}, or wake it now with POST /api/models/{route.model}/wake",
            code="model_wake_failed",
            headers={"Retry-After": str(seconds)},
        )

    @staticmethod
    def _with_deployment(reply: Reply, result: upstream.UpstreamResult) -> Reply:
        if result.deployment:
            reply.headers[DEPLOYMENT_HEADER] = result.deployment
        return reply

    @staticmethod
    def _not_found(model: str) -> GatewayError:
        return GatewayError(
            404, f"The model '{model}' does not exist or has no version yet", code="model_not_found", param="model"
        )

    @staticmethod
    def _listed(record: ModelRecord) -> bool:
        """A model with a version that serves, sleeps (wakes on request) or is waking up."""
        return bool(record.live_version) or (record.state == "sleeping" and bool(record.desired_version))

    @staticmethod
    def _model_object(record: ModelRecord) -> dict[str, Any]:
        return openai_api.model_object(
            record.model,
            _epoch(record.last_deployed_at or record.updated_at),
            state=record.state,
            live_version=record.live_version or record.desired_version,
        )


_gateway: Gateway | None = None


def get_gateway() -> Gateway:
    """The process-wide gateway for the current settings (rebuilt when tests or the devhost reset them)."""
    global _gateway
    settings = get_settings()
    if _gateway is None or _gateway.settings is not settings:
        _gateway = Gateway(settings)
    return _gateway
