"""HTTP client the CLI uses to talk to a running app (the local devhost or a deployed Function App).

Why a client of its own: the operator's terminal must work against a remote app with nothing but a URL and
keys, and must say plainly when the app is unreachable or a key is wrong instead of printing a traceback.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cli.errors import CliError

if TYPE_CHECKING:
    import httpx


def client_environment() -> dict[str, str]:
    """The environment, completed (never overridden) by ``local.settings.json`` or its sample in a checkout, as
    ``func`` and the devhost read them, so ``python -m shared chat`` finds the local app's URL and API key."""
    import os

    merged = dict(os.environ)
    from shared.localsettings import find_settings_file, load_local_settings

    if find_settings_file(Path.cwd()) is not None:
        load_local_settings(Path.cwd(), merged)
    return merged


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="base URL of the app (default: AUTOTUNE_HOST_URL or http://127.0.0.1:7071)")
    parser.add_argument("--api-key", help="chat API key (default: the first of GATEWAY_API_KEYS)")
    parser.add_argument("--function-key", help="function key for management routes (default: AUTOTUNE_FUNCTION_KEY)")


def add_run_command(subparsers: argparse._SubParsersAction, name: str, help: str, func: Any) -> None:
    """A command that acts on one run, by its id, through a running app (retry, promote, reject)."""
    parser = subparsers.add_parser(name, help=help)
    parser.add_argument("run", help="the run id, as `status` lists it")
    add_connection_args(parser)
    parser.set_defaults(func=func)


class AppClient:
    def __init__(self, url: str, api_key: str = "", function_key: str = "", timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        import httpx  # here, not at the top: offline commands (prepare) register with this module but never call

        headers = {"x-functions-key": function_key} if function_key else {}
        self._http: httpx.Client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AppClient:
        from shared.settings import SettingsError, load_client_settings  # here: offline commands never need it

        try:
            conf = load_client_settings(client_environment())
        except SettingsError as exc:
            raise CliError(str(exc)) from None
        keys = conf["gateway_api_keys"]
        return cls(
            url=args.url or conf["host_url"],
            api_key=args.api_key or (keys[0] if keys else ""),
            function_key=args.function_key or conf["function_key"],
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise CliError(
                f"cannot reach the app at {self.url} ({exc}); is it running? Start it locally with `make devhost`, "
                "or pass --url"
            ) from exc
        except httpx.TimeoutException as exc:
            raise CliError(f"the app at {self.url} did not answer {method} {path} in time") from exc
        if response.status_code in (401, 403):
            raise CliError(
                f"{method} {path}: the app refused the key (HTTP {response.status_code}); check --function-key / "
                "AUTOTUNE_FUNCTION_KEY (management routes) or --api-key / GATEWAY_API_KEYS (chat)"
            )
        try:
            body = response.json() if response.content else {}
        except json.JSONDecodeError:
            body = {"raw": response.text[:500]}
        if response.status_code >= 400:
            error = body.get("error", body) if isinstance(body, dict) else body
            message = error.get("message", error) if isinstance(error, dict) else error
            raise CliError(f"{method} {path} failed (HTTP {response.status_code}): {message}")
        return body

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def openai(self) -> Any:
        """The real ``openai`` client pointed at our OpenAI-compatible routes."""
        from openai import OpenAI

        if not self.api_key:
            raise CliError("no chat API key: pass --api-key or set GATEWAY_API_KEYS")
        return OpenAI(base_url=f"{self.url}/v1", api_key=self.api_key, max_retries=0)
