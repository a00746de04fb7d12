"""A fine-tuning job: ``python -m localml.job JOB_DIR``, started detached by ``LocalBackend``.

Stages, as in ``chat_completion_pipeline``: validate (parameters and data), preprocess (chat template,
assistant-only labels, ``max_seq_length``), fine-tune (LoRA via peft), evaluate (eval loss, perplexity on
the test split), export (an MLflow model folder, the pipeline's ``mlflow_model_folder`` output).

Everything a caller needs is written to ``JOB_DIR/status.json`` as it happens; metrics and the run go to the
local MLflow tracking store; the end of the job is published as an Azure ML Event Grid event. SIGTERM cancels.
"""

from __future__ import annotations

import signal
import sys


class JobCanceled(BaseException):
    """Raised in the main thread when the job is asked to stop (SIGTERM)."""


def _on_term(signum, frame):  # installed before anything slow is imported
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise JobCanceled()


signal.signal(signal.SIGTERM, _on_term)

import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from localml import events  # noqa: E402
from localml.layout import Layout  # noqa: E402
from localml.state import read_json, update_json  # noqa: E402
from shared.timeutil import iso  # noqa: E402

log = logging.getLogger("autotune.local.job")


class Job:
    def __init__(self, job_dir: Path):
        self.dir = job_dir
        self.spec: dict[str, Any] = read_json(job_dir / "job.json")
        self.layout = Layout(self.spec["state_dir"])
        self.status_path = job_dir / "status.json"
        self.mlflow_run = None
        self._last_write = 0.0

    # status -----------------------------------------------------------------------------------------------
    def status(self, **changes: Any) -> None:
        update_json(self.status_path, **changes, updated_at=iso())

    def progress(self, values: dict[str, Any]) -> None:
        current = (read_json(self.status_path, {}) or {}).get("progress", {})
        current.update({k: v for k, v in values.items() if v is not None})
        curves = [name for name in ("loss", "eval_loss") if values.get(name) is not None]
        for name in curves:  # the loss curves `python -m shared status RUN` draws
            point = [int(values.get("step") or 0), float(values[name])]
            current.setdefault("history", {}).setdefault(name, []).append(point)
        now = time.monotonic()
        if "stage" in values or curves or now - self._last_write > 0.5:
            self._last_write = now
            self.status(progress=current)
        if curves and self.mlflow_run is not None:
            import mlflow

            for name in curves:
                mlflow.log_metric(name, values[name], step=int(values.get("step") or 0))

    # stages -----------------------------------------------------------------------------------------------
    def run(self) -> int:
        from shared.settings import load_settings

        self.status(state="running", started_at=iso(), progress={"stage": "validate"})
        # Azure ML announces a job going Running with RunStatusChanged too; one try is enough (it is news, not an end)
        events.publish(self.spec["host_url"], events.build_event(self.spec, "running", self.spec["workspace_id"]), 1)
        settings = load_settings()
        from localml.params import effective

        p = effective(self.spec["parameters"])
        self.spec["effective_parameters"] = p
        train_path, test_path = self.download(settings)
        from localml.training import DataError, read_jsonl

        train_rows, dropped = read_jsonl(train_path)
        test_rows, _dropped_test = read_jsonl(test_path) if test_path else ([], 0)
        if not train_rows:
            raise DataError(f"the training file {self.spec['train_path']} has no usable conversation")
        log.info("validate: %d train rows (%d dropped), %d test rows", len(train_rows), dropped, len(test_rows))
        self.start_tracking(p)
        from localml import training

        base_dir = self.base_model()
        model, tokenizer, metrics = training.fine_tune(
            base_dir, p, train_rows, test_rows, self.dir, settings.max_seq_length, self.progress
        )
        self.progress({"stage": "export"})
        hf_dir = self.dir / "outputs" / "pytorch_model_folder"
        training.save_hf(model, tokenizer, p, hf_dir)
        out = self.layout.job_model(self.spec["name"])
        training.export_mlflow(hf_dir, out, self.model_metadata(metrics))
        self.finish_tracking(metrics, out)
        self.progress({"stage": "done"})
        self.status(state="completed", metrics=metrics, ended_at=iso())
        return 0

    def download(self, settings: Any) -> tuple[Path, Path | None]:
        from shared.storage import blob_service

        service = blob_service(settings)
        container = self.spec["container"]
        inputs = self.dir / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        paths: list[Path | None] = []
        for kind in ("train", "test"):
            blob = self.spec.get(f"{kind}_path")
            if not blob:
                paths.append(None)
                continue
            target = inputs / f"{kind}.jsonl"
            client = service.get_blob_client(container, blob)
            try:
                with open(target, "wb") as handle:
                    client.download_blob().readinto(handle)
            except Exception as exc:
                raise RuntimeError(f"cannot read the {kind} file {container}/{blob}: {type(exc).__name__}") from exc
            paths.append(target)
        return paths[0], paths[1]  # type: ignore[return-value]

    def base_model(self) -> Path:
        base = Path(self.spec["base_model"]["id"])
        if self.spec["base_model"].get("tags", {}).get("autotune-tiny") == "true":
            from localml.tinymodel import ensure_tiny_model

            return ensure_tiny_model(self.spec["state_dir"])
        if not (base / "config.json").exists():
            raise FileNotFoundError(f"the base model folder {base} has no config.json (LOCAL_BASE_MODEL)")
        return base

    def model_metadata(self, metrics: dict[str, float]) -> dict[str, Any]:
        base = self.spec["base_model"]
        return {
            "base_model_name": base["name"],
            "base_model_version": base["version"],
            "job_name": self.spec["name"],
            "run_id": self.spec["run_id"],
            "metrics": metrics,
        }

    # MLflow tracking --------------------------------------------------------------------------------------
    def start_tracking(self, p: dict[str, Any]) -> None:
        from localml import mlflowstore

        self.mlflow_run = mlflowstore.start_run(self.layout, self.spec)
        import mlflow

        mlflow.log_params({k: str(v)[:500] for k, v in sorted(p.items())})
        self.status(mlflow_run_id=self.mlflow_run.info.run_id, mlflow_experiment_id=self.mlflow_run.info.experiment_id)

    def finish_tracking(self, metrics: dict[str, float], model_dir: Path) -> None:
        import mlflow

        mlflow.log_metrics(metrics)
        mlflow.set_tag("trained_model", str(model_dir))
        mlflow.end_run("FINISHED")
        self.mlflow_run = None

    def end_tracking(self, state: str, error: str) -> None:
        if self.mlflow_run is None:
            return
        import mlflow

        mlflow.set_tag("error", error[:4000])
        mlflow.end_run("KILLED" if state == "canceled" else "FAILED")

    # events -----------------------------------------------------------------------------------------------
    def publish(self, state: str) -> None:
        spec = read_json(self.dir / "job.json", self.spec)  # a restarted host may have updated host_url
        event = events.build_event(spec, state, spec["workspace_id"])
        delivered = events.publish(spec["host_url"], event)
        self.status(event_published=delivered)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    job = Job(Path(argv[0]))
    state, error, code = "failed", "", 1
    try:
        code = job.run()
        state = "completed"
    except JobCanceled:
        asked = read_json(job.status_path, {}) or {}  # who stopped us and why (cancel, or the host shutting down)
        state = asked.get("stop_state", "canceled")
        error = asked.get("stop_reason", "the job was canceled")
    except Exception as exc:
        log.exception("job %s failed", job.spec.get("name"))
        error = str(exc) or type(exc).__name__
        if type(exc).__name__ not in ("BackendError", "DataError"):
            error = f"{type(exc).__name__}: {error}"
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finishing up: a late cancel changes nothing now
    if state != "completed":
        try:
            job.end_tracking(state, error)
        except Exception:
            log.exception("could not close the MLflow run")
        job.status(state=state, error=error, ended_at=iso())
    job.publish(state)
    return code if state == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
