"""PrepareOptions from the app's settings: the CLI reads only ``PrepareOptions.SETTINGS``, and skips the settings
module when none of them is set, which is exact only while their defaults are PrepareOptions' own."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared.chatdata import PrepareOptions
from shared.settings import load_settings, load_some_settings

# a value other than the default for each setting a preparation follows
CHANGED = {
    "TEST_SPLIT_PERCENT": "25",
    "MAX_LINE_BYTES": "4096",
    "MAX_SEQ_LENGTH": "512",
    "MIN_TRAIN_ROWS": "50",
    "FINETUNE_PARAMETERS": '{"num_train_epochs": 1}',
}


def _options(env: dict[str, str]) -> PrepareOptions:
    return PrepareOptions.from_settings(SimpleNamespace(**load_some_settings(PrepareOptions.SETTINGS, env)))


def test_defaults_of_the_settings_are_the_options_defaults():
    assert _options({}) == PrepareOptions()
    assert PrepareOptions.from_settings(load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})) == (
        PrepareOptions()
    )


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_each_setting_changes_the_options(name):
    assert set(CHANGED) == set(PrepareOptions.SETTINGS)
    assert _options({name: CHANGED[name]}) != PrepareOptions()


def test_app_settings_and_the_subset_agree():
    full = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **CHANGED})
    assert PrepareOptions.from_settings(full) == _options(CHANGED)


def test_only_known_settings_can_be_asked_for():
    with pytest.raises(KeyError, match="NOT_A_SETTING"):
        load_some_settings(["NOT_A_SETTING"], {})
