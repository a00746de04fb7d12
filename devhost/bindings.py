"""From the app's own binding metadata to invocations: what the Python worker does after indexing.

Why from metadata: the host must run exactly the functions the app declares, with the triggers it declares,
so that what works here works in Azure. ``FunctionApp.get_functions()`` may be called only once per app object
(azure-functions 1.26 raises on the second call), so ``index_app`` calls it once and keeps ``FunctionSpec``s.

Invocation follows the worker too: ``async def`` functions run on the event loop, plain functions in a thread
pool; a parameter named ``context`` gets a ``func.Context``; every invocation is logged with its name, id,
duration and outcome, and an exception never escapes to the host.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import threading
import time
import typing
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

log = logging.getLogger("devhost")

HTTP_TRIGGER = "httpTrigger"
EVENT_GRID_TRIGGER = "eventGridTrigger"
BLOB_TRIGGER = "blobTrigger"
TIMER_TRIGGER = "timerTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, EVENT_GRID_TRIGGER, BLOB_TRIGGER, TIMER_TRIGGER)


@dataclass
class FunctionSpec:
    """One indexed function: its name, trigger binding (as in function.json) and the Python callable."""

    name: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    func: Callable[..., Any]
    annotations: dict[str, Any] = field(default_factory=dict)
    # Worked out once here, not per invocation: each HTTP request pays for what happens in ``invoke``.
    trigger_type: str = field(init=False)
    arg_name: str = field(init=False)
    is_async: bool = field(init=False)
    wants_context: bool = field(init=False)

    def __post_init__(self) -> None:
        self.trigger_type = str(self.trigger.get("type", ""))
        self.arg_name = str(self.trigger["name"])
        self.is_async = inspect.iscoroutinefunction(self.func)
        self.wants_context = "context" in inspect.signature(self.func).parameters

    def arg_type(self, name: str | None = None) -> Any:
        """The annotation of a parameter (the trigger's by default), resolved like the worker resolves it."""
        return self.annotations.get(name or self.arg_name)


def index_app(app: func.FunctionApp) -> tuple[list[FunctionSpec], dict[str, str]]:
    """Every function of ``app`` with its trigger, from ``get_functions()`` (called once, see module doc).

    Also returns the functions that cannot load, with why. Like the worker, annotations are resolved with
    ``typing.get_type_hints``: a name imported only under ``TYPE_CHECKING`` fails here as it fails in Azure.
    """
    specs, errors = [], {}
    for function in app.get_functions():
        bindings = [json.loads(raw) for raw in function.get_raw_bindings()]
        trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), None)
        name = function.get_function_name()
        if trigger is None:
            log.warning("function %s has no trigger binding; it can only be ignored", name)
            continue
        user_function = function.get_user_function()
        try:
            annotations = typing.get_type_hints(user_function)
        except Exception as exc:  # noqa: BLE001 - the worker fails to load such a function; so do we
            errors[name] = f"cannot load the {name} function: its annotations do not resolve: {exc}"
            log.error("%s", errors[name])
            continue
        specs.append(FunctionSpec(name, trigger, bindings, user_function, annotations))
    for spec in specs:
        if spec.trigger_type not in SUPPORTED_TRIGGERS:
            log.warning(
                "function %s: trigger %s is not supported by devhost; it never fires", spec.name, spec.trigger_type
            )
        extra = [b for b in spec.bindings if b is not spec.trigger and b.get("type") != "http"]
        if extra:
            kinds = ", ".join(sorted({str(b.get("type")) for b in extra}))
            log.warning(
                "function %s: bindings other than its trigger (%s) are not supported by devhost", spec.name, kinds
            )
    return specs, errors


class Context(func.Context):
    """The ``context`` argument of an invocation (what the worker passes to a parameter named ``context``)."""

    _local = threading.local()

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


class InvocationFailed(Exception):
    """The function raised; the cause is attached. The host maps it to a 500 or a retry, never to a crash."""


THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"


def sync_thread_count(env: Mapping[str, str] | None = None) -> int:
    """Threads for sync functions, as the Python worker (4.x) sizes its pool: ``PYTHON_THREADPOOL_THREAD_COUNT``
    when it is a whole number of at least 1, else Python's default of min(32, CPUs + 4) (a bad value is warned
    about and ignored, as the worker does)."""
    raw = (os.environ if env is None else env).get(THREAD_COUNT_SETTING, "").strip()
    if raw:
        if raw.isdigit() and int(raw) >= 1:
            return int(raw)
        log.warning("%s must be a whole number of at least 1, got %r: using the default", THREAD_COUNT_SETTING, raw)
    return min(32, (os.cpu_count() or 1) + 4)


class Invoker:
    """Runs functions the way the worker does and keeps count of what is in flight (for a clean shutdown)."""

    def __init__(self, function_directory: str, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or sync_thread_count()
        self._executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="devhost-fn")
        self._function_directory = function_directory
        self._in_flight: dict[str, str] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> Mapping[str, str]:
        """Invocation id → function name for each invocation still running."""
        return self._in_flight

    async def invoke(self, spec: FunctionSpec, arguments: dict[str, Any], reason: str) -> Any:
        """Call ``spec`` with ``arguments``; return its result or raise ``InvocationFailed``."""
        invocation_id = str(uuid.uuid4())
        if spec.wants_context:
            arguments = {**arguments, "context": Context(invocation_id, spec.name, self._function_directory)}
        self._in_flight[invocation_id] = spec.name
        self._idle.clear()
        started = time.perf_counter()
        in_thread = False
        try:
            if spec.is_async:
                result = await spec.func(**arguments)
            else:
                future = self._executor.submit(spec.func, **arguments)
                in_thread = True
                # The thread outlives a cancelled await: it stays in flight until it really returns.
                loop = asyncio.get_running_loop()
                future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._finished, invocation_id))
                result = await asyncio.wrap_future(future)
        except BaseException as exc:
            ms = (time.perf_counter() - started) * 1000
            if isinstance(exc, asyncio.CancelledError):
                log.warning("Executed 'Functions.%s' (Cancelled, Id=%s, Duration=%.0fms)", spec.name, invocation_id, ms)
                raise
            log.error(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms, Reason=%s)",
                spec.name,
                invocation_id,
                ms,
                reason,
                exc_info=exc,
            )
            raise InvocationFailed(f"{spec.name} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if not in_thread:
                self._finished(invocation_id)
        ms = (time.perf_counter() - started) * 1000
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms, Reason=%s)",
            spec.name,
            invocation_id,
            ms,
            reason,
        )
        return result

    def _finished(self, invocation_id: str) -> None:
        self._in_flight.pop(invocation_id, None)
        if not self._in_flight:
            self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running invocations; True when none is left."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def finish_tasks(tasks: list[asyncio.Task[Any]], grace: float) -> None:
    """Wait up to ``grace`` seconds for background loops that were told to stop, then cancel the rest."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
