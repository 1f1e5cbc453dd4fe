"""Embeddings logic: load the model once per container, resolve model ids, embed, shape the OpenAI response."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from maas.inference.catalog import default_catalog, resolve_among, resolve_served, served_id
from maas.inference.embedder import TextEmbedder, encode_vectors, sized
from maas.inference.package import Manifest
from maas.inference.slot import ModelSlot
from maas.inference.validation import check_dimensions, check_token_budget, text_list, tokenize_checked
from maas.schemas.embeddings import EmbeddingsRequest, ModelCard
from maas.settings import names as c
from maas.settings.functions import EmbeddingsSettings

# A request's quota check: called with its billable units once they are known, before the model runs; raises
# (maas.metering: 429) when they do not fit. Services take it from maas.api.metered.
Reserve = Callable[[int], None]


def input_limit(max_inputs: int, encoding_format: str) -> int:
    """Inputs per request for ``encoding_format``: float JSON vectors are ~2.4x the size of base64 ones, so fewer
    fit Lambda's 6 MB response (maas.settings.names.MAX_FLOAT_INPUTS)."""
    return min(max_inputs, c.MAX_FLOAT_INPUTS) if encoding_format == "float" else max_inputs


class EmbeddingsService:
    """Holds the container's one session, in a model slot (maas.inference.slot): a model that fails to load is
    reported as 503, and loading is retried without a restart."""

    def __init__(
        self,
        settings: EmbeddingsSettings,
        logger: logging.Logger | None = None,
        s3_client=None,
        tracer=None,
        *,
        providers: list | None = None,
        wrap=None,
    ):
        """``providers``: onnxruntime execution providers (default CPU); ``wrap(embedder)`` may put something
        in front of the loaded embedder (the heavy-model endpoint's dynamic batcher)."""
        self.settings = settings
        self.tracer = tracer
        self.logger = logger or logging.getLogger(__name__)
        self.created = int(time.time())

        def build(folder: Path, manifest: Manifest):
            embedder = TextEmbedder(folder, manifest, providers=providers, **sized(settings))
            return wrap(embedder) if wrap is not None else embedder

        # Every version this container serves, the default first: MAAS_MODEL_SOURCE may list several packages
        # (comma-separated), so an older version keeps answering `name@version` until the catalog drops it.
        self.slot = ModelSlot(
            settings.model_source, build, settings.model_cache_dir, self.logger, s3_client, order=_latest_first
        )

    @property
    def versions(self) -> list[tuple[TextEmbedder, Manifest]]:
        """(embedder, manifest) of every served version, the default first; empty until loaded."""
        return self.slot.versions

    @property
    def load_error(self) -> str | None:
        """Why the model is not loaded (also logged); None once it is."""
        return self.slot.load_error

    @property
    def embedder(self) -> TextEmbedder | None:
        """The default version's embedder (what a bare model name means); None until loaded."""
        return self.slot.runtime

    @property
    def manifest(self) -> Manifest | None:
        return self.slot.manifest

    def ready(self) -> TextEmbedder:
        """The default embedder; a 503 while the model is not loaded."""
        return self.slot.ready()

    def models(self) -> list[ModelCard]:
        """One card per served version (the default as its bare name, the others as `name@version`), then every
        other model of the catalog a caller can call (other tasks, the SageMaker-served ones), from the catalog."""
        self.ready()
        catalog = default_catalog()
        cards = []
        for _, m in self.versions:
            entry = catalog.resolve(f"{m.name}@{m.version}")
            cards.append(
                ModelCard(
                    id=served_id(m, catalog),
                    created=self.created,
                    owned_by="maas",
                    task=m.task,
                    version=m.version,
                    dimensions=m.dimensions,
                    max_input_tokens=m.max_sequence_length,
                    runtime=entry.runtime if entry is not None else None,
                    quality=measured_quality(m),
                )
            )
        served = {(m.name, m.version) for _, m in self.versions}
        for entry in catalog.entries:
            if entry.placeholder or (entry.name, entry.version) in served:
                continue
            cards.append(
                ModelCard(
                    id=entry.name if entry is catalog.latest(entry.name) else entry.id,
                    created=self.created,
                    owned_by="maas",
                    task=entry.task,
                    version=entry.version,
                    dimensions=entry.dimensions,
                    labels=list(entry.labels) or None,
                    runtime=entry.runtime,
                )
            )
        return cards

    def model(self, model_id: str) -> ModelCard:
        """The card of ``model_id`` (name, name@version, name@latest or an alias of any model GET /v1/models lists);
        a 404 naming what is served otherwise."""
        cards = self.models()
        entry = default_catalog().resolve(model_id)
        for card in cards:
            if entry is not None and (card.id.split("@")[0], card.version) == (entry.name, entry.version):
                return card
        manifest = resolve_among(model_id, [m for _, m in self.versions], param=None)  # raises the 404
        return cards[next(i for i, (_, m) in enumerate(self.versions) if m is manifest)]

    def pick(self, model_id: str | None) -> tuple[TextEmbedder, Manifest]:
        """The (embedder, manifest) a request's model id names; 404 if it is not served here."""
        if len(self.versions) == 1 or model_id is None or model_id == self.manifest.name:
            resolve_served(model_id, self.manifest)  # the default: the catalog's latest of its name
            return self.embedder, self.manifest
        manifest = resolve_among(model_id, [m for _, m in self.versions])
        return next(pair for pair in self.versions if pair[1] is manifest)

    def embed(self, request: EmbeddingsRequest) -> dict:
        """Validate limits, embed, and return the OpenAI response body as a plain dict."""
        return self.embed_billed(request)[0]

    def embed_billed(self, request: EmbeddingsRequest, reserve: Reserve | None = None) -> tuple[dict, Manifest]:
        """``embed``, and the manifest of the version that answered (what the usage event records).
        ``reserve(units)``: called once the billable units are known, before the model runs (the quota check)."""
        self.ready()
        embedder, manifest = self.pick(request.model)  # name, name@version, name@latest, catalog aliases
        check_dimensions(request.dimensions, manifest)
        texts = text_list(request.input, "input", input_limit(self.settings.max_inputs, request.encoding_format))
        encodings = tokenize_checked(embedder, texts, request.truncate, "input")
        tokens = sum(len(e.ids) for e in encodings)
        check_token_budget(tokens, self.settings.request_token_budget, f"{len(texts)} inputs")
        if reserve is not None:
            reserve(tokens)
        if self.tracer is not None and not self.tracer.disabled:  # a disabled tracer still builds entities
            with self.tracer.provider.in_subsegment("model run") as segment:
                segment.put_annotation("model", manifest.name)
                result = embedder.embed(texts, encodings)
        else:
            result = embedder.embed(texts, encodings)
        tokens = int(sum(result.token_counts))
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v}
                for i, v in enumerate(encode_vectors(result.vectors, request.encoding_format))
            ],
            # an older version answers under its pinned id, as GET /v1/models lists it
            "model": served_id(manifest),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }, manifest


def measured_quality(manifest: Manifest) -> dict | None:
    """What a served package's manifest measured: cosine to fp32 on the eval set, or its task evaluation."""
    if manifest.quality is not None:
        q = manifest.quality
        return {
            "reference": "fp32",
            "eval_set": q.eval_set,
            "n": q.n,
            "min_cosine": q.min_cosine,
            "mean_cosine": q.mean_cosine,
        }
    return manifest.evaluation


def _latest_first(loaded: list[tuple[TextEmbedder, Manifest]]) -> list[tuple[TextEmbedder, Manifest]]:
    """The catalog's latest version first (what a bare name means), then the others in the order given."""
    catalog = default_catalog()

    def is_latest(manifest: Manifest) -> bool:
        entry = catalog.resolve(manifest.name)
        return entry is not None and entry.version == manifest.version

    return sorted(loaded, key=lambda pair: not is_latest(pair[1]))
