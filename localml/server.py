"""A deployment's model server: ``python -m localml.server DEPLOYMENT_DIR`` (torch).

Loads the deployment's MLflow model folder, proves it can answer (one short generation), then marks the
deployment ``succeeded`` and serves ``POST /score``; if anything in that fails, it marks the deployment
``failed`` with the reason and exits, the way an Azure ML deployment ends in Failed when its container
cannot start. The router forwards requests here with the endpoint's key, which is checked again.
"""

from __future__ import annotations

import signal
import sys


def _early_term(signum, frame):  # stop while still loading: just leave
    sys.exit(0)


signal.signal(signal.SIGTERM, _early_term)

import hmac  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
from http.server import BaseHTTPRequestHandler  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from localml.scoring import ScoringInputError, parse_request  # noqa: E402
from localml.state import (  # noqa: E402
    file_lock,
    http_server_on,
    inherited_socket,
    read_json,
    write_json,
)
from shared.timeutil import iso  # noqa: E402

log = logging.getLogger("autotune.local.server")


def set_phase(folder: Path, phase: str, error: str = "") -> bool:
    """Record the verdict unless the deployment was replaced or is being deleted meanwhile."""
    path = folder / "deployment.json"
    with file_lock(path.with_name(f".{path.name}.lock")):
        data = read_json(path)
        if not data or data.get("phase") not in ("creating", "succeeded"):
            return False
        data.update(phase=phase, error=error, updated_at=iso())
        if phase == "succeeded":
            data["ready_at"] = iso()
        write_json(path, data)
        return True


# Our pyfunc flavour's module, under its name before and after the local platform left ``shared/`` (models
# exported earlier still name the old one, which no longer imports).
OWN_LOADERS = ("localml.pyfunc", "shared.backends.local.pyfunc")


def load(model_path: str) -> Any:
    """The model's predictor, loaded the way ``mlflow.pyfunc.load_model`` loads an MLflow model folder.

    Our own export (``loader_module: localml.pyfunc``) is loaded directly from its MLmodel file,
    which spares each server the seconds it takes to import mlflow; any other MLflow model goes through mlflow.
    """
    folder = Path(model_path)
    if not (folder / "MLmodel").exists():
        raise FileNotFoundError(f"{folder} is not an MLflow model folder (no MLmodel file)")
    import yaml

    flavor = (yaml.safe_load((folder / "MLmodel").read_text()) or {}).get("flavors", {}).get("python_function")
    if not flavor:
        raise ValueError(f"{folder / 'MLmodel'} has no python_function flavor: it cannot be served")
    if flavor.get("loader_module") in OWN_LOADERS:
        from localml.pyfunc import _load_pyfunc

        predictor = _load_pyfunc(str(folder / flavor["data"]))
    else:
        import mlflow.pyfunc

        predictor = mlflow.pyfunc.load_model(str(folder))._model_impl
    probe = {
        "input_data": {"input_string": [{"role": "user", "content": "hello"}], "parameters": {"max_new_tokens": 1}}
    }
    predictor.predict(probe)  # readiness: the weights load *and* generate
    return predictor


class Handler(BaseHTTPRequestHandler):
    predictor: Any
    key_path: Path
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _answer(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._answer(200, {"status": "ready"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        expected = (read_json(self.key_path) or {}).get("primary_key", "")
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            self._answer(401, {"error": "Unauthorized"})
            return
        try:
            request = json.loads(body or b"null")
            conversations, single, parameters = parse_request(request)
        except json.JSONDecodeError as exc:
            self._answer(400, {"error": f"the body is not valid JSON: {exc.msg} at position {exc.pos}"})
            return
        except ScoringInputError as exc:
            self._answer(400, {"error": str(exc)})
            return
        try:
            outputs = [self.predictor.generate(messages, parameters) for messages in conversations]
        except Exception as exc:
            log.exception("generation failed")
            self._answer(500, {"error": f"generation failed: {type(exc).__name__}"})
            return
        self._answer(200, {"output": outputs[0] if single else outputs})


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = Path(argv[0])
    spec = read_json(folder / "deployment.json") or {}
    sock = inherited_socket()
    if sock is None:
        set_phase(folder, "failed", "the scoring server got no listening socket (internal error)")
        return 2
    try:
        predictor = load(spec.get("model_path", ""))
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - any load failure is the deployment's failure reason
        reason = f"cannot load the model from {spec.get('model_path')}: {type(exc).__name__}: {exc}"
        log.error("%s", reason)
        set_phase(folder, "failed", reason[:2000])
        return 1
    handler = type(
        "BoundHandler",
        (Handler,),
        {"predictor": predictor, "key_path": folder.parent.parent / "key.json"},
    )
    server = http_server_on(sock, handler)
    if not set_phase(folder, "succeeded"):
        log.info("deployment was replaced or deleted while loading; exiting")
        return 0
    log.info("deployment %s serving %s:%s", folder.name, spec.get("model_name"), spec.get("model_version"))
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    log.info("deployment %s stopped", folder.name)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: unloading torch took seconds, and there is nothing left to save
