"""The local MLflow tracking store and model registry (one sqlite file under ``LOCAL_STATE_DIR``).

Heavy (mlflow): used by the job process and by ``python -m localml.mlflowstore``, the small
command ``LocalBackend`` runs to register or read a model version without importing mlflow itself. The
command prints one JSON object on stdout (``{"ok": ..., "version": ...}`` or ``{"ok": false, "error": ...}``).

``mlflow ui --backend-store-uri sqlite:///$LOCAL_STATE_DIR/mlflow.db`` shows the runs and the registry.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from localml.layout import Layout
from localml.state import file_lock, read_json, write_json
from shared.backends.base import registration_key

log = logging.getLogger("autotune.local.mlflow")


def client(layout: Layout) -> Any:
    """An MlflowClient on the local store; the first use creates the database (under a lock: one migrator)."""
    import mlflow
    from mlflow import MlflowClient

    layout.root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(layout.tracking_uri)
    mlflow.set_registry_uri(layout.tracking_uri)
    with file_lock(layout.root / ".mlflow.lock"):
        store = MlflowClient(tracking_uri=layout.tracking_uri, registry_uri=layout.tracking_uri)
        store.search_experiments(max_results=1)  # creates/migrates the tables while we hold the lock
    return store


def experiment_id(layout: Layout, name: str) -> str:
    store = client(layout)
    with file_lock(layout.root / ".mlflow.lock"):
        found = store.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return store.create_experiment(name, artifact_location=(layout.artifacts / name).as_uri())


def start_run(layout: Layout, spec: dict[str, Any]) -> Any:
    """Start the job's MLflow run (name = job name, tags = our lineage tags)."""
    import mlflow

    exp = experiment_id(layout, spec["experiment"])
    from localml.events import run_tags

    tags = {k: v for k, v in run_tags(spec).items() if v}
    tags["autotune-job-name"] = spec["name"]
    return mlflow.start_run(experiment_id=exp, run_name=spec["name"], tags=tags)


def _version_dict(version: Any) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": str(version.version),
        "path": version.source,
        "tags": dict(version.tags or {}),
        "run_id": version.run_id or "",
    }


def register(layout: Layout, job_name: str, name: str, tags: dict[str, str]) -> dict[str, Any]:
    """Register the job's ``trained_model`` output; an existing version of the same run and attempt is returned."""
    model_dir = layout.job_model(job_name)
    status = read_json(layout.job(job_name) / "status.json", {}) or {}
    if status.get("state") != "completed":
        raise ValueError(f"job {job_name} has not completed (state: {status.get('state', 'unknown')})")
    if not (model_dir / "MLmodel").exists():
        raise ValueError(f"job {job_name} has no trained_model output at {model_dir}")
    store = client(layout)
    with file_lock(layout.root / ".registry.lock"):
        key = registration_key(tags)
        if key:
            for existing in store.search_model_versions(f"name='{name}'"):
                if registration_key(existing.tags) == key:
                    result = _version_dict(existing)
                    mirror(layout, result)
                    return result
        try:
            store.get_registered_model(name)
        except Exception:  # noqa: BLE001 - MlflowException RESOURCE_DOES_NOT_EXIST
            store.create_registered_model(name, tags={"autotune-managed": "true"})
        version = store.create_model_version(
            name, source=str(model_dir), run_id=status.get("mlflow_run_id") or None, tags=tags
        )
        result = _version_dict(version)
        mirror(layout, result)
        return result


def get(layout: Layout, name: str, version: str) -> dict[str, Any] | None:
    store = client(layout)
    try:
        found = store.get_model_version(name, version)
    except Exception:  # noqa: BLE001 - not found
        return None
    result = _version_dict(found)
    mirror(layout, result)
    return result


def mirror(layout: Layout, version: dict[str, Any]) -> None:
    write_json(layout.registry_entry(version["name"], version["version"]), version)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m localml.mlflowstore")
    parser.add_argument("command", choices=("register", "get"))
    parser.add_argument("--state", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--job", default="")
    parser.add_argument("--version", default="")
    parser.add_argument("--tags", default="{}")
    args = parser.parse_args(argv)
    layout = Layout(Path(args.state))
    try:
        if args.command == "register":
            result: Any = register(layout, args.job, args.name, json.loads(args.tags))
        else:
            result = get(layout, args.name, args.version)
        print(json.dumps({"ok": True, "version": result}))
        return 0
    except Exception as exc:  # noqa: BLE001 - reported to the parent as JSON
        print(
            json.dumps(
                {"ok": False, "error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)}
            )
        )
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
