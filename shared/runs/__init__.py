"""Runs: one prepared dataset going through train -> register -> deploy.

States (the run's ``timeline`` stamps each): ``queued`` (created, job not yet accepted) -> ``submitted`` (the
platform has the job) -> ``running`` -> ``completed`` (job done) -> ``registered`` (model version exists; the
model's desired version) -> ``deploying`` (the reconciler is rolling it out) -> ``live``. Ends: ``failed`` (with
the reason), ``canceled``, ``superseded`` (a newer run replaced it, before or after it was live).

- ``create``: ``create_run``, the idempotent run record for a dataset;
- ``submit``: ingestion's entry point ``start_run_for_dataset`` and the idempotent job submission;
- ``outcome``: what a job's completion/failure does (shared by the Event Grid handler and the backstop poll);
- ``views``: the runs API (list, detail, cancel); ``retry``: retrying a failed run.

This package file holds no logic: import from the named modules.
"""
