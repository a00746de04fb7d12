"""The local stack as one object: Azurite + the devhost running function_app.py, started and stopped cleanly.

Used by ``make demo`` and by the end-to-end test, so both exercise exactly the same start-up path a developer
uses. Azurite is reused when one already listens (and then left running); everything this object starts, it
stops, process groups included, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"devhost listening on (http://\S+)")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class StackError(RuntimeError):
    pass


def azurite_running() -> bool:
    return port_open(10000) and port_open(10002)


def launch_azurite(location: Path, timeout: float = 30) -> subprocess.Popen[bytes]:
    """Azurite (blob, queue, table) on 127.0.0.1 as one process, installed with ``npm ci`` when missing."""
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, check=True)
    location.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            str(binary),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--blobHost",
            "127.0.0.1",
            "--queueHost",
            "127.0.0.1",
            "--tableHost",
            "127.0.0.1",
            "--location",
            str(location),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not azurite_running():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise StackError("Azurite did not start on 127.0.0.1:10000-10002")
        time.sleep(0.1)
    return proc


class LocalStack:
    """``with LocalStack(env) as stack: stack.url`` — Azurite and a devhost on a free port."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        port: int = 0,
        on_log: Callable[[str], None] | None = None,
    ):
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path or ROOT / ".autotune" / "devhost.log"
        self.port = port
        self.on_log = on_log
        self.url = ""
        self._azurite: subprocess.Popen[bytes] | None = None
        self._devhost: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

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
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._devhost = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        found: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            assert self._devhost is not None and self._devhost.stdout is not None
            with self.log_path.open("a", encoding="utf-8") as log:
                for line in self._devhost.stdout:
                    log.write(line)
                    log.flush()
                    match = LISTENING.search(line)
                    if match and not ready.is_set():
                        found.append(match.group(1))
                        ready.set()
                    if self.on_log:
                        self.on_log(line.rstrip("\n"))
            ready.set()

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()
        if not ready.wait(timeout) or not found:
            raise StackError(f"the devhost did not start within {timeout:.0f} s; see {self.log_path}")
        self.url = found[0]

    def stop(self) -> None:
        if self._devhost is not None and self._devhost.poll() is None:
            self._devhost.send_signal(signal.SIGTERM)
            try:
                self._devhost.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self._devhost.pid, signal.SIGKILL)
                self._devhost.wait(5)
        if self._devhost is not None:
            self._kill_group(self._devhost.pid)
        if self._azurite is not None and self._azurite.poll() is None:
            self._azurite.terminate()
            self._azurite.wait(10)
        self._devhost = self._azurite = None

    @staticmethod
    def _kill_group(pgid: int) -> None:
        """Anything still in the devhost's process group is a leak: end it rather than leave it running."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

    @staticmethod
    def _wait(check: Callable[[], bool], timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise StackError(message)
            time.sleep(0.1)
