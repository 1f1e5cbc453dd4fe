"""Embeddings logic: load the model once per container, resolve model ids, embed, shape the OpenAI response."""

from __future__ import annotations

import logging
import time

from maas.api.schemas import EmbeddingsRequest, ModelCard
from maas.catalog import resolve_served
from maas.embedder import TextEmbedder, encode_vectors
from maas.errors import InvalidRequest, ServiceUnavailable
from maas.loader import resolve_package
from maas.package import Manifest
from maas.settings import EmbeddingsSettings
from maas.validation import text_list, tokenize_checked

RETRY_LOAD_AFTER_S = 30.0


class EmbeddingsService:
    """Holds the container's one session. A model that fails to load is reported as 503, and loading
    is retried at most every RETRY_LOAD_AFTER_S seconds, so a transient failure heals without a restart."""

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
        self.providers = providers
        self.wrap = wrap
        self.tracer = tracer
        self.logger = logger or logging.getLogger(__name__)
        self.s3_client = s3_client
        self.embedder: TextEmbedder | None = None
        self.manifest: Manifest | None = None
        self.load_error: str | None = None
        self._last_attempt = 0.0
        self.created = int(time.time())
        self._load()

    def _load(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            folder, manifest = resolve_package(
                self.settings.model_source, self.settings.model_cache_dir, self.s3_client
            )
            self.embedder = TextEmbedder(
                folder,
                manifest,
                threads=self.settings.threads,
                max_batch=self.settings.batch_size,
                max_batch_tokens=self.settings.batch_tokens,
                providers=self.providers,
            )
            if self.wrap is not None:
                self.embedder = self.wrap(self.embedder)
            self.manifest, self.load_error = manifest, None
            self.logger.info("model loaded", extra={"model": manifest.name, "version": manifest.version})
        except Exception as exc:  # any failure here must become a 503 with a logged reason, not a crash loop
            self.load_error = f"{type(exc).__name__}: {exc}"
            self.logger.error(
                "model failed to load", extra={"source": self.settings.model_source, "reason": self.load_error}
            )

    def ready(self) -> TextEmbedder:
        if self.embedder is None and time.monotonic() - self._last_attempt >= RETRY_LOAD_AFTER_S:
            self._load()
        if self.embedder is None:
            raise ServiceUnavailable(
                "The embedding model is unavailable: it failed to load (the reason is logged). Retry later."
            )
        return self.embedder

    def models(self) -> list[ModelCard]:
        self.ready()
        m = self.manifest
        return [
            ModelCard(
                id=m.name,
                created=self.created,
                owned_by="maas",
                task=m.task,
                version=m.version,
                dimensions=m.dimensions,
                max_input_tokens=m.max_sequence_length,
            )
        ]

    def model(self, model_id: str) -> ModelCard:
        self.ready()
        resolve_served(model_id, self.manifest, param=None)
        return self.models()[0]

    def embed(self, request: EmbeddingsRequest) -> dict:
        """Validate limits, embed, and return the OpenAI response body as a plain dict."""
        embedder = self.ready()
        manifest = self.manifest
        resolve_served(request.model, manifest)  # name, name@version, name@latest, catalog aliases
        if request.dimensions is not None and request.dimensions != manifest.dimensions:
            raise InvalidRequest(
                f"'dimensions' is not supported: {manifest.name} returns {manifest.dimensions}-"
                "dimensional embeddings only.",
                code="unsupported_parameter",
                param="dimensions",
            )
        texts = text_list(request.input, "input", self.settings.max_inputs)
        encodings = tokenize_checked(embedder, texts, request.truncate, "input")
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
            "model": manifest.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
