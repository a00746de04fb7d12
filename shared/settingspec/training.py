"""Settings of continuous training: what a model's corpus holds, and when and how often a run trains on it."""

from __future__ import annotations

from shared.settingspec.kinds import Setting, as_float, as_int

CONTINUOUS_TRAINING: tuple[Setting, ...] = (
    Setting(
        "CORPUS_MODE",
        "corpus_mode",
        "cumulative",
        "What a run trains on: cumulative = every dataset of the model that is not excluded, deduplicated across "
        "datasets; latest = the newest dataset alone.",
        choices=("cumulative", "latest"),
    ),
    Setting(
        "CORPUS_MAX_TRAIN_ROWS",
        "corpus_max_train_rows",
        "0",
        "Most training rows in a corpus (0: no limit); over it, the newest datasets are kept first.",
        as_int,
        minimum=0,
    ),
    Setting(
        "CORPUS_MAX_AGE_DAYS",
        "corpus_max_age_days",
        "0",
        "Leave datasets prepared more than this many days ago out of new corpora (0: no limit).",
        as_float,
        minimum=0,
    ),
    Setting(
        "CORPUS_KEEP",
        "corpus_keep",
        "3",
        "Complete corpus snapshots kept per model beyond those its unfinished runs and its live and desired "
        "versions use; older ones are deleted (rebuilt if ever selected again).",
        as_int,
        minimum=1,
    ),
    Setting(
        "TRAINING_DEBOUNCE_SECONDS",
        "training_debounce_seconds",
        "300",
        "A run is submitted this long after the model's newest data arrived; data arriving meanwhile joins it.",
        as_float,
        minimum=0,
    ),
    Setting(
        "ON_NEW_DATA",
        "on_new_data",
        "wait",
        "When data arrives while the model's job trains: wait = train on it in one follow-up run when the job "
        "ends; cancel = cancel the job and train on the newer corpus.",
        choices=("wait", "cancel"),
    ),
    Setting(
        "MAX_RUNS_PER_MODEL_PER_DAY",
        "max_runs_per_model_per_day",
        "4",
        "Most training jobs submitted per model per UTC day (0: no limit); beyond it a run waits for the next day.",
        as_int,
        minimum=0,
    ),
)


__all__ = ["CONTINUOUS_TRAINING"]
