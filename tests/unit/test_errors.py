"""The two error bodies: OpenAI's everywhere, KServe v2's on the /v2 tensor routes (chosen by path)."""

from __future__ import annotations

import json

import pytest

from maas.api.routes import is_kserve_path
from maas.errors import NotFound, error_json, internal_error_body, kserve_headers


@pytest.mark.parametrize(
    "path,kserve",
    [
        ("/v2", True),
        ("/v2/health/live", True),
        ("/v2/models/m/versions/1/infer", True),
        ("/v2/models/rerank/infer", True),
        ("/v2/rerank", False),
        ("/v2/rerank/", False),
        ("/v1/embeddings", False),
        ("/v2rerank", False),
    ],
)
def test_kserve_paths(path, kserve):
    assert is_kserve_path(path) is kserve


def test_kserve_body_is_the_message_and_the_code_goes_in_a_header():
    err = NotFound("No such model.", code="model_not_found")
    assert err.body(kserve=True) == {"error": "No such model."}
    assert err.body() == {"error": {"message": "No such model.", "type": "not_found_error", "code": "model_not_found"}}
    assert kserve_headers(err.code) == {"X-Error-Code": "model_not_found"}
    assert json.loads(error_json("m", "t", "c", kserve=True)) == {"error": "m"}
    assert isinstance(internal_error_body(kserve=True)["error"], str)
