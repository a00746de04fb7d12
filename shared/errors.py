"""One error hierarchy for the app: every error ``shared/`` raises on purpose is an ``AutotuneError``.

Why: callers (the HTTP layer in ``functions/``, the CLI, the reconciler) need to tell apart only a few kinds of
failure, whatever module raised them, and an API client needs a ``code`` that stays the same across releases
while the message is free to improve. So there are five *families*, each a class here:

- ``BadInput``: the request, file or event is wrong; the caller fixes it (HTTP 400-ish).
- ``NotFound``: what was named does not exist (HTTP 404).
- ``Conflict``: the thing is in a state that does not allow this, or someone else changed it (HTTP 409).
- ``RetryLater``: transient; the same call later may succeed (HTTP 503, or a host retry for triggers).
- ``PlatformError``: Azure ML, storage or this app's configuration failed; an operator acts (HTTP 5xx).

Each concrete class keeps its historical name and built-in base (``ValueError``, ``RuntimeError``) so existing
``except`` clauses behave as before, and sets ``code``: a stable, machine-readable name for the class. An instance
may carry a finer ``code`` of its own (``BackendError`` carries the platform's); ``code_of`` reads whichever applies.
This module imports nothing from the app: every layer may import it.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AutotuneError(Exception):
    """Base of the app's errors. ``family`` names one of the five families below; ``code`` is stable per class.

    Raised directly (``BadInput("...", code="empty_body", field="body")``), an instance may name its own ``code``,
    the request ``field`` at fault and further ``details`` for the error body (``limit=...``); subclasses with
    their own constructor keep it.
    """

    family: ClassVar[str] = "error"
    code: str = "error"
    field: str | None = None
    details: dict[str, Any] = {}  # replaced per instance, never mutated

    def __init__(self, *args: object, code: str | None = None, field: str | None = None, **details: Any) -> None:
        super().__init__(*args)
        if code:
            self.code = code
        if field:
            self.field = field
        if details:
            self.details = details


class BadInput(AutotuneError):
    """The caller's input is wrong (a request field, a data line, an event); the message says what and where."""

    family: ClassVar[str] = "bad_input"
    code: str = "bad_input"


class NotFound(AutotuneError):
    """The named model, run, dataset or import does not exist."""

    family: ClassVar[str] = "not_found"
    code: str = "not_found"


class Conflict(AutotuneError):
    """The target's state forbids the action, or another writer changed it first (an ETag mismatch)."""

    family: ClassVar[str] = "conflict"
    code: str = "conflict"


class RetryLater(AutotuneError):
    """Transient: another worker holds the resource, or a dependency is briefly unavailable."""

    family: ClassVar[str] = "retry_later"
    code: str = "retry_later"


class PlatformError(AutotuneError):
    """The platform (Azure ML, storage) or the app's own configuration failed; not the caller's doing."""

    family: ClassVar[str] = "platform_error"
    code: str = "platform_error"


FAMILIES: tuple[type[AutotuneError], ...] = (BadInput, NotFound, Conflict, RetryLater, PlatformError)


class BackendError(PlatformError, RuntimeError):
    """A platform failure, worded for the user who has to act on it.

    ``setting`` names the app setting to change when that is the fix; ``retryable`` marks transient
    failures (throttling, 5xx) that a later tick may simply try again. ``code`` is the platform's reason when
    known (``job_not_found``, ``invalid_parameter``), else empty. It lives here, not in ``shared.backends``, so
    that modules below the backends (``shared.finetune_params``) can raise its subclasses without an upward import.
    """

    code: str = "backend_error"

    def __init__(self, message: str, *, setting: str | None = None, retryable: bool = False, code: str = ""):
        super().__init__(message)
        self.setting = setting
        self.retryable = retryable
        self.code = code


def family_of(exc: BaseException) -> str:
    """The family an exception belongs to (the first family in its class's MRO), ``"error"`` for any other."""
    for cls in type(exc).__mro__:
        if cls in FAMILIES:
            return cls.family
    return "error"


def code_of(exc: BaseException) -> str:
    """The instance's own ``code`` when it has one, else its class's stable code; ``internal_error`` for others."""
    if not isinstance(exc, AutotuneError):
        return "internal_error"
    return getattr(exc, "code", "") or type(exc).code


__all__ = [
    "FAMILIES",
    "AutotuneError",
    "BackendError",
    "BadInput",
    "Conflict",
    "NotFound",
    "PlatformError",
    "RetryLater",
    "code_of",
    "family_of",
]
