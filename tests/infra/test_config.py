"""The one typed configuration: the file, context overrides, and refusals that name what is wrong."""

from __future__ import annotations

import json

import pytest

from infra.config import ConfigError, load_config, load_plans
from maas.tenancy.plans import load_plans as runtime_plans


def write(tmp_path, data: dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return str(path)


MINIMAL = {"models": [{"name": "m", "task": "embeddings"}]}


def test_default_file_has_a_layer_model_and_a_gpu_model():
    config = load_config()
    assert [(m.task, m.runtime) for m in config.models] == [
        ("embeddings", "layer"),
        ("embeddings", "layer"),
        ("embeddings", "layer"),
        ("classify", "layer"),
        ("image-classify", "layer"),
        ("embeddings", "sagemaker"),
    ]
    assert config.embedding_model.name == "all-minilm-l6-v2"
    # the tiers ride with the embeddings model: one function serves them all, `model` picks the tier
    assert [m.name for m in config.versions(config.embedding_model)] == [
        "all-minilm-l6-v2",
        "all-minilm-l6-v2-fast",
        "all-minilm-l6-v2-static",
    ]
    assert [m.name for m in config.classifier_models] == ["ticket-intents"]
    # rerank and v2 run the embedding model, so they take its function settings
    assert config.task_function("rerank") == config.task_function("v2") == config.task_function("embeddings")
    assert config.sagemaker_models[0].sagemaker.instance_type == "ml.g5.xlarge"
    assert config.sagemaker_models[0].sagemaker.min_capacity == 0
    assert config.task_function("embeddings").memory_mb == 1024
    assert config.task_function("image-classify").memory_mb == 512
    assert config.architectures == ("x86_64",)


def test_context_keys_override_the_file(tmp_path):
    config = load_config(
        {
            "maas:config": write(
                tmp_path,
                {
                    **MINIMAL,
                    "models": [*MINIMAL["models"], {"name": "g", "task": "embeddings", "runtime": "sagemaker"}],
                },
            ),
            "maas:region": "eu-central-1",
            "maas:memory": "2048",
            "maas:architecture": "arm64",
            "maas:gpuInstanceType": "ml.g6.2xlarge",
            "maas:gpuMinCapacity": "1",
            "maas:plans": "free,enterprise",
            "maas:requireBuiltAssets": "true",
        }
    )
    assert config.region == "eu-central-1"
    assert config.task_function("embeddings").memory_mb == 2048
    assert config.architectures == ("arm64",)
    assert config.sagemaker_models[0].sagemaker.instance_type == "ml.g6.2xlarge"
    assert config.sagemaker_models[0].sagemaker.min_capacity == 1
    assert config.plans == ("free", "enterprise")
    assert config.require_built_assets is True


def test_models_context_selects_a_subset(tmp_path):
    config = load_config({"maas:models": "all-minilm-l6-v2"})
    assert [m.name for m in config.models] == ["all-minilm-l6-v2"]
    with pytest.raises(ConfigError, match="unknown models"):
        load_config({"maas:models": "nope"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": []}, "at least one model"),
        ({"models": [{"name": "Bad Name", "task": "embeddings"}]}, "models.0.name"),
        (
            {**MINIMAL, "tasks": {"embeddings": {"snap_start": True, "provisioned_concurrency": 1}}},
            "cannot be combined",
        ),
        ({**MINIMAL, "tasks": {"embeddings": {"memory_mb": 64}}}, "memory_mb"),
        (
            {
                "models": [
                    {"name": "m", "task": "embeddings", "runtime": "sagemaker", "sagemaker": {"instance_type": "g5"}}
                ]
            },
            "ml.",
        ),
        ({"models": [{"name": "m", "task": "embeddings", "sagemaker": {}}]}, "need runtime 'sagemaker'"),
        ({**MINIMAL, "surprise": 1}, "surprise"),
        ({"models": [{"name": "a", "task": "rerank"}, {"name": "b", "task": "rerank"}]}, "one Lambda-served"),
        ({"models": [{"name": "m", "task": "embeddings"}, {"name": "m", "task": "embeddings"}]}, "versions must be"),
        (
            {"models": [{"name": "m", "task": "embeddings"}, {"name": "m", "task": "embeddings", "version": "2"}]},
            "its own package folder",
        ),
    ],
)
def test_invalid_configurations_name_the_problem(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"maas:config": write(tmp_path, data)})


def test_bad_context_values_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="maas:memory"):
        load_config({"maas:config": write(tmp_path, MINIMAL), "maas:memory": "lots"})
    with pytest.raises(ConfigError, match="true or false"):
        load_config({"maas:config": write(tmp_path, MINIMAL), "maas:requireBuiltAssets": "perhaps"})
    with pytest.raises(ConfigError, match="not found"):
        load_config({"maas:config": str(tmp_path / "absent.json")})


def test_plans_are_the_runtime_plans():
    assert load_plans() == tuple(runtime_plans().values())
    assert [p.name for p in load_plans(only=("pro",))] == ["pro"]
    with pytest.raises(ConfigError, match="unknown plans"):
        load_plans(only=("gold",))


def test_classify_needs_the_embeddings_model_for_zero_shot(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"models": [{"name": "ticket-intents", "task": "classify"}]}))
    with pytest.raises(ConfigError, match="classify needs a Lambda-served embeddings model"):
        load_config({"maas:config": str(path)})


def test_versions_of_one_model_are_served_together_latest_first(tmp_path):
    data = {
        "models": [
            {"name": "m", "task": "embeddings", "version": "2", "package": "m-v2"},
            {"name": "m", "task": "embeddings", "version": "1"},
        ]
    }
    config = load_config({"maas:config": write(tmp_path, data)})
    assert config.embedding_model.version == "2"
    assert [m.version for m in config.versions(config.embedding_model)] == ["2", "1"]
