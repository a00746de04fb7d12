"""Crash points: the named moments between a change on the platform and its record in the ledger.

Why name them: the reconciler, the sweeper and a wake each change two things that cannot change together (the
platform, then the ledger), so a process that dies in between must leave a state the next tick repairs. The
fault-injection tests (``tests/integration/test_faults_*.py``) make the process fail at each point, by raising
or by killing itself, and check that the system converges. Every point is reached twice per step: ``before``
the step's outcome is saved (the platform already acted) and ``after`` it is saved.

In production ``reached`` is a no-op: no hook is installed. Nothing here imports anything heavy.
"""

from __future__ import annotations

from collections.abc import Callable

BEFORE, AFTER = "before", "after"

Hook = Callable[[str, str, str], None]  # (point, when, model)

_hook: Hook | None = None


def reached(point: str, when: str, model: str) -> None:
    """The process is at ``point`` (``before`` or ``after`` its record is saved) for ``model``."""
    if _hook is not None:
        _hook(point, when, model)


def install(hook: Hook | None) -> Hook | None:
    """Install a hook (tests only); returns the previous one so it can be put back."""
    global _hook
    previous, _hook = _hook, hook
    return previous


__all__ = ["AFTER", "BEFORE", "Hook", "install", "reached"]
