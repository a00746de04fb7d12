"""How a trigger gets what it needs: settings, ledger, backend, run context and gateway, from this one module.

In the spirit of the ``api/deps.py`` of full-stack-fastapi-template: blueprints never build collaborators
themselves. Each is built once per worker by ``shared``'s process-wide factories (and rebuilt when tests or the
devhost reset the settings), on first use rather than at import, so a cold start stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.backends.base import MLBackend
    from shared.gateway.service import Gateway
    from shared.ledger import Ledger
    from shared.runs.context import RunContext
    from shared.settings import Settings


def settings() -> Settings:
    from shared.settings import get_settings

    return get_settings()


def ledger() -> Ledger:
    from shared.ledger import get_ledger

    return get_ledger()


def backend() -> MLBackend:
    from shared.backends import get_backend

    return get_backend(settings())


def run_context() -> RunContext:
    """Settings, ledger and (on first use) the backend, as the runs, events and reconciler take them."""
    from shared.runs.context import RunContext

    return RunContext(settings=settings(), ledger=ledger())


def gateway() -> Gateway:
    from shared.gateway.service import get_gateway

    return get_gateway()


__all__ = ["backend", "gateway", "ledger", "run_context", "settings"]
