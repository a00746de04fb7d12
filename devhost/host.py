"""The host: one aiohttp server on 127.0.0.1 for HTTP functions, webhooks and admin; timers; blob watchers.

Why aiohttp's low-level server with our own router: requests to the app's routes should cost the app as little
as possible (the gateway's added-latency target includes this hop), and Azure's route templates are not
aiohttp's, so one dispatch function does it all: ``/runtime/webhooks/*`` and ``/admin/*`` (reserved by the
Functions host) first, then the app's routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from devhost import eventgrid
from devhost.bindings import (
    BLOB_TRIGGER,
    EVENT_GRID_TRIGGER,
    HTTP_TRIGGER,
    TIMER_TRIGGER,
    FunctionSpec,
    InvocationFailed,
    Invoker,
)
from devhost.blobs import BlobTriggers
from devhost.http import Router, build_request, read_body, route_prefix, to_response
from devhost.limits import PARSER_LIMITS, KestrelLimitedServer, header_limit_response, headers_too_large
from devhost.timers import Timers, timer_request

log = logging.getLogger("devhost")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


class Host:
    """Runs one indexed Functions app until ``stop``."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        script_root: Path,
        blob_poll_seconds: float = 2.0,
        load_errors: dict[str, str] | None = None,
    ) -> None:
        self.load_errors = dict(load_errors or {})
        self.specs = {spec.name.lower(): spec for spec in specs}  # function names are case-insensitive
        self.router = Router(specs, route_prefix(script_root))
        self.invoker = Invoker(str(script_root))
        self.timers = Timers(specs, self.invoker)
        self.blobs = BlobTriggers(specs, self.invoker, blob_poll_seconds)
        self._background: set[asyncio.Task[Any]] = set()
        self._runner: web.ServerRunner | None = None
        self._started = time.monotonic()

    async def start(self, sock: socket.socket, grace: float = 10.0) -> None:
        """Serve on ``sock`` and start timers and watchers; ``grace`` bounds how long ``stop`` waits for requests."""
        server = KestrelLimitedServer(self.handle, access_log=None, **PARSER_LIMITS)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=grace)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self.blobs.start()
        self.timers.start()
        for route in self.router.routes:
            methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
            log.info("  %s: [%s] /%s", route.spec.name, methods, route.template)
        for spec in self.specs.values():
            if spec.trigger_type != HTTP_TRIGGER:
                log.info("  %s: %s", spec.name, spec.trigger_type)

    async def stop(self, grace: float) -> bool:
        """Stop taking requests, timers and watchers; give running invocations up to ``grace`` seconds, all at once.

        Returns False when invocations were still running at the end.
        """
        deadline = time.monotonic() + grace
        stopping = [self.timers.stop(grace), self.blobs.stop(grace)]
        if self._runner is not None:
            stopping.append(self._runner.cleanup())  # closes the socket, then waits for open requests
        if self._background:
            stopping.append(asyncio.wait(self._background, timeout=grace))
        await asyncio.gather(*stopping)
        drained = await self.invoker.drain(max(0.1, deadline - time.monotonic()))
        if not drained:
            log.warning("still running after %.0fs: %s", grace, ", ".join(self.invoker.in_flight.values()))
        self.invoker.close()
        return drained

    # ---- dispatch ------------------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if headers_too_large(request):
            return header_limit_response()
        path = request.rel_url.raw_path
        if path.startswith("/runtime/webhooks/"):
            return await self._webhook(request, path)
        if path.startswith("/admin/"):
            return await self._admin(request, path)
        found = self.router.match(request.method, path)
        if found is None:
            return web.Response(status=404)
        route, params = found
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        http_request = build_request(request, body, params)
        try:
            result = await self.invoker.invoke(route.spec, {route.spec.arg_name: http_request}, "HTTP")
            return to_response(result)
        except InvocationFailed:
            return web.Response(status=500)
        except TypeError as exc:
            log.error("function %s: %s", route.spec.name, exc)
            return web.Response(status=500)

    def _function(self, request: web.BaseRequest, trigger_type: str) -> FunctionSpec | web.Response:
        name = request.query.get("functionName", "")
        name = name.removeprefix("Host.Functions.")
        spec = self.specs.get(name.lower())
        if spec is None or spec.trigger_type != trigger_type:
            return _error(404, f"no {trigger_type} function named {name!r}")
        return spec

    async def _webhook(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        kind = path.rstrip("/").rsplit("/", 1)[-1]
        if kind not in ("eventgrid", "blobs"):
            return web.Response(status=404)
        if request.method == "OPTIONS":  # the CloudEvents webhook handshake
            origin = request.headers.get("WebHook-Request-Origin", "*")
            return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin, "Allow": "POST"})
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST, OPTIONS"})
        spec = self._function(request, EVENT_GRID_TRIGGER if kind == "eventgrid" else BLOB_TRIGGER)
        if isinstance(spec, web.Response):
            return spec
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            events = eventgrid.parse_events(body)
            delivery = request.headers.get("aeg-event-type", "Notification")
            if delivery == "SubscriptionValidation":
                return _json({"validationResponse": eventgrid.validation_code(events)})
        except eventgrid.BadDelivery as exc:
            log.warning("%s webhook for %s: bad delivery: %s", kind, spec.name, exc)
            return _error(400, str(exc))
        if delivery == "Unsubscribe":
            return web.Response(status=202)
        if kind == "blobs":
            trigger = self.blobs.triggers[spec.name]
            outcomes = [await self.blobs.deliver_event(trigger, event) for event in events]
            failed = sum(outcome in ("failed", "poison") for outcome in outcomes)
        else:
            try:  # decode every event first: a bad one rejects the delivery before anything ran
                decoded = [eventgrid.decode(event) for event in events]
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("eventgrid webhook for %s: cannot decode the events: %s", spec.name, exc)
                return _error(400, f"cannot decode the events: {exc}")
            failed = 0
            for event in decoded:
                try:
                    await self.invoker.invoke(spec, {spec.arg_name: event}, "EventGrid")
                except InvocationFailed:
                    failed += 1
        if failed:  # a real sender retries the delivery; handlers are idempotent
            return _error(500, f"{failed} of {len(events)} invocations failed")
        return web.Response(status=202)

    # ---- admin ---------------------------------------------------------------------------------------

    async def _admin(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        if parts == ["admin", "host", "status"] and request.method == "GET":
            return _json(self.status())
        if parts == ["admin", "functions"] and request.method == "GET":
            return _json([self._describe(spec) for spec in self.specs.values()])
        if len(parts) == 3 and parts[1] == "functions":
            spec = self.specs.get(parts[2].lower())
            if spec is None:
                return _error(404, f"no function named {parts[2]!r}")
            if request.method == "GET":
                return _json(self._describe(spec))
            if request.method == "POST":
                return await self._admin_invoke(request, spec)
        return web.Response(status=404)

    async def _admin_invoke(self, request: web.BaseRequest, spec: FunctionSpec) -> web.Response:
        """Run a non-HTTP function now, in the background, as ``func start`` does (202 Accepted)."""
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            try:
                document = json.loads(body) if body.strip() else {}
            except RecursionError:
                raise ValueError("the body is not JSON: it is nested too deeply to read") from None
            raw_input = document.get("input", "") if isinstance(document, dict) else None
            if not isinstance(raw_input, str):
                raise ValueError('expected a JSON object {"input": "<string>"}')
            call = self._manual_call(spec, raw_input)
        except ValueError as exc:
            return _error(400, f"admin invoke of {spec.name}: {exc}")
        task = asyncio.create_task(call, name=f"admin:{spec.name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return web.Response(status=202)

    def _manual_call(self, spec: FunctionSpec, raw_input: str) -> Any:
        """The coroutine that runs ``spec`` with ``raw_input`` as its trigger data; ValueError if it is unusable."""
        if spec.trigger_type == TIMER_TRIGGER:
            return self._quiet(self.invoker.invoke(spec, {spec.arg_name: timer_request(False)}, "manual"))
        if spec.trigger_type == EVENT_GRID_TRIGGER:
            try:
                events = eventgrid.parse_events(raw_input.encode())
            except eventgrid.BadDelivery as exc:
                raise ValueError(f"input must be an Event Grid event: {exc}") from None
            return self._quiet(self.invoker.invoke(spec, {spec.arg_name: eventgrid.decode(events[0])}, "manual"))
        if spec.trigger_type == BLOB_TRIGGER:
            trigger = self.blobs.triggers.get(spec.name)
            container, _, blob = raw_input.strip("/").partition("/")
            if trigger is None or not blob:
                raise ValueError('input must be the blob path "container/name"')
            return self.blobs.deliver(trigger, container, blob, None, "manual", force=True)
        raise ValueError(f"{spec.trigger_type} functions are not run through the admin API")

    @staticmethod
    async def _quiet(invocation: Any) -> None:
        with contextlib.suppress(InvocationFailed):  # logged by the invoker
            await invocation

    def _describe(self, spec: FunctionSpec) -> dict[str, Any]:
        described: dict[str, Any] = {"name": spec.name, "trigger": spec.trigger_type, "binding": spec.trigger}
        error = self.timers.errors.get(spec.name) or self.blobs.errors.get(spec.name)
        if error:
            described["error"] = error
        return described

    def status(self) -> dict[str, Any]:
        errors = {**self.load_errors, **self.timers.errors, **self.blobs.errors}
        return {
            "state": "Running",
            "processUptime": int((time.monotonic() - self._started) * 1000),
            "functions": sorted(spec.name for spec in self.specs.values()),
            "errors": errors,
            "inFlight": len(self.invoker.in_flight),
            "syncThreads": self.invoker.max_workers,
        }
