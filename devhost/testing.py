"""Run ``python -m devhost`` as a real subprocess on a free port: for tests, benchmarks and scripts.

Why a subprocess: the devhost's behaviour (settings loading, signals, exit, child processes) is only real in
its own process. The environment passed in (for tests: the ``app_env`` settings) wins over the app's
``local.settings*.json``, exactly as with ``func start``.

    with DevHostProcess(env={...}) as host:
        httpx.get(f"{host.url}/api/health")
"""

from __future__ import annotations

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
    ) -> None:
        self.script_root = Path(script_root)
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), self.env.get("PYTHONPATH")]))
        self.args = [*args]
        self.app = app
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="devhost-")
        self.stdout_path = Path(self._dir.name) / "stdout.txt"
        self.stderr_path = Path(self._dir.name) / "stderr.txt"

    def start(self, timeout: float = 60) -> DevHostProcess:
        command = [sys.executable, "-m", "devhost", "--port", "0", "--app", self.app]
        command += ["--script-root", str(self.script_root), *self.args]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stdout_path.read_text(errors="replace").splitlines():
                if line.startswith(READY):
                    self.url = line[len(READY) :].strip()
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(f"devhost exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"devhost not ready after {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        """Everything the devhost wrote to stderr (its log) so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

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
        return self.process.returncode

    def __enter__(self) -> DevHostProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()
