"""Image classification (POST /v1/images/classify, the Hugging Face image-classification shape).

The package's manifest says everything the runtime needs: its labels, its input and output tensors, and its
preprocessing (`image`, read by maas.inference.images). Scores are the graph's own softmax probabilities.

Explanations (`explain`): the top label's probability as Shapley values over a grid of cells of the model's input
picture, a masked cell painted the background grey (maas.inference.explain); each image is run once per coalition
of its cells, and every such evaluation is billed as an image.
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
from maas.inference.explain import check_evaluations, explain_outputs, image_work, plan
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
    units: int  # billable: images the model processed (images x evaluations when explained)


@dataclass(frozen=True)
class ExplainImages:
    """What an explained request asks for: each image's budget of evaluations and its grid of cells."""

    evaluations: int = c.DEFAULT_IMAGE_EXPLAIN_EVALUATIONS
    grid: int = c.DEFAULT_EXPLAIN_GRID


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
        params = request.parameters
        top_k = params.top_k if params else None
        explain = self.explain_options(
            params and params.explain,
            params and params.explain_evaluations,
            params and params.explain_grid,
            "parameters.",
        )
        self._check(len(texts), top_k, request.model, "parameters.top_k", explain, "parameters.")
        where = ["inputs"] if isinstance(request.inputs, str) else [f"inputs[{i}]" for i in range(len(texts))]
        blobs = [decode_base64(text, w) for text, w in zip(texts, where, strict=True)]
        return self._classify(
            blobs, where, top_k, single=isinstance(request.inputs, str), reserve=reserve, explain=explain
        )

    def from_bytes(
        self,
        data: bytes,
        top_k: int | None,
        model: str | None,
        reserve: Reserve | None = None,
        explain: ExplainImages | None = None,
    ) -> ImageClassification:
        """A raw image body (its top_k, model and explain options from the query string)."""
        self._check(1, top_k, model, "top_k", explain, "")
        return self._classify([data], ["body"], top_k, single=True, reserve=reserve, explain=explain)

    @staticmethod
    def explain_options(
        explain: bool | None, evaluations: int | None, grid: int | None, prefix: str
    ) -> ExplainImages | None:
        """The explain options of a request (``prefix``: where its parameters live, for the messages)."""
        for name, value in (("explain_evaluations", evaluations), ("explain_grid", grid)):
            if value is not None and not explain:
                raise InvalidRequest(f"'{prefix}{name}' needs '{prefix}explain': true.", param=f"{prefix}{name}")
        if not explain:
            return None
        return ExplainImages(evaluations or c.DEFAULT_IMAGE_EXPLAIN_EVALUATIONS, grid or c.DEFAULT_EXPLAIN_GRID)

    def _check(
        self,
        count: int,
        top_k: int | None,
        model: str | None,
        top_k_param: str,
        explain: ExplainImages | None = None,
        prefix: str = "",
    ) -> None:
        """Refuse before any decoding: the model id, the number of images, top_k, the explanation's cost."""
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
        if explain is not None:
            spec = self.slot.manifest.image
            most = min(c.MAX_EXPLAIN_GRID, spec.width, spec.height)
            if not 2 <= explain.grid <= most:
                raise InvalidRequest(
                    f"'{prefix}explain_grid' must be between 2 and {most} (cells per side), got {explain.grid}.",
                    param=f"{prefix}explain_grid",
                )
            if explain.evaluations < 2:
                raise InvalidRequest(
                    f"'{prefix}explain_evaluations' must be at least 2, got {explain.evaluations}.",
                    param=f"{prefix}explain_evaluations",
                )
            cap, param = self.settings.max_explain_evaluations, f"{prefix}explain_evaluations"
            check_evaluations(
                explain.evaluations, cap, f"'{param}' = {explain.evaluations} per image", param, "Lower it."
            )
            hint = f"Send fewer images, a lower '{param}' or a smaller '{prefix}explain_grid'."
            check_evaluations(count * self.evaluations(explain), cap, "Explaining these images", param, hint)

    @staticmethod
    def evaluations(explain: ExplainImages) -> int:
        """Model evaluations one image's explanation takes (the same for every image of a request)."""
        return plan(explain.grid * explain.grid, explain.evaluations).evaluations

    def _classify(
        self,
        blobs: list[bytes],
        where: list[str],
        top_k: int | None,
        single: bool,
        reserve: Reserve | None = None,
        explain: ExplainImages | None = None,
    ) -> ImageClassification:
        """Decode, preprocess and classify. ``reserve(units)``: called once the billable units are known, before the
        model runs (the quota check)."""
        from maas.inference.images import preprocess

        runtime: ImageClassifier = self.slot.ready()
        units = len(blobs) * (self.evaluations(explain) if explain else 1)
        if reserve is not None:
            reserve(units)  # billed per image the model processes: known before any decoding
        spec = runtime.preprocessing
        batch = np.stack([preprocess(self.decoder.decode(data, w), spec) for data, w in zip(blobs, where, strict=True)])
        if explain:
            probabilities, explanations = explain_images(runtime, batch, explain)
        else:
            probabilities = runtime.classify(batch)
        body = ranked(runtime.labels, probabilities, top_k or c.DEFAULT_IMAGE_TOP_K)
        if explain:
            for row, explanation in zip(body, explanations, strict=True):
                row[0]["explanation"] = explanation
        return ImageClassification(body[0] if single else body, units)


def explain_images(runtime: ImageClassifier, batch: np.ndarray, explain: ExplainImages) -> tuple[np.ndarray, list]:
    """Each preprocessed image's top label explained over a grid of cells, every image's masked copies packed into
    as few session.run calls as possible; returns the images' probabilities (the unmasked copies') and the bodies.
    The copies are built at once: the per-request cap bounds them (16,384 x 64 floats, 4 MB, for digits-cnn; a
    model with 224 x 224 RGB inputs needs a far lower MAAS_MAX_EXPLAIN_EVALUATIONS)."""
    from maas.inference.images import blank

    spec, probabilities, explanations = runtime.preprocessing, [], []
    works = [
        image_work(image, blank(spec), explain.grid, spec.layout == "NCHW", explain.evaluations) for image in batch
    ]
    outputs_all, _ = runtime.classify_rows(np.concatenate([work.rows() for work in works]))
    ends = np.cumsum([work.plan.evaluations for work in works])
    for work, outputs in zip(works, np.split(outputs_all, ends[:-1]), strict=True):
        _, values, common = explain_outputs(work.plan, outputs)
        probabilities.append(outputs[0])
        cells = np.round(values.reshape(explain.grid, explain.grid), 6).tolist()
        explanations.append({**common, "grid": explain.grid, "size": [spec.height, spec.width], "cells": cells})
    return np.stack(probabilities), explanations
