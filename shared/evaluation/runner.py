"""Asking the champion and the challenger the evaluation's questions, a bounded slice at a time.

Why through the gateway's own client (``shared.gateway.upstream``) and payload (``openai_api``): the answers
scored are the answers users would get, from the same endpoint, with the same retries, timeouts and key
refresh, and no Azure ML SDK is imported. Each request is pinned to one deployment by the
``azureml-model-deployment`` header (``backend.scoring_target(endpoint, deployment)``); an answer from any
other deployment is an error, not a score.

Why slices: an evaluation of a hundred conversations on two deployments may take longer than a reconcile tick
may run. A slice scores batches of at most ``EVAL_CONCURRENCY`` requests until the tick's deadline, and writes
the results to the evaluation blob after every batch (ETag-checked). The blob is the truth: a slice scores only
what has no result yet, so a crash loses at most the batch in flight, and nothing recorded is asked again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from shared.errors import Conflict
from shared.evaluation import metrics
from shared.evaluation.examples import Example
from shared.jsonbody import parse_json_body
from shared.timeutil import iso

if TYPE_CHECKING:
    from shared.backends.base import ScoringTarget
    from shared.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EvalConflictError",
    "EvalStore",
    "Task",
    "pending_tasks",
    "run_sync",
    "score_slice",
]

CHAMPION, CHALLENGER = "champion", "challenger"
ANSWER_CHARS = 4000  # an answer is kept up to this long (references longer than that are rare in chat data)
ERROR_CHARS = 300
T = TypeVar("T")


class EvalConflictError(Conflict, RuntimeError):
    """The evaluation blob changed since it was read (another worker): this slice stops; the next resumes."""

    code = "evaluation_changed"


@dataclass(frozen=True)
class Task:
    """One request to make: example ``index`` of the record, asked of ``side``."""

    index: int
    side: str


def pending_tasks(record: dict[str, Any]) -> list[Task]:
    """Requests without a recorded result, in a fixed order (per example: champion, then challenger). A champion
    whose answers were taken from an earlier evaluation (``recorded``: it is asleep) is never asked."""
    champion = record.get(CHAMPION)
    sides = [CHAMPION, CHALLENGER] if champion and not champion.get("recorded") else [CHALLENGER]
    tasks: list[Task] = []
    for index, example in enumerate(record.get("examples") or []):
        for side in sides if example.get("set") == "gate" else [CHALLENGER]:
            if example.get(side) is None:
                tasks.append(Task(index, side))
    return tasks


class EvalStore:
    """The evaluation blob (``evals/{model}/{run_id}.json``), read and written with its ETag."""

    def __init__(self, settings: Settings, path: str):
        self.settings = settings
        self.path = path
        self.etag: str | None = None

    def _client(self) -> Any:
        from shared.storage import blob_service

        return blob_service(self.settings).get_blob_client(self.settings.training_container, self.path)

    def load(self) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self._client().download_blob()
        except ResourceNotFoundError:
            self.etag = None
            return None
        self.etag = downloader.properties.etag
        return json.loads(downloader.readall())

    def save(self, record: dict[str, Any]) -> None:
        """Write ``record``: a first write creates the blob (it must not exist), a later one must find the
        version this store read or wrote last."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.storage.blob import ContentSettings

        from shared.blobstream import ensure_container
        from shared.storage import blob_service

        body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        options: dict[str, Any] = {"content_settings": ContentSettings(content_type="application/json")}
        if self.etag:
            options.update(overwrite=True, etag=self.etag, match_condition=MatchConditions.IfNotModified)
        else:
            options.update(overwrite=False)
        try:
            try:
                result = self._client().upload_blob(body, **options)
            except ResourceNotFoundError:  # no container yet (a fresh storage account)
                if self.etag:
                    raise EvalConflictError(f"{self.path} was deleted since it was read") from None
                ensure_container(blob_service(self.settings).get_container_client(self.settings.training_container))
                result = self._client().upload_blob(body, **options)
        except (ResourceModifiedError, ResourceExistsError) as exc:
            raise EvalConflictError(f"{self.path} changed since it was read") from exc
        self.etag = result.get("etag")


def payload(example: Example, max_new_tokens: int) -> bytes:
    """The scoring body the gateway would send for this conversation with temperature 0 (greedy decoding)."""
    from shared.gateway.openai_api import ChatRequest, to_azureml_payload

    request = ChatRequest(model="", messages=example.messages, max_tokens=max_new_tokens, temperature=0.0)
    return json.dumps(to_azureml_payload(request), ensure_ascii=False).encode()


