"""Shared fixtures: the real built model package, sample events, a Lambda context, the handler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maas.settings.names import ENV_MODEL_SOURCE
from maas.tools import paths
from maas.tools.local.functions import LambdaContext, load_handler

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The int8 MiniLM package, built by the project's own pipeline if it is not there yet."""
    folder = paths.model_dir()
    if not (folder / "manifest.json").is_file():
        from maas.tools.build.minilm import build

        build(folder, quiet=True)
    return folder


@pytest.fixture(scope="session")
def embedder(model_dir):
    """The embedding package as the batch workers load it (read-only: one per session)."""
    from maas.inference.embedder import TextEmbedder
    from maas.inference.package import read_manifest

    return TextEmbedder(model_dir, read_manifest(model_dir), threads=2)


@pytest.fixture(scope="session")
def fp32_model_dir() -> Path:
    folder = paths.model_dir("all-minilm-l6-v2-fp32")
    if not (folder / "manifest.json").is_file():
        from maas.tools.build.minilm import build

        build(folder, quiet=True, precision="fp32", compare=False)
    return folder


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    """The digits-cnn image package, built by `maas models build digits-cnn`'s pipeline when missing or stale."""
    from maas.tools.build.digits import ensure_built

    return ensure_built(paths.model_dir("digits-cnn"))


@pytest.fixture(scope="session")
def aws():
    """The local AWS emulator (moto server on 127.0.0.1) with every maas table created."""
    from maas.tools.local.emulator import AwsEmulator

    emulator = AwsEmulator()
    emulator.start()
    emulator.create_tables()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads((DATA / "golden_minilm.json").read_text())


def load_event(name: str) -> dict:
    """One loader for the sample events in events/ (SAM's shapes), fresh copy per call."""
    return json.loads((paths.EVENTS_DIR / name).read_text())


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext(function_name="maas-embeddings-test")


def function_env(aws, model_dir) -> dict[str, str]:
    """What the stack gives a task function, pointed at the emulator and the built package."""
    from maas.tools.local.emulator import aws_env, table_env

    return {**aws_env(aws.url), **table_env(), ENV_MODEL_SOURCE: str(model_dir)}


@pytest.fixture(scope="session")
def embeddings_handler(aws, model_dir):
    """functions/embeddings/app.py imported the way Lambda does: metered against the emulator."""
    return load_handler("embeddings", function_env(aws, model_dir))


@pytest.fixture(scope="session")
def usage_stream(aws):
    """The usage table's stream delivered to the aggregator, as the deployed event source mapping does within
    seconds: ``usage_stream.drain()`` before reading aggregates (events themselves are written at once)."""
    from maas.metering.aggregator import Aggregator
    from maas.metering.store import Meter
    from maas.tables import USAGE
    from maas.tools.local.streams import StreamDriver

    ddb = aws.client("dynamodb")
    return StreamDriver(ddb, aws.client("dynamodbstreams"), USAGE.local_name, Aggregator(Meter(ddb, USAGE.local_name)))
