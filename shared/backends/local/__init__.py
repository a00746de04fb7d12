"""The local ML backend (``ML_BACKEND=local``): a real, small ML platform on one machine.

Importing this package is light (no torch, transformers, peft or mlflow): those load only in the child
processes it starts. See ``backend.py`` for the shape and ``layout.py`` for where state lives.
"""

from shared.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
