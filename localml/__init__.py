"""The local ML platform (``ML_BACKEND=local``): a real, small ML platform on one machine.

It lives beside ``shared/``, not inside it, because it is never deployed: the Function App ships ``shared/``
and the local platform is a development and test stand-in for Azure ML. ``shared.backends.get_backend`` loads
it by name when the setting asks for it, so ``shared`` never imports it statically.

Importing this package is light (no torch, transformers, peft or mlflow): those load only in the child
processes it starts (``python -m localml.<job|server|router|mlflowstore|tinymodel>``). See ``backend.py`` for
the shape and ``layout.py`` for where state lives.
"""

from localml.backend import LocalBackend

__all__ = ["LocalBackend"]
