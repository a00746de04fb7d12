"""``python -m shared status``: a run's timeline, metrics and loss curves as an operator reads them."""

from shared.cli.status import loss_chart, progress_line, render_run

DETAIL = {
    "run_id": "support-bot-0123456789ab",
    "model": "support-bot",
    "state": "running",
    "error": None,
    "job": {
        "name": "amber_pebble_x",
        "studio_url": None,
        "progress": {
            "stage": "finetune",
            "step": 30,
            "max_steps": 60,
            "loss": 1.25,
        },
    },
    "loss_history": {"loss": [[10, 3.1], [20, 2.0], [30, 1.25]], "eval_loss": [[15, 2.5], [30, 1.6]]},
    "dataset": {"dataset_id": "c0dbe274fa814782", "summary": {"train": 275, "test": 26, "rejected": 5}},
    "timeline": [
        {"state": "queued", "at": "2026-11-28T04:00:00.000Z"},
        {"state": "running", "at": "2026-11-28T04:00:02.000Z"},
    ],
    "metrics": {"train_loss": 0.77},
    "registered": None,
}


def test_progress_line_shows_stage_step_and_loss():
    line = progress_line(DETAIL, 12.4)
    assert "running" in line and "12 s" in line
    assert "stage finetune" in line and "step 30/60" in line and "loss 1.250" in line
    assert "[" + "#" * 10 + " " * 10 + "]" in line


def test_render_run_has_timeline_dataset_metrics_and_both_curves():
    text = render_run(DETAIL)
    assert "2026-11-28T04:00:02.000Z  running" in text
    assert "dataset c0dbe274fa814782 · train 275 · test 26 · rejected 5" in text
    assert "train_loss=0.77" in text
    assert "train loss" in text and "eval loss" in text


def test_no_history_draws_nothing():
    assert loss_chart({}) == ""
    assert loss_chart({"loss": []}) == ""


def test_render_run_shows_the_corpus_it_trains_on():
    corpus = {
        "corpus_id": "9f2c0a1b3d4e5f60",
        "mode": "cumulative",
        "datasets": [
            {"dataset_id": "aaaaaaaaaaaaaaaa", "train": 90, "test": 10},
            {"dataset_id": "bbbbbbbbbbbbbbbb", "train": 45, "test": 5},
        ],
        "train": 135,
        "test": 15,
        "duplicates": 7,
        "files": {"train": "t", "test": "u", "manifest": "m"},
    }
    text = render_run({**DETAIL, "corpus": corpus})
    assert "corpus 9f2c0a1b3d4e5f60 (cumulative) · 2 dataset(s) · train 135 · test 15 · 7 duplicate(s)" in text
    assert "aaaaaaaaaaaaaaaa  train      90  test     10" in text and "bbbbbbbbbbbbbbbb" in text
    assert "dataset c0dbe274fa814782 · train 275" not in text  # the corpus, not the newest dataset, is the data


def test_render_run_says_why_a_run_waits():
    waiting = {
        "reason": "a job is running (run bot-1 (running)); submitted when it ends",
        "changes": [{"at": "2026-11-28T04:00:00.000Z", "change": "dataset cccccccccccccccc prepared"}],
    }
    text = render_run({**DETAIL, "state": "waiting", "job": {}, "corpus": None, "waiting": waiting})
    assert "waiting: a job is running (run bot-1 (running)); submitted when it ends" in text
    assert "2026-11-28T04:00:00.000Z  dataset cccccccccccccccc prepared" in text
