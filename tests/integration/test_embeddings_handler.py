"""functions/embeddings driven by API Gateway REST events, as production sends them."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from maas.tools.local.apigw import make_event
from maas.tools.local.functions import LambdaContext, load_handler
from tests.conftest import load_event


def _call(handler, event, context=None):
    result = handler(event, context or LambdaContext())
    return result["statusCode"], json.loads(result["body"]) if result.get("body") else None, result


# What the authorizer puts in the request context for an enterprise-plan tenant.
AUTH = {
    "principalId": "t-handler-tests",
    "tenant_id": "t-handler-tests",
    "plan": "enterprise",
    "key_prefix": "maas_test0000",
}


def _post(handler, body, raw: bytes | None = None, headers=None, authorizer=AUTH):
    data = raw if raw is not None else json.dumps(body).encode()
    event = make_event(
        "POST",
        "/v1/embeddings",
        headers=headers or {"Content-Type": "application/json"},
        body=data,
        authorizer=authorizer,
    )
    return _call(handler, event)


def _assert_error(status, body, expected_status, fragment):
    assert status == expected_status, body
    assert set(body) == {"error"}
    assert {"message", "type", "code"} <= set(body["error"])
    assert fragment.lower() in body["error"]["message"].lower(), body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]


def test_sample_event_single_input(embeddings_handler, lambda_context):
    status, body, result = _call(embeddings_handler, load_event("embeddings-post.json"), lambda_context)
    assert status == 200
    assert body["object"] == "list" and body["model"] == "all-minilm-l6-v2"
    [item] = body["data"]
    assert item["object"] == "embedding" and item["index"] == 0
    vector = np.array(item["embedding"])
    assert vector.shape == (384,)
    assert abs(np.linalg.norm(vector) - 1) < 1e-4
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 2
    assert result["multiValueHeaders"]["Content-Type"] == ["application/json"]


def test_sample_event_batch_base64_matches_float(embeddings_handler):
    event = load_event("embeddings-post-batch.json")
    status, body, _ = _call(embeddings_handler, event)
    assert status == 200
    texts = json.loads(event["body"])["input"]
    assert [d["index"] for d in body["data"]] == list(range(len(texts)))
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]])
    status, floats, _ = _post(embeddings_handler, {"input": texts, "encoding_format": "float"})
    np.testing.assert_allclose(decoded, np.array([d["embedding"] for d in floats["data"]]), atol=1e-8)


def test_usage_counts_tokens_with_the_models_tokenizer(embeddings_handler, model_dir):
    from tokenizers import Tokenizer

    texts = ["one two three", "A somewhat longer sentence, with punctuation!"]
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    expected = sum(len(tok.encode(t).ids) for t in texts)
    status, body, _ = _post(embeddings_handler, {"input": texts})
    assert status == 200 and body["usage"]["prompt_tokens"] == expected


def test_results_keep_input_order_across_length_buckets(embeddings_handler):
    texts = ["short", "a much longer input " * 20, "mid length text here", "x"]
    status, body, _ = _post(embeddings_handler, {"input": texts})
    singles = [np.array(_post(embeddings_handler, {"input": t})[1]["data"][0]["embedding"]) for t in texts]
    np.testing.assert_allclose(np.array([d["embedding"] for d in body["data"]]), np.stack(singles), atol=1e-5)


def test_model_aliases_resolve(embeddings_handler):
    for name in [
        "all-minilm-l6-v2",
        "ALL-MiniLM-L6-v2@latest",
        "all-minilm-l6-v2@1",
        "sentence-transformers/all-MiniLM-L6-v2",
    ]:
        assert _post(embeddings_handler, {"input": "hi", "model": name})[0] == 200


def test_long_input_is_truncated_by_default_and_refused_when_asked(embeddings_handler):
    long_text = "tokens " * 600
    status, body, _ = _post(embeddings_handler, {"input": long_text})
    assert status == 200 and body["usage"]["prompt_tokens"] == 256
    status, body, _ = _post(embeddings_handler, {"input": ["ok", long_text], "truncate": False})
    _assert_error(status, body, 400, "input[1]' is longer than the model's 256 tokens")
    assert body["error"]["code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    "event_name,status,fragment",
    [
        ("embeddings-post-invalid.json", 400, "empty list"),
        ("embeddings-post-unsupported.json", 400, "'dimensions' is not supported"),
        ("embeddings-post-unknown-model.json", 404, "does not exist"),
    ],
)
def test_sample_error_events(embeddings_handler, event_name, status, fragment):
    got, body, _ = _call(embeddings_handler, load_event(event_name))
    _assert_error(got, body, status, fragment)


@pytest.mark.parametrize(
    "payload,raw,status,fragment",
    [
        (None, b"{not json", 400, "not valid JSON"),
        (None, b"", 400, ""),
        ([1, 2], None, 400, ""),
        ({"input": 7}, None, 400, "'input'"),
        ({"input": [1, 2, 3]}, None, 400, "token arrays are not supported"),
        ({"input": ["ok", 3]}, None, 400, "'input[1]': Input should be a valid string"),
        ({"input": {"text": "x"}}, None, 400, "'input' has the wrong type: expected str or list[str]"),
        ({"input": ""}, None, 400, "empty"),
        ({"input": ["fine", "   "]}, None, 400, "'input[1]' is empty"),
        ({"input": []}, None, 400, "empty list"),
        ({"model": "all-minilm-l6-v2"}, None, 400, "missing required parameter: 'input'"),
        ({"input": "x", "encoding_format": "int8"}, None, 400, "encoding_format"),
        ({"input": "x", "dimensions": 128}, None, 400, "'dimensions' is not supported"),
        ({"input": "x", "temperature": 1}, None, 400, "unsupported parameter: 'temperature'"),
        ({"input": "x", "model": "gpt-4"}, None, 404, "'gpt-4' does not exist"),
        ({"input": ["x"] * 1025}, None, 400, "maximum per request is 1024"),  # float (the default encoding)
    ],
)
def test_bad_input_gets_a_4xx_in_the_error_shape(embeddings_handler, payload, raw, status, fragment):
    got, body, _ = _post(embeddings_handler, payload, raw=raw)
    _assert_error(got, body, status, fragment)


def test_dimensions_equal_to_the_native_size_is_accepted(embeddings_handler):
    assert _post(embeddings_handler, {"input": "x", "dimensions": 384})[0] == 200


def test_body_over_the_limit_is_413(embeddings_handler):
    got, body, _ = _post(embeddings_handler, {"input": "a" * (2 * 1024 * 1024 + 10)})
    _assert_error(got, body, 413, "exceeds the")


def test_models_routes(embeddings_handler):
    status, body, _ = _call(embeddings_handler, load_event("models-get.json"))
    assert status == 200 and body["object"] == "list"
    assert body["data"][0]["id"] == "all-minilm-l6-v2" and body["data"][0]["object"] == "model"
    status, body, _ = _call(embeddings_handler, load_event("model-get.json"))
    assert status == 200 and body["id"] == "all-minilm-l6-v2"
    status, body, _ = _call(embeddings_handler, make_event("GET", "/v1/models/nope"))
    _assert_error(status, body, 404, "'nope' does not exist")


def test_unknown_route_wrong_method_and_content_type(embeddings_handler):
    _assert_error(*_call(embeddings_handler, make_event("GET", "/v1/nothing"))[:2], 404, "no route")
    status, body, result = _call(embeddings_handler, make_event("GET", "/v1/embeddings"))
    _assert_error(status, body, 405, "GET is not allowed on /v1/embeddings; use POST")
    assert result["multiValueHeaders"]["Allow"] == ["POST"]
    got, body, _ = _post(embeddings_handler, None, raw=b"hello", headers={"Content-Type": "text/plain"})
    _assert_error(got, body, 415, "Content-Type: application/json")


def test_percent_encoded_model_id(embeddings_handler):
    event = make_event("GET", "/v1/models/all-minilm-l6-v2%40latest")
    assert _call(embeddings_handler, event)[0] == 200


def test_openapi_document_is_generated_from_the_models(embeddings_handler):
    status, doc, _ = _call(embeddings_handler, load_event("openapi-get.json"))
    assert status == 200 and doc["openapi"].startswith("3.")
    op = doc["paths"]["/v1/embeddings"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"input", "model", "encoding_format", "user", "dimensions"} <= set(
        doc["components"]["schemas"][ref]["properties"]
    )
    assert {"200", "400", "404", "413", "503"} <= set(op["responses"])
    assert "/v1/models" in doc["paths"]


def test_swagger_ui_page(embeddings_handler):
    result = embeddings_handler(load_event("docs-get.json"), LambdaContext())
    assert result["statusCode"] == 200
    assert "swagger-ui" in result["body"].lower()


def test_missing_model_at_init_answers_503_and_logs(tmp_path, caplog):
    handler = load_handler("embeddings", {"MAAS_MODEL_SOURCE": str(tmp_path / "absent"), "MAAS_METERING": "off"})
    status, body, _ = _post(handler, {"input": "hello"})
    _assert_error(status, body, 503, "unavailable")
    assert _call(handler, make_event("GET", "/v1/models"))[0] == 503
    [record] = [r for r in caplog.records if r.getMessage() == "model failed to load"]
    assert "not a directory" in record.reason


def test_corrupt_model_at_init_answers_503(model_dir, tmp_path, caplog):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    (bad / "model.onnx").write_bytes(b"\0" * (bad / "model.onnx").stat().st_size)
    handler = load_handler("embeddings", {"MAAS_MODEL_SOURCE": str(bad), "MAAS_METERING": "off"})
    status, body, _ = _post(handler, {"input": "hello"})
    _assert_error(status, body, 503, "unavailable")
    [record] = [r for r in caplog.records if r.getMessage() == "model failed to load"]
    assert "sha256" in record.reason


def test_inputs_are_never_logged(embeddings_handler, caplog):
    import logging

    secret = "my card number is 4111 1111 1111 1111"
    service_logger = logging.getLogger("maas")
    level = service_logger.level
    service_logger.setLevel(logging.DEBUG)  # the per-request line is DEBUG; show it to check what it holds
    try:
        with caplog.at_level(logging.DEBUG, logger="maas"):
            assert _post(embeddings_handler, {"input": secret})[0] == 200
            assert _post(embeddings_handler, {"input": secret, "nope": 1})[0] == 400
    finally:
        service_logger.setLevel(level)
    messages = [r.getMessage() for r in caplog.records]
    assert "embeddings" in messages and "request refused" in messages
    assert all("4111" not in str(r.__dict__) for r in caplog.records)


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps({"input": ["alpha", "beta gamma"], "model": "all-minilm-l6-v2"}).encode(),
        json.dumps({"input": "x", "temperature": 1}).encode(),
        json.dumps({"input": ["ok", 3]}).encode(),
        json.dumps({"input": []}).encode(),
        b"{not json",
    ],
)
def test_resolver_route_answers_exactly_like_the_fast_path(embeddings_handler, raw):
    import sys

    api = sys.modules["maas_function_embeddings"].api
    event = make_event(
        "POST", "/v1/embeddings", headers={"Content-Type": "application/json"}, body=raw, authorizer=AUTH
    )
    fast = api(event, LambdaContext())
    slow = api.app.resolve(event, LambdaContext())
    assert fast["statusCode"] == slow["statusCode"]
    assert json.loads(fast["body"]) == json.loads(slow["body"])
