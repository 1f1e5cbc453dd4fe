"""Routes of the image classification function: POST /v1/images/classify (Hugging Face image-classification).

Two request forms:
- raw bytes: the image as the body with `Content-Type: image/png` or `image/jpeg` (API Gateway delivers them
  base64-encoded, `isBase64Encoded: true`, as they are binary media types), or with no Content-Type or
  `application/octet-stream` when the bytes start like a PNG or JPEG (what huggingface_hub sends); `?top_k=` and
  `?model=` in the query string. The answer is one list of `{"label", "score"}`, best first.
- JSON: `{"inputs": "<base64>" | ["<base64>", ...], "parameters": {"top_k": n}, "model": id}`. One image gets
  one list; a list of images gets one list per image, in order (at most MAAS_MAX_INPUTS, default 32).

`explain=true` (the query for raw bodies, `parameters.explain` for JSON) adds the top label's attribution map: Shapley
values of its probability over a grid of cells (`explain_grid`, default 4 x 4), from `explain_evaluations` model
evaluations per image (default 1024), each billed as an image.

`top_k` defaults to 5 (Hugging Face's default); larger than the label count gives every label; below 1 is a
400. Any other content type is a 415. Authenticated and metered like every task route: the tenant from the
authorizer's context, a quota pre-check, one exactly-once usage event per request whose units are the number
of images (task image-classify, priced by the image-classification family); refused requests are not billed.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from maas.api.metered import metered
from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import JSON, create_resolver, error_docs, register_post
from maas.bodies import body_bytes, header, json_body, require_identity_encoding
from maas.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from maas.inference.images import MEDIA_TYPES
from maas.metering.charge import Billing
from maas.schemas.images import ImageClassifyRequest, ImageClassifyResponse
from maas.tasks.images import ExplainImages, ImageClassifyService

IMAGES_PATH = "/v1/images/classify"
ERRORS = error_docs(
    (400, "Invalid request, bad base64 or an image that cannot be decoded"),
    (401, "Missing API key"),
    (404, "Unknown model"),
    (413, "Body too large, or an image with too many pixels"),
    (415, "Not a PNG, JPEG or JSON body"),
    (429, "Quota exceeded"),
    (503, "Model unavailable"),
)


@dataclass(frozen=True)
class RawImage:
    data: bytes
    top_k: int | None
    model: str | None
    explain: ExplainImages | None = None


def media_type(event: dict) -> str:
    value = header(event, "content-type") or ""
    return value.split(";", 1)[0].strip().lower()


# huggingface_hub's InferenceClient sends raw image bytes with no Content-Type; other tools send
# application/octet-stream. Hugging Face's endpoints look at the bytes: so do we, for these two only.
UNTYPED = ("", "application/octet-stream")
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def sniffed_image(event: dict) -> bool:
    """Whether the body starts like a PNG or JPEG file (checked on its first bytes only)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            head = base64.b64decode(body[:16])
        except (binascii.Error, ValueError):
            return False
    else:
        head = body[:8].encode("utf-8", "surrogateescape")
    return head.startswith(IMAGE_SIGNATURES)


def _query_int(query: dict, name: str) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer, got {text!r}.", param=name) from None


def _query_explain(query: dict) -> ExplainImages | None:
    text = query.get("explain")
    if text is not None and text.lower() not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"'explain' must be true or false, got {text!r}.", param="explain")
    explain = text is not None and text.lower() in ("true", "1")
    return ImageClassifyService.explain_options(
        explain, _query_int(query, "explain_evaluations"), _query_int(query, "explain_grid"), ""
    )


def raw_image(event: dict, max_body_bytes: int) -> RawImage:
    """The image bytes of a raw body (413 over the body limit, 400 when empty)."""
    data = body_bytes(event, max_body_bytes)
    if len(data) > max_body_bytes:
        raise PayloadTooLarge(f"Request body exceeds the {max_body_bytes}-byte limit.")
    if not data:
        raise InvalidRequest("The request body is empty; send a PNG or JPEG image.", param="body")
    query = event.get("queryStringParameters") or {}
    return RawImage(data, _query_int(query, "top_k"), query.get("model"), _query_explain(query))


class ImageClassifyApi:
    """The function's API: call it with an API Gateway REST event and a Lambda context."""

    def __init__(self, service: ImageClassifyService, billing: Billing, logger: logging.Logger):
        self.service, self.billing, self.logger = service, billing, logger
        self.max_body_bytes = service.settings.max_body_bytes
        self.app = self._resolver(logger)

    def __call__(self, event: dict, context) -> dict:
        if event.get("httpMethod") == "POST" and (event.get("resource") or event.get("path")) == IMAGES_PATH:
            return self.post_classify(event)
        return self.app.resolve(event, context)

    def _parse(self, event: dict) -> ImageClassifyRequest | RawImage:
        require_identity_encoding(header(event, "content-encoding"))
        media = media_type(event)
        if media in MEDIA_TYPES:
            return raw_image(event, self.max_body_bytes)
        if media in UNTYPED and sniffed_image(event):
            return raw_image(event, self.max_body_bytes)
        if media and media != JSON:
            raise UnsupportedMediaType(
                f"Content-Type {media!r} is not accepted: send the image itself (image/png or image/jpeg) or "
                "JSON with base64 images (application/json)."
            )
        return json_body(event, ImageClassifyRequest, self.max_body_bytes)

    def _run(self, request: ImageClassifyRequest | RawImage, reserve) -> tuple[list, int, object]:
        if isinstance(request, RawImage):
            result = self.service.from_bytes(request.data, request.top_k, request.model, reserve, request.explain)
        else:
            result = self.service.from_json(request, reserve)
        return result.body, result.units, self.service.manifest

    def post_classify(self, event: dict) -> dict:
        return metered(self.billing, event, self._parse, self._run, logger=self.logger, name="image-classify")

    def _resolver(self, logger: logging.Logger) -> APIGatewayRestResolver:
        app = create_resolver(self.max_body_bytes, logger)

        register_post(
            app,
            IMAGES_PATH,
            ImageClassifyRequest,
            self.post_classify,
            name="classify",
            summary="Classify images (Hugging Face image-classification; raw image/png or image/jpeg bodies too)",
            response=ImageClassifyResponse,
            description="Labels",
            errors=ERRORS,
        )

        return app


def create_app(service: ImageClassifyService, billing: Billing, logger: logging.Logger) -> ImageClassifyApi:
    return ImageClassifyApi(service, billing, logger)


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return ImageClassifyApi(DOCS_ONLY, DOCS_ONLY, DOCS_ONLY).app


def openapi_patch(doc: dict) -> None:
    """The route also takes the image itself (image/png, image/jpeg), with `top_k` and `model` in the query."""
    operation = doc["paths"][IMAGES_PATH]["post"]
    binary = {"schema": {"type": "string", "format": "binary"}}
    operation["requestBody"]["content"].update({media: binary for media in sorted(MEDIA_TYPES)})
    raw_only = "raw image bodies only (JSON bodies carry it in the body)"
    operation.setdefault("parameters", []).extend(
        [
            {
                "name": "top_k",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1},
                "description": f"labels to return; {raw_only}",
            },
            {
                "name": "model",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": f"model id; {raw_only}",
            },
            {
                "name": "explain",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean"},
                "description": f"explain the top label with an attribution map over cells; {raw_only}",
            },
            {
                "name": "explain_evaluations",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 2},
                "description": f"with explain: model evaluations per image (default 1024); {raw_only}",
            },
            {
                "name": "explain_grid",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 2, "maximum": 8},
                "description": f"with explain: cells per side (default 4); {raw_only}",
            },
        ]
    )
