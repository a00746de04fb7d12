"""Settings of the evaluation of a new version against the live one, and of its promotion gate."""

from __future__ import annotations

from shared.settingspec.kinds import Setting, as_float, as_int

# Evaluation and promotion
EVALUATION: tuple[Setting, ...] = (
    Setting(
        "PROMOTION_POLICY",
        "promotion_policy",
        "gate",
        "What happens after a new version's evaluation: gate (promote only if not worse than the live version), "
        "always (promote, scores recorded), manual (wait for POST /api/runs/{run_id}/promote or /reject).",
        choices=("gate", "always", "manual"),
    ),
    Setting(
        "PROMOTION_MAX_REGRESSION",
        "promotion_max_regression",
        "0.02",
        "Largest drop of mean ROUGE-L below the live version that the gate still promotes.",
        as_float,
        minimum=0,
        maximum=1,
    ),
    Setting(
        "PROMOTION_MAX_ERROR_INCREASE",
        "promotion_max_error_increase",
        "0.02",
        "Largest rise of the error rate (failed or empty answers, 0-1) over the live version's that the gate "
        "still promotes; with no live version, the largest error rate.",
        as_float,
        minimum=0,
        maximum=1,
    ),
    Setting(
        "PROMOTION_MIN_SCORE",
        "promotion_min_score",
        "0",
        "Mean ROUGE-L a first version (no live version to compare with) needs to be promoted by the gate.",
        as_float,
        minimum=0,
        maximum=1,
    ),
    Setting(
        "EVAL_MAX_EXAMPLES",
        "eval_max_examples",
        "100",
        "Held-out conversations asked per evaluation (0: none, the gate is skipped); each costs one request to "
        "each deployment.",
        as_int,
        minimum=0,
        maximum=10000,
    ),
    Setting(
        "EVAL_MAX_NEW_TOKENS",
        "eval_max_new_tokens",
        "256",
        "max_new_tokens of every evaluation request (greedy decoding).",
        as_int,
        minimum=1,
        maximum=4096,
    ),
    Setting(
        "EVAL_CONCURRENCY",
        "eval_concurrency",
        "4",
        "Evaluation requests in flight at once (per endpoint, both deployments together).",
        as_int,
        minimum=1,
        maximum=64,
    ),
    Setting(
        "EVAL_TIMEOUT_SECONDS",
        "eval_timeout_seconds",
        "60",
        "Read timeout of one evaluation request; no answer in time counts as an error. At most 150, so a "
        "reconcile tick ends well within its 180 s lease.",
        as_float,
        minimum=1,
        maximum=150,
    ),
    Setting(
        "EVAL_MIN_RECORDED_EXAMPLES",
        "eval_min_recorded_examples",
        "20",
        "While the live version sleeps, the fewest conversations its recorded answers must share with the gate set "
        "(or all of the gate set, when it has fewer) for the gate to compare with them; fewer: the new version is "
        "judged alone (PROMOTION_MIN_SCORE).",
        as_int,
        minimum=1,
        maximum=10000,
    ),
)


__all__ = ["EVALUATION"]
