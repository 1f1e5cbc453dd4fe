"""Input checks every text task shares, with the same messages and codes everywhere."""

from __future__ import annotations

from maas.errors import InvalidRequest, PayloadTooLarge


def check_dimensions(requested: int | None, manifest) -> None:
    """``dimensions`` (OpenAI's parameter) may only name the model's own size: its vectors are not truncated."""
    if requested is not None and requested != manifest.dimensions:
        raise InvalidRequest(
            f"'dimensions' is not supported: {manifest.name} returns {manifest.dimensions}-"
            "dimensional embeddings only.",
            code="unsupported_parameter",
            param="dimensions",
        )


def text_list(value: str | list[str], param: str, max_items: int, code: str = "too_many_inputs") -> list[str]:
    """A string or list of strings as a non-empty list of non-blank texts, at most ``max_items`` long."""
    texts = [value] if isinstance(value, str) else list(value)
    if not texts:
        raise InvalidRequest(f"'{param}' is an empty list; send at least one text.", param=param)
    if len(texts) > max_items:
        raise InvalidRequest(
            f"'{param}' has {len(texts)} items; the maximum per request is {max_items}.", code=code, param=param
        )
    for i, text in enumerate(texts):
        if not text.strip():
            where = f"'{param}'" if isinstance(value, str) else f"'{param}[{i}]'"
            raise InvalidRequest(f"{where} is empty or only whitespace.", param=param)
    return texts


def check_token_budget(tokens: int, budget: int, counted: str) -> None:
    """A request whose model run counts more than ``budget`` tokens is refused (413) before it runs: it would not
    finish within API Gateway's 29 s. ``counted``: what was counted, in the message."""
    if tokens > budget:
        raise PayloadTooLarge(
            f"This request would run {tokens:,} tokens ({counted}); the budget per request is {budget:,} tokens, what "
            "this function finishes well within API Gateway's 29 s limit. Split it into smaller requests.",
            code="token_budget_exceeded",
        )


def tokenize_checked(embedder, texts: list[str], truncate: bool, param: str):
    """Tokenize; when ``truncate`` is false, an input over the model's limit is a 400 instead of truncated."""
    encodings = embedder.tokenize(texts)
    if not truncate:
        for i, enc in enumerate(encodings):
            if enc.overflowing:
                raise InvalidRequest(
                    f"'{param}[{i}]' is longer than the model's {embedder.max_length} tokens and 'truncate' is false.",
                    code="context_length_exceeded",
                    param=param,
                )
    return encodings
