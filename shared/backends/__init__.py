"""ML platform backends, chosen by ``ML_BACKEND``. ``get_backend`` imports the chosen one lazily and by name:
``azure.ai.ml`` is heavy, and the local platform (``localml``, beside ``shared/``) is never deployed, so
``shared`` holds no static import of it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.backends.base import MLBackend
    from shared.settings import Settings

# ML_BACKEND value -> (module, class). Anything but "azureml" is the local platform, as before.
_AZUREML = ("shared.backends.azureml", "AzureMLBackend")
_LOCAL = ("localml", "LocalBackend")

_cache: dict[str, MLBackend] = {}


def get_backend(settings: Settings | None = None) -> MLBackend:
    """The configured backend, one per process and backend kind."""
    if settings is None:
        from shared.settings import get_settings

        settings = get_settings()
    backend = _cache.get(settings.ml_backend)
    if backend is None:
        module_name, class_name = _AZUREML if settings.ml_backend == "azureml" else _LOCAL
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            from shared.settings import SettingsError

            raise SettingsError(
                [
                    f"ML_BACKEND={settings.ml_backend} needs the {module_name} package, which is not installed here "
                    "(the local platform ships with a checkout, never with the deployed app): set ML_BACKEND=azureml"
                ]
            ) from None
        backend = getattr(module, class_name)(settings)
        _cache[settings.ml_backend] = backend
    return backend


def reset_backends() -> None:
    _cache.clear()
