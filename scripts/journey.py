"""The whole job as named stages: drop data → report → train → register → deploy → chat → sleep → wake.

``make demo`` narrates these stages for a person; the end-to-end test runs the very same stages with the fastest
settings. Each stage raises ``StageError`` naming itself, so a failure says where the chain broke.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "support-bot.jsonl"

# Settings that make the local loop quick: the reconciler every 2 s, a short idle window for the sweeper.
FAST_ENV = {
    "ML_BACKEND": "local",
    "RECONCILE_SCHEDULE": "*/2 * * * * *",
    "JOB_POLL_AFTER_MINUTES": "0.5",
    "IDLE_SWEEP_SCHEDULE": "*/5 * * * * *",
    "ENDPOINT_IDLE_MINUTES": "0.4",
    "CANARY_PERCENT": "0",
    "TRAINING_DEBOUNCE_SECONDS": "3",  # uploads a few seconds apart train in one run
    "EVAL_MAX_EXAMPLES": "10",  # the first version is evaluated on its held-out split: a few short answers
    "EVAL_MAX_NEW_TOKENS": "64",
}


class StageError(RuntimeError):
    def __init__(self, stage: str, message: str):
        super().__init__(f"stage '{stage}' failed: {message}")
        self.stage = stage


@dataclass
class Journey:
    stack: LocalStack
    model: str
    api_key: str
    say: Callable[[str], None] = print
    status: Callable[[str], None] | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.stack.url, timeout=30)

    # -- plumbing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except StageError:
            raise
        except Exception as exc:
            raise StageError(name, f"{type(exc).__name__}: {exc}") from exc
        self.facts.setdefault("timings", {})[name] = round(time.monotonic() - started, 1)

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params or None)
        response.raise_for_status()
        return response.json()

    def wait_for(self, stage: str, what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise StageError(stage, f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    def openai(self) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=f"{self.stack.url}/v1", api_key=self.api_key, max_retries=0)

    # -- stages ------------------------------------------------------------------------------
    def drop_dataset(self, path: Path, settings_env: dict[str, str]) -> None:
        """Put the file where a data owner would: ``{container}/incoming/{model}/{name}`` in blob storage."""
        with self.stage("upload"):
            from azure.storage.blob import BlobServiceClient

            service = BlobServiceClient.from_connection_string(settings_env["AzureWebJobsStorage"])
            container = service.get_container_client(settings_env.get("TRAINING_CONTAINER", "training"))
            with contextlib.suppress(Exception):
                container.create_container()
            blob_name = f"incoming/{self.model}/{path.name}"
            with path.open("rb") as data:
                container.upload_blob(blob_name, data, overwrite=True)
            self.say(f"dropped {path.name} into {container.container_name}/{blob_name}")

    def upload_dataset(self, path: Path) -> dict[str, Any]:
        """The HTTP way: ``POST /api/models/{model}/datasets``."""
        with self.stage("upload"):
            response = self.http.post(
                f"/api/models/{self.model}/datasets",
                content=path.read_bytes(),
                headers={"content-type": "application/x-ndjson", "x-filename": path.name},
            )
            if response.status_code not in (200, 202):
                raise StageError("upload", f"HTTP {response.status_code}: {response.text[:300]}")
            return response.json()

    def wait_prepared(self, timeout: float = 120) -> dict[str, Any]:
        with self.stage("prepare"):

            def dataset() -> dict[str, Any] | None:
                items = self.get(f"/api/models/{self.model}/datasets").get("datasets", [])
                done = [d for d in items if d.get("state") in ("prepared", "rejected", "failed")]
                return done[0] if done else None

            found = self.wait_for("prepare", "the dataset report", dataset, timeout)
            detail = self.get(f"/api/models/{self.model}/datasets/{found['dataset_id']}")
            if detail.get("state") != "prepared":
                raise StageError("prepare", f"dataset {detail.get('state')}: {detail.get('error')}")
            self.facts["dataset"] = detail
            return detail

    def wait_trained(self, timeout: float = 600) -> dict[str, Any]:
        with self.stage("train"):

            def run() -> dict[str, Any] | None:
                runs = self.get("/api/runs", model=self.model).get("runs", [])
                if not runs:
                    return None
                detail = self.get(f"/api/runs/{runs[0]['run_id']}")
                self._show_run(detail)
                if detail["state"] in ("failed", "canceled"):
                    raise StageError("train", f"run {detail['run_id']} {detail['state']}: {detail.get('error')}")
                return detail if detail["state"] in ("registered", "deploying", "live") else None

            detail = self.wait_for("train", "training to finish", run, timeout, every=1.0)
            self.facts["run"] = detail
            return detail

    def wait_live(self, timeout: float = 300) -> dict[str, Any]:
        with self.stage("deploy"):

            def live() -> dict[str, Any] | None:
                view = self.get(f"/api/models/{self.model}")
                if self.status:
                    self.status(f"model {self.model}: {view['state']} (deploying v{view.get('desired_version')})")
                if view["state"] == "failed":
                    raise StageError("deploy", f"deployment failed: {view.get('error')}")
                wanted = view.get("desired_version")
                return view if view["state"] == "live" and view.get("live_version") == wanted else None

            view = self.wait_for("deploy", "the model to go live", live, timeout)
            self.facts["model"] = view
            return view

    def chat(self, text: str, stage: str = "chat") -> str:
        with self.stage(stage):
            answer = self.openai().chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": text}], max_tokens=48, temperature=0.7
            )
            content = answer.choices[0].message.content or ""
            if not content.strip():
                raise StageError(stage, "the model answered with empty content")
            return content

    def wait_asleep(self, timeout: float = 180) -> dict[str, Any]:
        with self.stage("sleep"):

            def asleep() -> dict[str, Any] | None:
                view = self.get(f"/api/models/{self.model}")
                if self.status:
                    idle_in = view.get("idle_in_minutes")
                    hint = f", idle in {idle_in * 60:.0f} s" if isinstance(idle_in, (int, float)) else ""
                    self.status(f"model {self.model}: {view['state']}{hint}")
                return view if view["state"] == "sleeping" else None

            return self.wait_for("sleep", "the idle sweeper to put the model to sleep", asleep, timeout)

    def wake_by_request(self, timeout: float = 300) -> str:
        """A request to a sleeping model answers 503 + Retry-After and wakes it; then it is served again."""
        import openai

        with self.stage("wake"):
            try:
                self.openai().chat.completions.create(model=self.model, messages=[{"role": "user", "content": "hi"}])
                raise StageError("wake", "a sleeping model answered instead of 503 model_waking")
            except openai.APIStatusError as exc:
                if exc.status_code != 503:
                    raise StageError("wake", f"expected 503 while waking, got {exc.status_code}: {exc}") from exc
                self.facts["wake_retry_after"] = exc.response.headers.get("retry-after")
        self.wait_live(timeout)
        return self.chat("Hello again, are you awake?", stage="wake")

    # -- display -----------------------------------------------------------------------------
    def _show_run(self, detail: dict[str, Any]) -> None:
        if not self.status:
            return
        progress = (detail.get("job") or {}).get("progress") or {}
        parts = [f"run {detail['run_id']}: {detail['state']}"]
        if (detail.get("waiting") or {}).get("reason"):
            parts.append(str(detail["waiting"]["reason"]))
        if progress.get("stage"):
            parts.append(str(progress["stage"]))
        if progress.get("step") is not None and progress.get("max_steps"):
            parts.append(f"step {progress['step']}/{progress['max_steps']}")
        if progress.get("loss") is not None:
            parts.append(f"loss {progress['loss']:.3f}")
        self.status(" · ".join(parts))
