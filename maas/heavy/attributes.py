"""SageMaker CustomAttributes: how the route, model and version reach the endpoint and the billable units come
back. Standard library only: the proxy and the embeddings function import it without the inference package."""

from __future__ import annotations

from collections.abc import Mapping

ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"


def parse_attributes(value: str | None) -> dict[str, str]:
    """SageMaker CustomAttributes (`a=1;b=2`, at most 1024 visible ASCII characters) as a dict."""
    pairs = {}
    for part in (value or "").split(";"):
        key, sep, val = part.strip().partition("=")
        if sep and key:
            pairs[key.strip()] = val.strip()
    return pairs


def format_attributes(values: Mapping[str, object]) -> str:
    return ";".join(f"{k}={v}" for k, v in values.items() if v is not None)
