"""The local stack as one object: Azurite + the devhost running function_app.py, started and stopped cleanly.

Used by ``make demo`` and by the end-to-end test, so both exercise exactly the same start-up path a developer
uses: Azurite as ``devhost.azurite`` starts it, the devhost as ``devhost.testing.DevHostProcess`` does. Azurite is
reused when one already listens (and then left running); everything this object starts, it stops, process
groups included, so nothing is left behind.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import TracebackType

from devhost.azurite import azurite_running, launch_azurite
from devhost.testing import DevHostProcess

ROOT = Path(__file__).resolve().parents[1]


class StackError(RuntimeError):
    pass


class LocalStack:
    """``with LocalStack(env) as stack: stack.url`` — Azurite and a devhost on a free port."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        port: int = 0,
    ):
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path or ROOT / ".autotune" / "devhost.log"
        self.port = port
        self.url = ""
        self._azurite: subprocess.Popen[bytes] | None = None
        self._devhost: DevHostProcess | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        try:
            self.start_azurite()
            self.start_devhost()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None):
        self.stop()

    def start_azurite(self) -> None:
        if not azurite_running():
            self._azurite = launch_azurite(ROOT / ".azurite")

    def start_devhost(self, timeout: float = 90) -> None:
        self._devhost = DevHostProcess(env=self.env, port=self.port, log_path=self.log_path, own_session=True)
        try:
            self.url = self._devhost.start(timeout).url
        except RuntimeError:
            raise StackError(f"the devhost did not start within {timeout:.0f} s; see {self.log_path}") from None

    def stop(self) -> None:
        if self._devhost is not None:
            self._devhost.stop()
        if self._azurite is not None and self._azurite.poll() is None:
            self._azurite.terminate()
            self._azurite.wait(10)
        self._devhost = self._azurite = None
