"""``python -m devhost [--port 7071] [--app function_app] [--script-root DIR]``: run a Functions app locally.

The order matters: settings first (the app may read them at import), then the port is bound so that
``AUTOTUNE_HOST_URL`` names the real address before the app (and any process it starts) reads it, then the
app is imported and indexed. One line, ``devhost listening on http://127.0.0.1:PORT``, says it is ready.

Shutdown (Ctrl-C or SIGTERM) stops the server, timers and watchers, gives running invocations a few seconds,
and leaves through normal interpreter exit so the app's ``atexit`` hooks run (the local ML backend stops its
child processes there). A last hook, registered before the app is imported so that it runs after the app's,
ends any child process still left. A second Ctrl-C forces the exit.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import azure.functions as func

from devhost.bindings import index_app
from devhost.host import Host
from devhost.settings import ConfigError, load_local_settings

log = logging.getLogger("devhost")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=7071, help="port on 127.0.0.1; 0 picks a free one (default 7071)")
    parser.add_argument("--app", default="function_app", help="module holding the FunctionApp (default function_app)")
    parser.add_argument("--script-root", default=".", help="the app's folder: host.json, local.settings.json")
    parser.add_argument("--blob-poll-seconds", type=float, default=2.0, help="how often blob containers are listed")
    parser.add_argument("--grace-seconds", type=float, default=10.0, help="how long running invocations may finish")
    parser.add_argument("--verbose", action="store_true", help="debug logging, Azure SDK logging included")
    return parser.parse_args(argv)


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # the SDKs log every storage request at INFO; the blob watcher polls
        logging.getLogger("azure").setLevel(logging.WARNING)


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def load_app(module_name: str) -> func.FunctionApp:
    """Import the app module and find its one ``FunctionApp`` (the worker looks for it the same way)."""
    module = importlib.import_module(module_name)
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise ConfigError(f"module {module_name} must define exactly one FunctionApp, found {len(apps)}")
    return apps[0]


def _end_children() -> None:
    """Terminate child processes the app left behind (runs after the app's own atexit hooks)."""
    try:
        import psutil
    except ImportError:
        return
    children = psutil.Process().children(recursive=True)
    if not children:
        return
    log.warning("ending %d process(es) the app left running: %s", len(children), [c.pid for c in children])
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def _force_exit(code: int) -> None:
    """Leave now, still running the atexit hooks (threads that never return would block a normal exit)."""
    atexit._run_exitfuncs()
    os._exit(code)


async def serve(host: Host, sock: socket.socket, grace: float) -> int:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signame: str) -> None:
        if stopping.is_set():
            log.warning("%s again: exiting now", signame)
            _force_exit(1)
        log.info("%s: shutting down", signame)
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, sig.name)
    await host.start(sock, grace)
    port = sock.getsockname()[1]
    print(f"devhost listening on http://127.0.0.1:{port}", flush=True)
    await stopping.wait()
    drained = await host.stop(grace)
    return 0 if drained else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose)
    script_root = Path(args.script_root).resolve()
    os.chdir(script_root)  # like func start: relative paths in settings are relative to the app
    while str(script_root) in sys.path:
        sys.path.remove(str(script_root))
    sys.path.insert(0, str(script_root))  # the app's modules win over same-named ones elsewhere
    try:
        load_local_settings(script_root)
        sock = bind(args.port)
    except (ConfigError, OSError) as exc:
        log.error("%s", exc)
        return 2
    os.environ["AUTOTUNE_HOST_URL"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
    os.environ.setdefault("AzureWebJobsScriptRoot", str(script_root))
    atexit.register(_end_children)  # before the app's hooks are registered, so it runs after them
    try:
        specs, load_errors = index_app(load_app(args.app))
        host = Host(specs, script_root, blob_poll_seconds=args.blob_poll_seconds, load_errors=load_errors)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    log.info("app %s: %d functions", args.app, len(specs))
    code = asyncio.run(serve(host, sock, args.grace_seconds))
    if code:
        _force_exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
