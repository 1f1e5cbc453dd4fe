from pathlib import Path

import pytest

from maas.settings import names as c
from maas.settings.functions import EmbeddingsSettings, SettingsError
from maas.tables import USAGE

METERED = {USAGE.env_var: "maas-usage"}


def test_defaults_when_only_the_usage_table_is_set():
    s = EmbeddingsSettings.from_env(METERED)
    assert s.model_source == c.DEFAULT_MODEL_SOURCE
    assert s.max_inputs == c.DEFAULT_MAX_INPUTS
    assert s.model_cache_dir == Path(c.DEFAULT_MODEL_CACHE_DIR)
    assert s.threads is None
    assert (s.metering, s.usage_table) == ("on", "maas-usage")


def test_metering_cannot_be_silently_missing():
    with pytest.raises(SettingsError, match=f"{USAGE.env_var} is required"):
        EmbeddingsSettings.from_env({})
    assert EmbeddingsSettings.from_env({c.ENV_METERING: "off"}).usage_table is None


def test_values_are_parsed_and_unrelated_variables_ignored():
    s = EmbeddingsSettings.from_env({**METERED, c.ENV_MODEL_SOURCE: "s3://b/p", c.ENV_THREADS: "2", "PATH": "/bin"})
    assert (s.model_source, s.threads) == ("s3://b/p", 2)


@pytest.mark.parametrize(
    "name,value",
    [(c.ENV_THREADS, "zero"), (c.ENV_MAX_INPUTS, "0"), (c.ENV_MODEL_SOURCE, ""), (c.ENV_METERING, "maybe")],
)
def test_invalid_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        EmbeddingsSettings.from_env({**METERED, name: value})


def test_tracer_only_where_it_traces():
    from maas.observability import make_tracer

    assert make_tracer("maas", {}) is None  # outside Lambda: no X-Ray SDK import at all
    assert make_tracer("maas", {"AWS_LAMBDA_FUNCTION_NAME": "f", "POWERTOOLS_TRACE_DISABLED": "true"}) is None
    tracer = make_tracer("maas", {"AWS_LAMBDA_FUNCTION_NAME": "f"})
    assert tracer is not None and tracer.service == "maas"
