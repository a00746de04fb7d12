"""ML platform backends. ``get_backend`` imports the chosen one lazily (azure.ai.ml is heavy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.backends.base import MLBackend
    from shared.settings import Settings

_cache: dict[str, MLBackend] = {}


def get_backend(settings: Settings | None = None) -> MLBackend:
    """The configured backend, one per process and backend kind."""
    if settings is None:
        from shared.settings import get_settings

        settings = get_settings()
    backend = _cache.get(settings.ml_backend)
    if backend is None:
        if settings.ml_backend == "azureml":
            from shared.backends.azureml import AzureMLBackend

            backend = AzureMLBackend(settings)
        else:
            from shared.backends.local import LocalBackend

            backend = LocalBackend(settings)
        _cache[settings.ml_backend] = backend
    return backend


def reset_backends() -> None:
    _cache.clear()
