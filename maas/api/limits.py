"""The enforced per-request limits as the OpenAPI document states them (each operation's description), from the
values a default deployment runs with: inputs per encoding (Lambda's 6 MB response) and the token budget (API
Gateway's 29 s; maas.settings.mixins.token_budget at the task functions' memory)."""

from __future__ import annotations

from maas.settings import names as c
from maas.settings.mixins import token_budget

BUDGET = token_budget(c.DEFAULT_FUNCTION_MEMORY_MB)
_BUDGET_TEXT = (
    f"at most {BUDGET:,} tokens per request ({{counted}}; 413 `token_budget_exceeded`, refused before the model "
    f"runs and not billed): what a {c.DEFAULT_FUNCTION_MEMORY_MB:,} MB function runs within half of API Gateway's "
    f"{c.GATEWAY_TIMEOUT_S} s (`maas bench budget`)."
)


def budget_text(counted: str) -> str:
    """The token budget's sentence, saying what a route counts."""
    return _BUDGET_TEXT.format(counted=counted)


EMBEDDINGS = (
    f"Limits: at most {c.DEFAULT_MAX_INPUTS:,} inputs with `encoding_format` `base64` (the OpenAI SDKs' default), "
    f"{c.MAX_FLOAT_INPUTS:,} with `float` (the larger JSON numbers must fit Lambda's 6 MB response); "
    + budget_text("the inputs' tokens after truncation, [CLS] and [SEP] included")
)
FEATURE_EXTRACTION = f"Limits: at most {c.MAX_FLOAT_INPUTS:,} inputs; " + budget_text("the inputs' tokens")
RERANK = f"Limits: at most {c.DEFAULT_MAX_DOCUMENTS:,} documents; " + budget_text("the query's and documents' tokens")
CLASSIFY = f"Limits: at most {c.DEFAULT_CLASSIFY_MAX_INPUTS:,} inputs; " + budget_text(
    "the inputs' tokens, plus each zero-shot label hypothesis's"
)
V2_INFER = (
    f"Limits: at most {c.MAX_FLOAT_INPUTS:,} rows and the model's maximum sequence length; "
    + budget_text("rows x sequence length: every position runs, padding included")
    + " Billed: the tokens run (per row the attention mask's ones, at least 1). Also takes Triton's binary tensor "
    "data extension (a body of `Inference-Header-Content-Length` bytes of this JSON, then the inputs' bytes)."
)