def _failure(error: str, status: int | None = None, latency_ms: float | None = None) -> dict[str, Any]:
    return {
        "ok": False,
        "status": status,
        "answer": "",
        "error": error[:ERROR_CHARS],
        "latency_ms": latency_ms,
        "rouge_l": 0.0,
        "token_f1": 0.0,
        "at": iso(),
    }


async def ask(
    example: Example,
    target: ScoringTarget,
    refresh: Callable[[], Awaitable[ScoringTarget]],
    settings: Settings,
) -> dict[str, Any]:
    """One scored answer (or the error that counts against its deployment)."""
    from shared.gateway import upstream
    from shared.gateway.openai_api import UnrecognisedOutput, parse_scoring_output

    try:
        result = await upstream.post(
            target,
            payload(example, settings.eval_max_new_tokens),
            connect_timeout=settings.gateway_connect_timeout,
            read_timeout=settings.eval_timeout_seconds,
            refresh=refresh,
        )
    except upstream.UpstreamTimeout:
        return _failure(f"no answer within {settings.eval_timeout_seconds:g} s (EVAL_TIMEOUT_SECONDS)")
    except upstream.UpstreamUnavailable as exc:
        return _failure(f"the endpoint could not be reached: {exc}")
    latency_ms = round(result.elapsed * 1000, 1)
    snippet = result.body[:ERROR_CHARS].decode("utf-8", "replace").strip()
    if not 200 <= result.status < 300:
        return _failure(f"HTTP {result.status}: {snippet}", result.status, latency_ms)
    if result.deployment and target.deployment and result.deployment != target.deployment:
        return _failure(f"answered by deployment {result.deployment}, not {target.deployment}", result.status)
    try:
        answer = parse_scoring_output(parse_json_body(result.body, what="the answer"))
    except (ValueError, UnrecognisedOutput) as exc:
        return _failure(f"not a chat-completion answer ({exc}): {snippet}", result.status, latency_ms)
    if not answer.strip():
        return _failure("empty answer", result.status, latency_ms)
    return {
        "ok": True,
        "status": result.status,
        "answer": answer[:ANSWER_CHARS],
        "error": "",
        "latency_ms": latency_ms,
        "rouge_l": round(metrics.rouge_l(example.reference, answer), 4),
        "token_f1": round(metrics.token_f1(example.reference, answer), 4),
        "at": iso(),
    }


Resolve = Callable[[str], "ScoringTarget"]  # side -> its pinned scoring target (blocking: reads keys)


async def _score_batches(
    record: dict[str, Any],
    tasks: list[Task],
    resolve: Resolve,
    settings: Settings,
    deadline: float,
    record_batch: Callable[[list[tuple[Task, dict[str, Any]]]], None],
) -> int:
    from shared.gateway import upstream

    targets: dict[str, ScoringTarget] = {}

    async def target_of(side: str, fresh: bool = False) -> ScoringTarget:
        if fresh or side not in targets:
            targets[side] = await asyncio.to_thread(resolve, side)
        return targets[side]

    scored = 0
    try:
        for start in range(0, len(tasks), settings.eval_concurrency):
            if start and time.monotonic() >= deadline:
                break  # the first batch always runs, so every tick moves the evaluation on
            batch = tasks[start : start + settings.eval_concurrency]
            calls = []
            for task in batch:
                example = Example.from_dict(record["examples"][task.index])
                target = await target_of(task.side)

                async def refresh(side: str = task.side) -> ScoringTarget:
                    return await target_of(side, fresh=True)

                calls.append(ask(example, target, refresh, settings))
            answers = await asyncio.gather(*calls)
            await asyncio.to_thread(record_batch, list(zip(batch, answers, strict=True)))
            scored += len(batch)
    finally:
        await upstream.aclose_client()
    return scored


def score_slice(
    store: EvalStore,
    record: dict[str, Any],
    resolve: Resolve,
    settings: Settings,
    deadline: float,
    after_batch: Callable[[dict[str, Any]], None] = lambda record: None,
) -> int:
    """Score pending requests in batches until ``deadline`` (``time.monotonic()``), saving after each batch;
    returns how many were scored. At least one batch is always scored, so every tick makes progress."""
    tasks = pending_tasks(record)
    if not tasks:
        return 0

    def record_batch(results: list[tuple[Task, dict[str, Any]]]) -> None:
        for task, result in results:
            record["examples"][task.index][task.side] = result
        record["updated_at"] = iso()
        store.save(record)
        after_batch(record)

    return run_sync(lambda: _score_batches(record, tasks, resolve, settings, deadline, record_batch))


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, also when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
