"""Layers and models: the runtime layer (one per architecture), a layer per Lambda-served model package, and
the upload of S3-served packages into the model bucket."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.assets import AssetBuilder
from infra.config import Config, ModelConfig
from infra.functions import ARCHITECTURES, Layer, python_runtime
from maas.inference.catalog import default_catalog

LAYER_MODELS_ROOT = (
    "/opt/models"  # a model layer's models/<name> appears here (maas.settings.names.DEFAULT_MODEL_SOURCE)
)
MODEL_BUCKET_PREFIX = "models"


class ModelLayers(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, assets: AssetBuilder, model_bucket: s3.IBucket):
        super().__init__(scope, id)
        self.config = config
        self.model_bucket = model_bucket
        runtime = python_runtime(config.python)
        self.runtime: dict[str, Layer] = {
            arch: self._library(assets, "runtime", arch, "maas function runtime") for arch in config.architectures
        }
        # Pillow for the image function only (layers/images): the text functions do not carry it.
        self.images: dict[str, Layer] = {}
        if any(m.task == "image-classify" for m in config.lambda_models):
            arch = config.task_function("image-classify").architecture
            self.images[arch] = self._library(assets, "images", arch, "maas image decoding")

        self.models: dict[str, Layer] = {}
        self.deployments: dict[str, s3deploy.BucketDeployment] = {}
        catalog = default_catalog()
        for model in config.lambda_models:
            entry = catalog.resolve(f"{model.name}@{model.version}")
            command = entry.build if entry is not None else None  # e.g. `maas models train-classifier`
            if model.runtime == "layer":
                staged = assets.model_layer(model.package_name, command)
                version = lambda_.LayerVersion(
                    self,
                    f"Model-{model.package_name}",
                    code=lambda_.Code.from_asset(str(staged.path)),
                    compatible_runtimes=[runtime],
                    description=f"model package {model.package_name} v{model.version} at {self.model_source(model)}",
                )
                self.models[model.package_name] = Layer(f"model layer ({model.package_name})", version, staged)
            else:
                staged = assets.model_package(model.package_name, command)
                self.deployments[model.package_name] = s3deploy.BucketDeployment(
                    self,
                    f"Upload-{model.package_name}",
                    sources=[s3deploy.Source.asset(str(staged.path))],
                    destination_bucket=model_bucket,
                    destination_key_prefix=self.model_key(model),
                    prune=False,
                    retain_on_delete=True,
                    memory_limit=512,
                )

    def _library(self, assets: AssetBuilder, layer: str, arch: str, what: str) -> Layer:
        """A library layer (layers/<layer>, built by `python -m maas.tools.layers build-runtime --layer <layer>`)."""
        python = self.config.python
        staged = assets.runtime_layer(arch, python, layer)
        version = lambda_.LayerVersion(
            self,
            f"{layer.capitalize()}-{arch}",
            code=lambda_.Code.from_asset(str(staged.path)),
            compatible_runtimes=[python_runtime(python)],
            compatible_architectures=[ARCHITECTURES[arch]],
            description=f"{what} (layers/{layer}) for {arch}, Python {python}",
        )
        return Layer(f"{layer} layer ({arch})", version, staged)

    def model_key(self, model: ModelConfig) -> str:
        return f"{MODEL_BUCKET_PREFIX}/{model.name}/{model.version}"

    def model_source(self, model: ModelConfig) -> str:
        """The function's MAAS_MODEL_SOURCE for a Lambda-served model."""
        if model.runtime == "layer":
            return f"{LAYER_MODELS_ROOT}/{model.package_name}"
        return f"s3://{self.model_bucket.bucket_name}/{self.model_key(model)}"

    def layers_for(self, arch: str, *models: ModelConfig | None) -> list[Layer]:
        """The runtime layer and the layer of each layer-served model (classify carries two)."""
        layers = [self.runtime[arch]]
        if any(m is not None and m.task == "image-classify" for m in models):
            layers.append(self.images[arch])
        for model in models:
            if model is not None and model.package_name in self.models:
                layers.append(self.models[model.package_name])
        return layers

    def bind(self, function, model: ModelConfig) -> None:
        """Let a function read the model it serves from S3, after the upload finished."""
        if model.package_name in self.deployments:
            self.model_bucket.grant_read(function.role, f"{self.model_key(model)}/*")
            function.function.node.add_dependency(self.deployments[model.package_name])
