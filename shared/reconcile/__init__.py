"""The reconciler: per model, compare the desired version with what serves and take the next step.

Why a reconciler and not a workflow: everything here is started by at-least-once, unordered triggers (Event
Grid, timers, several Function instances), and Azure ML operations take minutes. A loop that re-reads the
ledger, takes the *next* idempotent step and records it converges whatever happened before, including a
crash halfway. Two reconcilers never work on the same model at once: each holds the lease ``model:{model}``
(the sweeper takes the same lease), and every write is ETag-checked.

``reconcile_all`` is the timer's work: the backstop over unfinished runs (``backstop``), failed wakes retried when
due (``wake``), drift between ledger and platform repaired (``drift``), then every model, then orphan deployments
deleted (``gc``). Crashed dataset preparations are re-driven (``datasets``) by a timer of their own.
``reconcile_model`` is also called right after a job event is handled.

- ``tick``: ``reconcile_model``, ``reconcile_all`` and the ``TickReport``;
- ``steps``: deciding and running the next step; ``smoke``: the smoke test; ``evaluate``: champion vs challenger;
- ``backstop``: polling jobs whose events never came; ``datasets``: re-driving crashed preparations (own timer);
- ``drift``: repairing what was changed on the platform by hand; ``gc``: deleting orphan deployments;
- ``wake``: what a failed wake leaves (asleep, wakeable, backoff); ``lease``: the model lease for housekeeping.

This package file holds no logic: import from the named modules.
"""
