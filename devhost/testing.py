"""Run ``python -m devhost`` as a real subprocess: the one way tests, benchmarks, scripts and the demo start it.

Why a subprocess: the devhost's behaviour (settings loading, signals, exit, child processes) is only real in
its own process. The environment passed in (for tests: the ``app_env`` settings) wins over the app's
``local.settings*.json``, exactly as with ``func start``. ``scripts/stack.py`` adds Azurite (``devhost.azurite``)
around it for ``make demo`` and the end-to-end test.

    with DevHostProcess(env={...}) as host:
        httpx.get(f"{host.url}/api/health")
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
READY = "devhost listening on "


class DevHostProcess:
    """One devhost subprocess; ``url`` is set once it printed its ready line."""

    def __init__(
        self,
        script_root: Path = PROJECT_ROOT,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        app: str = "function_app",
        *,
        port: int = 0,
        log_path: Path | None = None,
        own_session: bool = False,
    ) -> None:
        """``log_path``: one file for its stdout and stderr, appended to (else two files in a temporary folder).
        ``own_session``: start it in a session of its own and, on stop, end whatever is left in its process group
        (the local backend's jobs and servers), so nothing outlives it."""
        self.script_root = Path(script_root)
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), self.env.get("PYTHONPATH")]))
        self.args = [*args]
        self.app = app
        self.port = port
        self.own_session = own_session
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="devhost-")
        self.stdout_path = log_path or Path(self._dir.name) / "stdout.txt"
        self.stderr_path = log_path or Path(self._dir.name) / "stderr.txt"
        self._offset = 0  # where this run's output starts in a log appended to

    def start(self, timeout: float = 60) -> DevHostProcess:
        command = [sys.executable, "-m", "devhost", "--port", str(self.port), "--app", self.app]
        command += ["--script-root", str(self.script_root), *self.args]
        session = {"start_new_session": True} if self.own_session else {}
        if self.stdout_path == self.stderr_path:  # one log file, appended to
            self.stdout_path.parent.mkdir(parents=True, exist_ok=True)
            self._offset = self.stdout_path.stat().st_size if self.stdout_path.exists() else 0
            with open(self.stdout_path, "ab") as log:
                self.process = subprocess.Popen(
                    command, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, **session
                )
        else:
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.process = subprocess.Popen(
                    command, cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=err, **session
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self._read(self.stdout_path).splitlines():
                if line.startswith(READY):
                    self.url = line[len(READY) :].strip()
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(f"devhost exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"devhost not ready after {timeout}s:\n{self.log()[-4000:]}")

    def _read(self, path: Path) -> str:
        if not path.exists():
            return ""
        with open(path, "rb") as file:
            file.seek(self._offset)
            return file.read().decode(errors="replace")

    def log(self) -> str:
        """Everything the devhost wrote to stderr (its log) so far."""
        return self._read(self.stderr_path)

    def wait_for_log(self, text: str, timeout: float = 30) -> str:
        """The log once it contains ``text`` (an invocation is logged just after the function returns, so a
        state the function wrote can be visible before its ``Executed`` line is); AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the devhost log after {timeout}s:\n{log[-3000:]}")
            time.sleep(0.05)
        return log

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait; the exit code (killed after ``timeout`` seconds if it does not exit)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.own_session:  # anything still in its process group is a leak: end it rather than leave it running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def __enter__(self) -> DevHostProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()
