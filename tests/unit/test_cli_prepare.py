"""``python -m shared prepare``: outputs, summary and exit codes (0 accepted, 2 rejected as a whole, 1 usage/I-O)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from shared.chatdata import PrepareOptions
from shared.cli import main
from tests.conftest import ROOT
from tests.unit.chatdata_helpers import jsonl, many


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch):
    # prepare needs no storage account: it must work with nothing configured
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    for name in PrepareOptions.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    from shared.settings import reset_settings

    reset_settings()
    yield
    reset_settings()


def test_settings_are_followed_without_a_storage_account(tmp_path, monkeypatch):
    # the app's settings decide the preparation offline too, though nothing else (storage) is configured
    monkeypatch.setenv("TEST_SPLIT_PERCENT", "30")
    monkeypatch.setenv("FINETUNE_PARAMETERS", '{"num_train_epochs": 1}')
    source = tmp_path / "data.jsonl"
    source.write_bytes(jsonl(*many(60)))
    assert main(["prepare", str(source), "--out", str(tmp_path / "o"), "--max-seq-length", "512"]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert (report["test_split_percent"], report["epochs"], report["max_seq_length"]) == (30, 1, 512)


def test_a_malformed_setting_is_named_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAX_SEQ_LENGTH", "long")
    source = tmp_path / "data.jsonl"
    source.write_bytes(jsonl(*many(20)))
    assert main(["prepare", str(source), "--out", str(tmp_path / "o")]) == 1
    assert "MAX_SEQ_LENGTH is malformed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    # a command module may register several commands (promotion: promote, reject)
    assert all(name in out for name in ("upload", "models", "wake", "chat", "status", "prepare", "retry", "promote")), (
        out
    )


def test_accepted_dataset_writes_four_files_and_exits_0(tmp_path, capsys):
    source = tmp_path / "data.jsonl.gz"
    source.write_bytes(gzip.compress(jsonl(*many(100), b"{broken")))
    out = tmp_path / "out"
    assert main(["prepare", str(source), "--out", str(out), "--test-percent", "20"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["accepted"] is True
    assert report["test_split_percent"] == 20
    assert report["compression"] == "gzip"
    train = (out / "train.jsonl").read_text().splitlines()
    test = (out / "test.jsonl").read_text().splitlines()
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert len(train) == report["train"] and len(test) == report["test"] and len(train) + len(test) == 100
    assert rejected == [{"line": 101, "reason": "invalid_json", "detail": rejected[0]["detail"], "raw": "{broken"}]
    printed = capsys.readouterr().out
    assert f"accepted as dataset {report['dataset_id']}" in printed
    assert "line 101: invalid_json" in printed


def test_rejected_dataset_exits_2_and_still_writes_the_report(tmp_path, capsys):
    source = tmp_path / "data.csv"
    source.write_text("prompt,completion\nhi,hello\n")
    out = tmp_path / "out"
    assert main(["prepare", str(source), "--out", str(out)]) == 2
    report = json.loads((out / "report.json").read_text())
    assert report["rejection"]["code"] == "not_jsonl"
    assert "REJECTED (not_jsonl)" in capsys.readouterr().out
    assert (out / "rejected.jsonl").read_text().count("\n") == 2


def test_too_few_rows_exits_2(tmp_path):
    source = tmp_path / "few.jsonl"
    source.write_bytes(jsonl(*many(5)))
    assert main(["prepare", str(source), "--out", str(tmp_path / "o")]) == 2
    assert json.loads((tmp_path / "o" / "report.json").read_text())["rejection"]["code"] == "too_few_train_rows"


def test_missing_input_and_bad_arguments_exit_1(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")]) == 1
    assert "nope.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    source = tmp_path / "d.jsonl"
    source.write_bytes(jsonl(*many(20)))
    assert main(["prepare", str(source), "--out", str(tmp_path / "o"), "--test-percent", "101"]) == 1
    assert "between 0 and 100" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 1


def test_the_module_entry_point_runs_as_a_process(tmp_path):
    source = tmp_path / "d.jsonl"
    source.write_bytes(jsonl(*many(60)))
    done = subprocess.run(
        [sys.executable, "-m", "shared", "prepare", "-", "--out", str(tmp_path / "o"), "--quiet"],
        input=source.read_bytes(),
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert b"accepted as dataset" in done.stdout
    assert (tmp_path / "o" / "report.json").exists()


# Heavy or network libraries the offline prepare command never needs (httpx alone, with rich, took ~0.2 s to import).
NOT_FOR_PREPARE = ("httpx", "rich", "openai", "aiohttp", "azure", "pandas", "datasets", "numpy", "torch")
LOADED = """
import json, runpy, sys
sys.argv = ["shared", *sys.argv[1:]]
try:
    runpy.run_module("shared", run_name="__main__", alter_sys=True)
except SystemExit as done:
    code = done.code
top = sorted({name.split(".")[0] for name in sys.modules})
ours = sorted(name for name in sys.modules if name.startswith("shared."))
print(json.dumps({"modules": top, "shared": ours, "code": code}), file=sys.stderr)
"""


@pytest.mark.parametrize("command", [["prepare", "--help"], ["prepare", "IN", "--out", "OUT", "--quiet"]])
def test_prepare_imports_only_what_it_needs(tmp_path, command):
    source = tmp_path / "d.jsonl"
    source.write_bytes(jsonl(*many(30)))
    argv = [str(source) if arg == "IN" else str(tmp_path / "o") if arg == "OUT" else arg for arg in command]
    env = {k: v for k, v in os.environ.items() if k not in PrepareOptions.SETTINGS}
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    *_, last = done.stderr.strip().splitlines()
    child = json.loads(last)
    assert child["code"] in (0, None), done.stderr
    loaded = set(child["modules"])
    assert "shared" in loaded and not loaded & set(NOT_FOR_PREPARE), loaded & set(NOT_FOR_PREPARE)
    # nor the app's settings (none of the preparation's is set) nor the other commands' modules
    assert not {"shared.settings", "shared.cli.client"} & set(child["shared"]), child["shared"]
