"""Files and processes: the local backend's whole state lives in JSON files under ``LOCAL_STATE_DIR``.

Why files: the function-app process (the devhost) may restart at any time while jobs train and scoring
servers serve. Everything a fresh process needs to find, query or stop them is on disk: JSON state written
atomically (temp file + rename, so a reader never sees half a file) and, per child process, its pid *and*
start time, so that a recycled pid is never mistaken for our process. Light module: stdlib only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except json.JSONDecodeError:
        # Only possible for a file written by hand; atomic writes never leave half a file.
        return default


def write_json(path: Path, data: Any) -> None:
    """Write atomically: readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def update_json(path: Path, **changes: Any) -> dict[str, Any]:
    """Read-modify-write under the file's lock (processes writing the same state file take turns)."""
    with file_lock(path.with_name(f".{path.name}.lock")):
        data = read_json(path, {}) or {}
        data.update(changes)
        write_json(path, data)
        return data


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock between processes (flock; released when the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Processes ---------------------------------------------------------------------------------------------------


def process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` as an opaque string, or None when it is gone (zombies count as gone)."""
    try:
        import psutil  # optional; exact on every platform
    except ImportError:  # pragma: no cover - psutil ships with the local requirements
        psutil = None
    if psutil is not None:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return f"{proc.create_time():.3f}"
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
    try:  # pragma: no cover - Linux fallback
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except (FileNotFoundError, IndexError):
        return None


def alive(record: dict[str, Any] | None) -> bool:
    """Is the process described by ``{"pid", "start_time"}`` still the one we started?"""
    if not record or not record.get("pid"):
        return False
    _reap(int(record["pid"]))
    started = process_start_time(int(record["pid"]))
    return started is not None and started == record.get("start_time")


def _reap(pid: int) -> None:
    """Collect our own exited children so they do not linger as zombies."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # One math thread per child unless the user says otherwise: jobs and model servers share a few cores, and
    # OpenMP threads spin-waiting for a busy core made training ~30x slower on a loaded 2-core machine.
    env.setdefault("OMP_NUM_THREADS", "1")
    # Never reach the network from a child: no model hub downloads, no MLflow telemetry (whose exit-time
    # flush also held every process that imported mlflow for seconds on the way out).
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def spawn(
    module: str,
    args: list[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    listen: socket.socket | None = None,
) -> dict[str, Any]:
    """Start ``python -m module args`` detached (own session, so it outlives us and a group kill reaches it all).

    ``listen`` is a bound, listening socket handed to the child (its fd number goes in ``AUTOTUNE_LISTEN_FD``):
    the port is ours before the child even starts, so its URI can be returned at once without a race.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    extra = dict(env or {})
    pass_fds: tuple[int, ...] = ()
    if listen is not None:
        extra["AUTOTUNE_LISTEN_FD"] = str(listen.fileno())
        pass_fds = (listen.fileno(),)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=str(PROJECT_ROOT),
            env=child_env(extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    started = process_start_time(proc.pid)
    return {"pid": proc.pid, "start_time": started, "started_at": time.time(), "owner": me()}


def me() -> dict[str, Any]:
    """This process as an owner record (pid + start time)."""
    return {"pid": os.getpid(), "start_time": process_start_time(os.getpid())}


def claim(record_path: Path) -> bool:
    """Take ownership of the running process recorded at ``record_path`` unless another live process owns it.

    The owner stops the process when it shuts down. A host that crashed leaves its processes running with a
    dead owner: the next host claims them. A short-lived process that merely looks (a CLI, a second host on
    the same state) finds a live owner and leaves them alone, so its exit stops nothing it did not start.
    """
    with file_lock(record_path.with_name(f".{record_path.name}.lock")):
        record = read_json(record_path)
        if not alive(record):
            return False
        owner = record.get("owner")
        if owner and owner.get("pid") != os.getpid() and alive(owner):
            return False
        record["owner"] = me()
        write_json(record_path, record)
        return True


def stop(record: dict[str, Any] | None, timeout: float = 10.0) -> bool:
    """SIGTERM the process group, wait, then SIGKILL. Returns True when it is gone."""
    if not alive(record):
        return True
    assert record is not None
    pid = int(record["pid"])
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(record):
            return True
        time.sleep(0.05)
    signal_group(pid, signal.SIGKILL)
    for _ in range(100):
        if not alive(record):
            return True
        time.sleep(0.05)
    return not alive(record)


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group ``pid`` leads (our children lead their own session), else just the process."""
    try:
        os.killpg(pid, sig)  # the child leads its own session, so its pgid is its pid
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def listening_socket(port: int = 0) -> socket.socket:
    """A loopback socket already listening (on ``port`` if free, else on any free port)."""
    for candidate in [port, 0] if port else [0]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", candidate))
        except OSError:
            sock.close()
            continue
        sock.listen(64)
        sock.set_inheritable(True)
        return sock
    raise OSError("no free loopback port")


def inherited_socket() -> socket.socket | None:
    """In a child: the listening socket its parent handed over (see ``spawn``)."""
    raw = os.environ.get("AUTOTUNE_LISTEN_FD")
    if not raw:
        return None
    return socket.socket(fileno=int(raw))


def http_server_on(sock: socket.socket, handler: type) -> Any:
    """A threading HTTP server on the socket the parent handed over; SIGTERM or SIGINT stops it gracefully."""
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(sock.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.daemon_threads = True

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return server


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
