from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from maas.heavy.endpoint.service import EndpointSettings
from maas.settings import names as c
from maas.settings.base import EnvSettings, SettingsError
from maas.settings.functions import (
    AuthorizerSettings,
    BatchSettings,
    ClassifySettings,
    EmbeddingsSettings,
    HeavyProxySettings,
    ImageClassifySettings,
    JobsSettings,
    RerankSettings,
    UsageSettings,
)
from maas.settings.mixins import HeavyModelsEnv, LimitsEnv, MeteringEnv, ModelEnv
from maas.tables import ALL_TABLES, JOBS, TENANTS, USAGE

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


class _OneVariable(EnvSettings):
    answer: int = Field(42, alias="MAAS_TEST_ANSWER", ge=0)


def test_from_env_reads_only_the_variables_the_class_declares():
    # GIVEN an environment holding the class's variable beside unrelated ones
    environ = {"MAAS_TEST_ANSWER": "7", c.ENV_THREADS: "not a number", "PATH": "/bin"}

    # WHEN the settings are read from it
    settings = _OneVariable.from_env(environ)

    # THEN the declared variable is parsed and the others (even invalid MAAS_* ones) are not looked at
    assert settings.answer == 7
    assert _OneVariable.env_names() == {"MAAS_TEST_ANSWER"}


def test_from_env_defaults_to_the_process_environment(monkeypatch):
    # GIVEN the variable set in the process environment
    monkeypatch.setenv("MAAS_TEST_ANSWER", "3")

    # WHEN no mapping is passed
    settings = _OneVariable.from_env()

    # THEN the process environment is read
    assert settings.answer == 3


def test_an_invalid_value_is_a_settings_error_naming_the_variable():
    # GIVEN a value outside the field's bounds
    environ = {"MAAS_TEST_ANSWER": "-1"}

    # WHEN the settings are read
    with pytest.raises(SettingsError, match=r"invalid function settings: MAAS_TEST_ANSWER: .*greater than") as info:
        _OneVariable.from_env(environ)

    # THEN pydantic's error is kept as the cause
    assert isinstance(info.value.__cause__, ValidationError)


def test_settings_are_frozen():
    # GIVEN settings read once, at init
    settings = _OneVariable.from_env({})

    # WHEN code tries to change one
    with pytest.raises(ValidationError):
        settings.answer = 1

    # THEN the value stays what the environment said
    assert settings.answer == 42


def test_a_function_reads_exactly_the_variables_of_its_mixins():
    # GIVEN the embeddings function's settings, composed from three mixins
    mixins = (ModelEnv, MeteringEnv, LimitsEnv)

    # WHEN its variables are listed
    names = EmbeddingsSettings.env_names()

    # THEN they are the mixins' variables, no more, no fewer
    assert names == frozenset().union(*(m.env_names() for m in mixins))


@pytest.mark.parametrize(
    "cls,env",
    [
        (EmbeddingsSettings, {}),
        (HeavyProxySettings, {c.ENV_SAGEMAKER_ENDPOINT: "e", c.ENV_MODEL_NAME: "m"}),
        (BatchSettings, {TENANTS.env_var: "maas-tenants", JOBS.env_var: "maas-jobs"}),
    ],
)
def test_every_metered_function_refuses_metering_without_a_table(cls, env):
    # GIVEN a function composed with MeteringEnv and no usage table
    # WHEN its settings are read with metering left on
    with pytest.raises(SettingsError, match=f"{USAGE.env_var} is required"):
        cls.from_env(env)

    # THEN switching metering off is the only way to run without one
    assert cls.from_env({**env, c.ENV_METERING: "off"}).usage_table is None


@pytest.mark.parametrize(
    "cls,default,too_many",
    [
        (EmbeddingsSettings, c.DEFAULT_MAX_INPUTS, "2049"),
        (ClassifySettings, c.DEFAULT_CLASSIFY_MAX_INPUTS, "2049"),
        (ImageClassifySettings, c.DEFAULT_IMAGE_MAX_INPUTS, "257"),
    ],
)
def test_a_function_narrows_a_mixin_field_under_the_same_variable(cls, default, too_many):
    # GIVEN functions that share MAAS_MAX_INPUTS with their own default and bound
    off = {c.ENV_METERING: "off"}

    # WHEN it is unset, and when it is over the function's bound
    settings = cls.from_env(off)

    # THEN each takes its own default and refuses past its own bound
    assert settings.max_inputs == default
    with pytest.raises(SettingsError, match=c.ENV_MAX_INPUTS):
        cls.from_env({**off, c.ENV_MAX_INPUTS: too_many})


def test_every_variable_name_is_defined_once():
    # GIVEN the names module and the table specs, the only places a MAAS_* name is written
    known = {v for k, v in vars(c).items() if k.startswith("ENV_")} | {t.env_var for t in ALL_TABLES}
    classes = [
        EmbeddingsSettings,
        RerankSettings,
        ClassifySettings,
        ImageClassifySettings,
        HeavyProxySettings,
        AuthorizerSettings,
        UsageSettings,
        JobsSettings,
        BatchSettings,
        EndpointSettings,
    ]

    # WHEN every settings class's variables are collected
    used = frozenset().union(*(cls.env_names() for cls in classes))

    # THEN each one is a name defined there, and no two constants spell the same variable
    assert used <= known
    constants = [v for k, v in vars(c).items() if k.startswith("ENV_")]
    assert len(constants) == len(set(constants))


def test_forwarded_heavy_models_are_parsed_from_json():
    # GIVEN MAAS_HEAVY_MODELS as the stack writes it
    environ = {c.ENV_HEAVY_MODELS: '{"bge-m3": {"endpoint": "maas-heavy", "component": "bge"}}'}

    # WHEN it is read, and when it is unset or empty
    models = HeavyModelsEnv.from_env(environ).heavy_models

    # THEN each model names its endpoint (and component); no variable means no forwarding
    assert (models["bge-m3"].endpoint, models["bge-m3"].component) == ("maas-heavy", "bge")
    assert HeavyModelsEnv.from_env({}).heavy_models is None
    assert HeavyModelsEnv.from_env({c.ENV_HEAVY_MODELS: ""}).heavy_models is None


@pytest.mark.parametrize("raw", ['["not", "a", "map"]', '{"m": 3}', '{"m": {}}', "{not json"])
def test_a_malformed_heavy_models_variable_is_named(raw):
    # GIVEN a value that is not a map of model -> {"endpoint": ...}
    # WHEN it is read
    # THEN the error names the variable
    with pytest.raises(SettingsError, match=c.ENV_HEAVY_MODELS):
        HeavyModelsEnv.from_env({c.ENV_HEAVY_MODELS: raw})
