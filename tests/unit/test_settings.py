from pathlib import Path

import pytest

from maas import constants as c
from maas.settings import EmbeddingsSettings, SettingsError


def test_defaults_when_nothing_is_set():
    s = EmbeddingsSettings.from_env({})
    assert s.model_source == c.DEFAULT_MODEL_SOURCE
    assert s.max_inputs == c.DEFAULT_MAX_INPUTS
    assert s.model_cache_dir == Path(c.DEFAULT_MODEL_CACHE_DIR)
    assert s.threads is None


def test_values_are_parsed_and_unrelated_variables_ignored():
    s = EmbeddingsSettings.from_env({c.ENV_MODEL_SOURCE: "s3://b/p", c.ENV_THREADS: "2", "PATH": "/bin"})
    assert (s.model_source, s.threads) == ("s3://b/p", 2)


@pytest.mark.parametrize("name,value", [(c.ENV_THREADS, "zero"), (c.ENV_MAX_INPUTS, "0"), (c.ENV_MODEL_SOURCE, "")])
def test_invalid_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        EmbeddingsSettings.from_env({name: value})
