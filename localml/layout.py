"""Where the local backend keeps things under ``LOCAL_STATE_DIR`` (one place, so every process agrees).

base_models/autotune-tiny-chat-v1/      the tiny base model (built once)
jobs/{job}/job.json status.json process.json log.txt inputs/ outputs/trained_model/ (MLflow model)
jobs/by-run/{run_id}                    the job name submitted for our run id (idempotent submit)
mlflow.db  mlartifacts/                 MLflow tracking store and model registry (sqlite) + artifacts
registry/{model}/{version}.json         light mirror of registered versions (no mlflow import to read)
endpoints/{endpoint}/endpoint.json key.json router.json last_request deployments/{deployment}/...
"""

from __future__ import annotations

import os
from pathlib import Path


class Layout:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def job(self, name: str) -> Path:
        return self.jobs / name

    def job_model(self, name: str) -> Path:
        """The job's ``trained_model`` output: an MLflow model folder."""
        return self.job(name) / "outputs" / "trained_model"

    def run_index(self, run_id: str) -> Path:
        return self.jobs / "by-run" / run_id

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    def registry_entry(self, name: str, version: str) -> Path:
        return self.root / "registry" / name / f"{version}.json"

    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints"

    def endpoint(self, name: str) -> Path:
        return self.endpoints / name

    def deployment(self, endpoint: str, deployment: str) -> Path:
        return self.endpoint(endpoint) / "deployments" / deployment
