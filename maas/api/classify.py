"""Routes of the classify function: POST /v1/classify (Hugging Face text-classification shape), metered.

Request: `{"inputs": str | [str], "parameters": {"top_k": n, "candidate_labels": [...] | "a,b",
"hypothesis_template": "This text is about {}."}, "model": id, "truncate": true}`; `options` (HF's
wait_for_model/use_cache) is accepted and ignored. Response: per input, in input order, a list of
`{"label", "score"}` sorted by score, every label unless `top_k` (a single string input still gets a list
of one list, as the HF Inference API answers and huggingface_hub's InferenceClient expects; zero-shot answers a
single string with one flat list, as HF's zero-shot task does).

- Trained classifier (no candidate_labels): the graph's softmax probabilities. `model` omitted means the
  function's first classifier (ticket-intents); `name`, `name@version`, `name@latest` resolve, case-insensitive.
- Zero-shot (candidate_labels given): runs on the embedding model (`model` omitted or naming it); each label
  is put into the hypothesis template, and scores are softmax(cosine(text, hypothesis) / 0.05)
  (maas.inference.classifiers.ZERO_SHOT_TEMPERATURE) over the labels; `parameters.multi_label: true` scores each
  label on its own instead (a sigmoid of its cosine, maas.inference.classifiers.MULTI_LABEL_CENTER). On the
  ticket-intents held-out set it reaches ~0.76-0.79 accuracy against 0.96 for the trained classifier: train one
  when the labels are fixed.
- Naming a classifier with candidate_labels, or the embedding model without them, is a 400; a model that is
  served nowhere is a 404; a classifier that failed to load is a 503 (retried every 30 s).
- Explanations (`parameters.explain: true`): each input's first label carries `explanation`: Shapley values of
  its probability per word (whitespace-delimited, with character offsets), `base_value` (every word [MASK]ed)
  and `value` (the score), additive; `parameters.explain_evaluations` (default 256) bounds each input's model
  evaluations (exact up to 8 words, antithetic permutation sampling above).
- Billed units: input tokens, [CLS]/[SEP] included, truncated at 256 per text; zero-shot also bills the
  hypotheses' tokens (their vectors are cached per container, their tokens billed on every call). An explained
  input bills its tokens once per model evaluation; a request over MAAS_MAX_EXPLAIN_EVALUATIONS (default 2048)
  evaluations is a 400 `too_many_evaluations`, refused before anything runs.
- Limits: 256 inputs (MAAS_MAX_INPUTS), 32 candidate labels of at most 200 characters, unique
  case-insensitively; the body limit of the embeddings function (MAAS_MAX_BODY_BYTES).
"""

from __future__ import annotations

import logging

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from maas.api import limits
from maas.api.metered import json_parser, metered
from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import create_resolver, error_docs, register_post
from maas.metering.charge import Billing
from maas.schemas.classify import ClassifyRequest, ClassifyResponse
from maas.tasks.classify import ClassifyService

CLASSIFY_PATH = "/v1/classify"
ERRORS = error_docs(
    (400, "Invalid request"),
    (401, "Missing API key"),
    (404, "Unknown model"),
    (413, "Body too large"),
    (429, "Quota exceeded"),
    (503, "Model unavailable"),
)


class ClassifyApi:
    """The function's API: call it with an API Gateway REST event and a Lambda context."""

    def __init__(self, service: ClassifyService, billing: Billing, logger: logging.Logger):
        self.service, self.billing, self.logger = service, billing, logger
        self.parse = json_parser(ClassifyRequest, service.settings.max_body_bytes)
        self.app = self._resolver()

    def __call__(self, event: dict, context) -> dict:
        if event.get("httpMethod") == "POST" and (event.get("resource") or event.get("path")) == CLASSIFY_PATH:
            return self.post_classify(event)
        return self.app.resolve(event, context)

    def run(self, request: ClassifyRequest, reserve) -> tuple[list, int, object]:
        """The route's answer to a parsed request: (body, billable units, what is billed). Batch lines too."""
        result = self.service.classify(request, reserve)
        return result.body, result.units, result.manifest

    def post_classify(self, event: dict) -> dict:
        return metered(self.billing, event, self.parse, self.run, logger=self.logger, name="classify")

    def _resolver(self) -> APIGatewayRestResolver:
        app = create_resolver(self.service.settings.max_body_bytes, self.logger)

        register_post(
            app,
            CLASSIFY_PATH,
            ClassifyRequest,
            self.post_classify,
            name="classify",
            summary="Classify texts (Hugging Face text-classification; zero-shot with candidate_labels)",
            response=ClassifyResponse,
            description="Labels per input",
            errors=ERRORS,
            limits=limits.CLASSIFY,
        )

        return app


def create_app(service: ClassifyService, billing: Billing, logger: logging.Logger) -> ClassifyApi:
    return ClassifyApi(service, billing, logger)


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return ClassifyApi(DOCS_ONLY, DOCS_ONLY, DOCS_ONLY).app
