"""Azurite, the local Azure Storage emulator (blob, queue, table), started one way for tests, scripts and the demo.

Why one place: the test fixtures, ``scripts/stack.py`` (``make demo``, the end-to-end test) and
``scripts/azurite.sh`` (``make test``, a developer's shell) all need the same Azurite on 127.0.0.1, and a flag
changed in one copy but not another is how "works in the demo, fails in CI" happens. An Azurite that already
listens is reused and never stopped by whoever reused it.

    python -m devhost.azurite start [--fresh] | stop | status    # a background Azurite with its data in .azurite/
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BINARY = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
DATA = PROJECT_ROOT / ".azurite"
PORTS = (10000, 10001, 10002)  # blob, queue, table


class AzuriteError(RuntimeError):
    """Azurite could not be started; the message says where its output went."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def azurite_running() -> bool:
    return port_open(PORTS[0]) and port_open(PORTS[2])


def command(location: Path) -> list[str]:
    """The one Azurite command line: all three services on loopback, data under ``location``."""
    if not BINARY.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PROJECT_ROOT, check=True)
    return [
        str(BINARY),
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
    ]


def launch_azurite(location: Path, timeout: float = 30, output: Path | None = None) -> subprocess.Popen[bytes]:
    """Start Azurite in its own session (so a Ctrl-C of the caller does not reach it) and wait until it listens."""
    location.mkdir(parents=True, exist_ok=True)
    out = output.open("ab") if output else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(command(location), stdout=out, stderr=out, start_new_session=True)
    finally:
        if output:
            out.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while not azurite_running():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            where = f"; see {output}" if output else ""
            raise AzuriteError(f"Azurite did not start on 127.0.0.1:{PORTS[0]}-{PORTS[-1]}{where}")
        time.sleep(0.1)
    return proc


def _pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    action = args[0] if args else ""
    pidfile = DATA / "azurite.pid"
    if action == "start":
        if (pid := _pid(pidfile)) is not None:
            print(f"azurite already running (pid {pid})")
            return 0
        if port_open(PORTS[0]):
            print(f"azurite: something already listens on 127.0.0.1:{PORTS[0]}; using it")
            return 0
        if "--fresh" in args[1:]:
            shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True, exist_ok=True)
        try:
            proc = launch_azurite(DATA, output=DATA / "azurite.out")
        except AzuriteError as exc:
            print(exc, file=sys.stderr)
            return 1
        pidfile.write_text(f"{proc.pid}\n")
        print(f"azurite started (pid {proc.pid})")
        return 0
    if action == "stop":
        if (pid := _pid(pidfile)) is not None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if _pid(pidfile) is None:
                    break
                time.sleep(0.1)
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        return 0
    if action == "status":
        pid = _pid(pidfile)
        print(f"running (pid {pid})" if pid is not None else "stopped")
        return 0 if pid is not None else 1
    print("usage: python -m devhost.azurite start [--fresh] | stop | status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
