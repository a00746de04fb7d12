"""Fine-tuning jobs as detached processes whose whole state is in ``jobs/{name}/`` (light: no ML imports).

Why detached: a job outlives the function invocation that submitted it and a restart of the devhost. Its
status file is written by the job itself; the parent only steps in when the job cannot: the process has
vanished without a final status (killed, machine reboot) → failed with that reason; a cancel the job did not
acknowledge in time → killed and canceled.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict
from typing import Any

from localml import events
from localml.layout import Layout
from localml.naming import check_job_name, job_name
from localml.state import (
    alive,
    claim,
    file_lock,
    read_json,
    signal_group,
    spawn,
    stop,
    update_json,
    write_json,
)
from shared.backends.base import BackendError, FineTuneRequest, JobState, JobStatus
from shared.settings import Settings
from shared.timeutil import iso, parse_iso, utcnow

log = logging.getLogger("autotune.local.jobs")

TERMINAL = {s.value for s in JobState if s.terminal}
START_GRACE_SECONDS = 60.0  # a queued job with no process record after this long never started
CANCEL_WAIT_SECONDS = 15.0
CANCELED = "the job was canceled"
SHUTDOWN = "the job was stopped because the host that started it shut down; submit the run again"


class JobManager:
    def __init__(self, settings: Settings, layout: Layout, child_env: dict[str, str]):
        self.settings = settings
        self.layout = layout
        self.child_env = child_env
        self.owned: set[str] = set()

    # submit -----------------------------------------------------------------------------------------------
    def submit(self, request: FineTuneRequest) -> str:
        self.layout.jobs.mkdir(parents=True, exist_ok=True)
        with file_lock(self.layout.jobs / ".submit.lock"):
            existing = self.find(request.run_id)
            if existing:
                return existing
            name = job_name()
            folder = self.layout.job(name)
            folder.mkdir(parents=True)
            spec = {
                "name": name,
                "run_id": request.run_id,
                "model": request.model,
                "dataset_id": request.dataset_id,
                "container": self.settings.training_container,
                "train_path": request.train_path,
                "test_path": request.test_path,
                "parameters": dict(request.parameters),
                "base_model": asdict(request.base_model),
                "compute": asdict(request.compute),
                "experiment": request.experiment,
                "state_dir": str(self.layout.root),
                "host_url": self.settings.host_url,
                "workspace_id": self.settings.local_workspace_id,
                "created_at": iso(),
            }
            write_json(folder / "job.json", spec)
            write_json(folder / "status.json", {"name": name, "state": "queued", "created_at": spec["created_at"]})
            index = self.layout.run_index(request.run_id)
            index.parent.mkdir(parents=True, exist_ok=True)
            index.write_text(name)
        record = spawn("localml.job", [str(folder)], folder / "log.txt", env=self.child_env)
        write_json(folder / "process.json", record)
        self.owned.add(name)
        log.info("job %s submitted for run %s (pid %s)", name, request.run_id, record["pid"])
        return name

    def find(self, run_id: str) -> str | None:
        with contextlib.suppress(FileNotFoundError):
            name = self.layout.run_index(run_id).read_text().strip()
            if (self.layout.job(name) / "job.json").exists():
                return name
        return None

    # status -----------------------------------------------------------------------------------------------
    def status(self, name: str) -> JobStatus:
        folder = self.layout.job(check_job_name(name))
        data = read_json(folder / "status.json")
        if data is None:
            raise BackendError(f"job {name} not found", code="not_found")
        if data.get("state") not in TERMINAL:
            data = self._check_process(name, data)
        return JobStatus(
            name=name,
            state=JobState(data.get("state", "queued")),
            error=data.get("error", ""),
            metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
            studio_url=folder.as_uri(),
            progress=dict(data.get("progress") or {}),
        )

    def _check_process(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        folder = self.layout.job(name)
        record = read_json(folder / "process.json")
        if record is None:
            created = parse_iso(data.get("created_at"))
            if created is None or (utcnow() - created).total_seconds() < START_GRACE_SECONDS:
                return data
            reason = "the job process never started (the host stopped while submitting it); submit the run again"
        elif alive(record):
            return data
        else:
            reason = f"the job process ended without reporting a result; see {folder / 'log.txt'}"
        return self._finalize(name, "failed", reason)

    def _finalize(self, name: str, state: str, error: str, *, publish: bool = False) -> dict[str, Any]:
        """Write a final status the job could not write itself (never overwrites one it did write)."""
        path = self.layout.job(name) / "status.json"
        with file_lock(path.with_name(f".{path.name}.lock")):
            data = read_json(path, {}) or {}
            if data.get("state") in TERMINAL:
                return data
            data.update(state=state, error=error, ended_at=iso(), updated_at=iso())
            write_json(path, data)
        log.warning("job %s %s: %s", name, state, error)
        if publish:
            spec = read_json(self.layout.job(name) / "job.json")
            event = events.build_event(spec, state, spec["workspace_id"])
            # In a thread: the host we publish to may be the very process waiting on this call.
            threading.Thread(target=events.publish, args=(spec["host_url"], event), daemon=True).start()
        return data

    # cancel -----------------------------------------------------------------------------------------------
    def cancel(self, name: str) -> None:
        folder = self.layout.job(check_job_name(name))
        data = read_json(folder / "status.json")
        if data is None:
            raise BackendError(f"job {name} not found", code="not_found")
        if data.get("state") in TERMINAL:
            return
        record = read_json(folder / "process.json")
        update_json(folder / "status.json", cancel_requested_at=iso(), stop_state="canceled", stop_reason=CANCELED)
        if alive(record):
            signal_group(int(record["pid"]), signal.SIGTERM)
            deadline = time.monotonic() + CANCEL_WAIT_SECONDS
            while time.monotonic() < deadline:
                if (read_json(folder / "status.json", {}) or {}).get("state") in TERMINAL or not alive(record):
                    break
                time.sleep(0.1)
            if (read_json(folder / "status.json", {}) or {}).get("state") not in TERMINAL:
                stop(record, timeout=2)
        self._finalize(name, "canceled", CANCELED, publish=True)

    # adoption and shutdown --------------------------------------------------------------------------------
    def adopt(self) -> None:
        """After a restart: take over running jobs, fail vanished ones, point events at this host."""
        if not self.layout.jobs.exists():
            return
        for folder in self.layout.jobs.iterdir():
            if not folder.is_dir():
                continue
            status = read_json(folder / "status.json")
            if not status or status.get("state") in TERMINAL:
                continue
            self._check_process(folder.name, status)
            if claim(folder / "process.json"):
                self.owned.add(folder.name)
                spec = read_json(folder / "job.json") or {}
                if spec.get("host_url") != self.settings.host_url:
                    update_json(folder / "job.json", host_url=self.settings.host_url)

    def shutdown(self) -> None:
        for name in sorted(self.owned):
            folder = self.layout.job(name)
            record = read_json(folder / "process.json")
            if alive(record):
                log.info("stopping job %s: the process that started it is shutting down", name)
                update_json(folder / "status.json", stop_state="failed", stop_reason=SHUTDOWN)
                stop(record, timeout=5)
                self._finalize(name, "failed", SHUTDOWN)
        self.owned.clear()


def gpu_count() -> int:
    """GPUs visible to ``nvidia-smi`` (no torch import in the function app)."""
    binary = shutil.which("nvidia-smi")
    if not binary:
        return 0
    try:
        out = subprocess.run([binary, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))
