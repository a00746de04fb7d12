"""The README is the user's manual: it keeps the two commands on top and documents every setting."""

from pathlib import Path

from shared.settings import SPEC

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_two_commands_come_first():
    first_block = README.split("```", 2)[1]
    assert "make demo" in first_block and "make test" in first_block


def test_every_setting_is_documented():
    missing = [spec.env for spec in SPEC if f"`{spec.env}`" not in README]
    assert missing == []
