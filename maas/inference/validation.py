"""Input checks every text task shares, with the same messages and codes everywhere."""

from __future__ import annotations

from maas.errors import InvalidRequest


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
