"""Image classification (POST /v1/images/classify, the Hugging Face image-classification shape).

The package's manifest says everything the runtime needs: its labels, its input and output tensors, and its
preprocessing (`image`, read by maas.inference.images). Scores are the graph's own softmax probabilities.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maas.errors import InvalidRequest
from maas.inference.catalog import resolve_served
from maas.inference.classifiers import ranked
from maas.inference.package import Manifest
from maas.inference.slot import ModelSlot
from maas.schemas.images import ImageClassifyRequest
from maas.settings import names as c
from maas.settings.functions import ImageClassifySettings
from maas.tasks.embeddings import Reserve

if TYPE_CHECKING:  # Pillow loads with maas.inference.images: only when the service is built
    from maas.inference.images import ImageClassifier


@dataclass
class ImageClassification:
    body: list  # one image: [{label, score}]; a list of images: one such list per image
    units: int  # billable: images


class ImageClassifyService:
    """The container's image classifier (loaded and verified once; 503 until it loads) and the request rules."""

    def __init__(self, settings: ImageClassifySettings, logger: logging.Logger | None = None, s3_client=None):
        from maas.inference.images import ImageClassifier, ImageDecoder

        self.settings = settings
        self.logger = logger or logging.getLogger(__name__)
        self.decoder = ImageDecoder(settings.max_image_pixels)

        def build(folder: Path, manifest: Manifest) -> ImageClassifier:
            return ImageClassifier(folder, manifest, threads=settings.threads)

        self.slot = ModelSlot(settings.model_source, build, settings.model_cache_dir, self.logger, s3_client)

    @property
    def manifest(self) -> Manifest | None:
        """The served package, as billing records it (task image-classify, unit images)."""
        return self.slot.manifest

    def from_json(self, request: ImageClassifyRequest, reserve: Reserve | None = None) -> ImageClassification:
        from maas.inference.images import decode_base64

        texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        top_k = request.parameters.top_k if request.parameters else None
        self._check(len(texts), top_k, request.model, "parameters.top_k")
        where = ["inputs"] if isinstance(request.inputs, str) else [f"inputs[{i}]" for i in range(len(texts))]
        blobs = [decode_base64(text, w) for text, w in zip(texts, where, strict=True)]
        return self._classify(blobs, where, top_k, single=isinstance(request.inputs, str), reserve=reserve)

    def from_bytes(
        self, data: bytes, top_k: int | None, model: str | None, reserve: Reserve | None = None
    ) -> ImageClassification:
        """A raw image body (its top_k and model from the query string)."""
        self._check(1, top_k, model, "top_k")
        return self._classify([data], ["body"], top_k, single=True, reserve=reserve)

    def _check(self, count: int, top_k: int | None, model: str | None, top_k_param: str) -> None:
        """Refuse before any decoding: the model id, the number of images, top_k."""
        self.slot.ready()
        resolve_served(model, self.slot.manifest)
        if count == 0:
            raise InvalidRequest("'inputs' is an empty list; send at least one image.", param="inputs")
        if count > self.settings.max_inputs:
            raise InvalidRequest(
                f"'inputs' has {count} images; the maximum per request is {self.settings.max_inputs}.",
                code="too_many_inputs",
                param="inputs",
            )
        if top_k is not None and top_k < 1:
            raise InvalidRequest(f"'{top_k_param}' must be at least 1, got {top_k}.", param=top_k_param)

    def _classify(
        self, blobs: list[bytes], where: list[str], top_k: int | None, single: bool, reserve: Reserve | None = None
    ) -> ImageClassification:
        """Decode, preprocess and classify. ``reserve(units)``: called once the billable units are known, before the
        model runs (the quota check)."""
        from maas.inference.images import preprocess

        runtime: ImageClassifier = self.slot.ready()
        if reserve is not None:
            reserve(len(blobs))  # billed per image: known before any decoding
        spec = runtime.preprocessing
        batch = np.stack([preprocess(self.decoder.decode(data, w), spec) for data, w in zip(blobs, where, strict=True)])
        probabilities = runtime.classify(batch)
        body = ranked(runtime.labels, probabilities, top_k or c.DEFAULT_IMAGE_TOP_K)
        return ImageClassification(body[0] if single else body, len(blobs))
