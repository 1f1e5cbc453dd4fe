"""Classification logic: load the classifiers and the embedding model once per container, route a request
to a trained classifier or to zero-shot, validate limits, shape the Hugging Face response.

Routing rule: a request with `parameters.candidate_labels` is zero-shot and runs on the embedding model
(`model` omitted or naming it); a request without them runs a trained classifier (`model` omitted means the
first of MAAS_CLASSIFIER_SOURCES). Naming a classifier with candidate_labels, or the embedding model
without them, is a 400 that says so; a model served nowhere here is a 404.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import numpy as np

from maas.errors import InvalidRequest, NotFound
from maas.inference.catalog import default_catalog
from maas.inference.classifiers import DEFAULT_HYPOTHESIS_TEMPLATE, TextClassifier, ranked, zero_shot_scores
from maas.inference.embedder import TextEmbedder
from maas.inference.package import Manifest
from maas.inference.slot import ModelSlot
from maas.inference.validation import check_token_budget, text_list, tokenize_checked
from maas.schemas.classify import ClassifyRequest
from maas.settings import names as c
from maas.settings.functions import ClassifySettings
from maas.tasks.embeddings import Reserve

HYPOTHESIS_CACHE_SIZE = 4096  # zero-shot hypothesis vectors kept per container (384 floats each: ~6 MB at most)


@dataclass
class Classification:
    body: list  # per input, [{label, score}] sorted by score; zero-shot on one string: that one flat list
    units: int  # billable: tokens the model processed (inputs, plus the hypotheses for zero-shot)
    manifest: Manifest  # what is billed (task "classify")


class ClassifyService:
    def __init__(self, settings: ClassifySettings, logger: logging.Logger | None = None, s3_client=None):
        self.settings = settings
        self.logger = logger or logging.getLogger(__name__)
        sized = dict(threads=settings.threads, max_batch=settings.batch_size, max_batch_tokens=settings.batch_tokens)
        cache = settings.model_cache_dir
        self.classifiers = [
            ModelSlot(source, partial(TextClassifier, **sized), cache, self.logger, s3_client)
            for source in settings.classifier_source_list()
        ]
        self.embedding = ModelSlot(settings.model_source, partial(TextEmbedder, **sized), cache, self.logger, s3_client)
        self._hypothesis_cache: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()

    def _find(self, model: str | None, zero_shot: bool) -> ModelSlot:
        if model is None:
            return self.embedding if zero_shot else self.classifiers[0]
        wanted = model.lower()
        if wanted in self.embedding.ids():
            if not zero_shot:
                raise InvalidRequest(
                    f"'{model}' is an embedding model: send 'parameters.candidate_labels' for zero-shot "
                    "classification, or name a classifier.",
                    param="parameters.candidate_labels",
                )
            return self.embedding
        matches = [slot for slot in self.classifiers if wanted in slot.ids()]
        if len(matches) > 1:  # several versions of one classifier: the catalog says which one the id means
            entry = default_catalog().resolve(model)
            matches = [
                slot
                for slot in matches
                if entry is not None
                and slot.manifest is not None
                and (slot.manifest.name, slot.manifest.version) == (entry.name, entry.version)
            ]
        if matches:
            if zero_shot:
                raise InvalidRequest(
                    f"'{model}' is a trained classifier with fixed labels; 'parameters.candidate_labels' "
                    f"(zero-shot) runs on the embedding model '{self.embedding.name}'.",
                    code="unsupported_parameter",
                    param="parameters.candidate_labels",
                )
            return matches[0]
        raise NotFound(
            f"The model '{model}' does not exist or is not served by /v1/classify.",
            code="model_not_found",
            param="model",
        )

    @staticmethod
    def _candidates(raw: list[str] | str) -> list[str]:
        labels = [s.strip() for s in raw.split(",")] if isinstance(raw, str) else [s.strip() for s in raw]
        param = "parameters.candidate_labels"
        if not labels or not any(labels):
            raise InvalidRequest("'parameters.candidate_labels' is empty; send at least one label.", param=param)
        if len(labels) > c.MAX_CANDIDATE_LABELS:
            raise InvalidRequest(
                f"'parameters.candidate_labels' has {len(labels)} labels; the maximum is {c.MAX_CANDIDATE_LABELS}.",
                param=param,
            )
        seen: dict[str, int] = {}
        for i, label in enumerate(labels):
            if not label:
                raise InvalidRequest(f"'parameters.candidate_labels[{i}]' is empty.", param=param)
            if len(label) > c.MAX_LABEL_CHARS:
                raise InvalidRequest(
                    f"'parameters.candidate_labels[{i}]' is longer than {c.MAX_LABEL_CHARS} characters.", param=param
                )
            key = label.casefold()
            if key in seen:
                raise InvalidRequest(
                    f"'parameters.candidate_labels' repeats {label!r} (items {seen[key]} and {i}).", param=param
                )
            seen[key] = i
        return labels

    def _hypotheses(self, runtime: TextEmbedder, hypotheses: list[str]) -> tuple[np.ndarray, int]:
        """Embeddings and total tokens of the hypotheses. Clients repeat the same labels call after call, so
        each hypothesis's vector is kept (LRU, HYPOTHESIS_CACHE_SIZE); its tokens are billed every time anyway,
        so a bill never depends on what another request left in the cache."""
        missing = [h for h in dict.fromkeys(hypotheses) if h not in self._hypothesis_cache]
        if missing:
            result = runtime.embed(missing, runtime.tokenize(missing))
            for h, vector, tokens in zip(missing, result.vectors, result.token_counts, strict=True):
                self._hypothesis_cache[h] = (vector, int(tokens))
        for h in hypotheses:
            self._hypothesis_cache.move_to_end(h)
        while len(self._hypothesis_cache) > HYPOTHESIS_CACHE_SIZE:
            self._hypothesis_cache.popitem(last=False)
        entries = [self._hypothesis_cache[h] for h in hypotheses]
        return np.stack([vector for vector, _ in entries]), sum(tokens for _, tokens in entries)

    def classify(self, request: ClassifyRequest, reserve: Reserve | None = None) -> Classification:
        """Validate, run the classifier or zero-shot scoring, and return the response body and billable units.
        ``reserve(units)``: called once the billable units are known, before the model runs (the quota check)."""
        params = request.parameters
        top_k = params.top_k if params else None
        if top_k is not None and top_k < 1:
            raise InvalidRequest(f"'parameters.top_k' must be at least 1, got {top_k}.", param="parameters.top_k")
        zero_shot = params is not None and params.candidate_labels is not None
        for name in ("hypothesis_template", "multi_label"):
            if not zero_shot and params is not None and getattr(params, name) is not None:
                raise InvalidRequest(
                    f"'parameters.{name}' needs 'parameters.candidate_labels' (zero-shot).",
                    param=f"parameters.{name}",
                )
        slot = self._find(request.model, zero_shot)
        texts = text_list(request.inputs, "inputs", self.settings.max_inputs)
        labels = self._candidates(params.candidate_labels) if zero_shot else None
        template = (params.hypothesis_template if zero_shot else None) or DEFAULT_HYPOTHESIS_TEMPLATE
        if zero_shot and "{}" not in template:
            raise InvalidRequest(
                "'parameters.hypothesis_template' must contain '{}' where the label goes, e.g. "
                f"{DEFAULT_HYPOTHESIS_TEMPLATE!r}.",
                param="parameters.hypothesis_template",
            )
        runtime = slot.ready()
        encodings = tokenize_checked(runtime, texts, request.truncate, "inputs")
        hypotheses = [template.replace("{}", label, 1) for label in labels] if zero_shot else []
        hyp_tokens = sum(len(e.ids) for e in runtime.tokenize(hypotheses)) if hypotheses else 0
        tokens = sum(len(e.ids) for e in encodings) + hyp_tokens
        counted = f"{len(texts)} inputs" + (f" and {len(hypotheses)} label hypotheses" if hypotheses else "")
        check_token_budget(tokens, self.settings.request_token_budget, counted)
        if reserve is not None:
            reserve(tokens)
        if zero_shot:
            hyp_vectors, hyp_tokens = self._hypotheses(runtime, hypotheses)
            result = runtime.embed(texts, encodings)
            probabilities = zero_shot_scores(result.vectors, hyp_vectors, bool(params.multi_label))
            units = int(sum(result.token_counts) + hyp_tokens)
            manifest = slot.manifest.model_copy(update={"task": "classify"})
        else:
            result = runtime.classify(texts, encodings)
            probabilities, labels, units = result.vectors, runtime.labels, int(sum(result.token_counts))
            manifest = slot.manifest
        body = ranked(labels, np.asarray(probabilities), top_k)
        # Hugging Face's zero-shot answers a single text with one flat list (its text-classification keeps the
        # list of lists); InferenceClient.zero_shot_classification parses exactly that.
        return Classification(body[0] if zero_shot and isinstance(request.inputs, str) else body, units, manifest)
