"""A batch's input file checked whole before any line runs, and its lines answered as the synchronous route answers."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from maas.jobs.batch_run import embeddings_answerer, validate_lines
from maas.jobs.batches import MAX_BATCH_LINES, MAX_REPORTED_ERRORS
from maas.jobs.records import iter_lines

URL = "/v1/embeddings"


def lines_of(*rows) -> list[bytes]:
    raw = b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)
    return list(iter_lines(io.BytesIO(raw)))


def line(custom_id: str, **changes) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": URL, "body": {"input": "hi", "model": "m"}, **changes}


def test_a_good_file_counts_its_requests_and_names_its_model_blank_lines_aside():
    problems, count, model = validate_lines(lines_of(line("a"), b"", line("b"), b"   "), URL)
    assert (problems, count, model) == ([], 2, "m")


@pytest.mark.parametrize(
    "rows, code, number",
    [
        ((line("a"), line("b", url="/v1/rerank")), "mismatched_endpoint", 2),
        ((line("a"), line("a")), "duplicate_custom_id", 2),
        ((line("a"), b"{oops"), "invalid_json_line", 2),
        ((line("a", method="GET"),), "invalid_method", 1),
        (({"method": "POST", "url": URL, "body": {}},), "invalid_custom_id", 1),
        ((line("a", body="text"),), "invalid_request", 1),
        ((b"",), "empty_file", None),
    ],
)
def test_each_rule_names_the_line_and_the_reason(rows, code, number):
    problems, _, _ = validate_lines(lines_of(*rows), URL)
    assert [(p["code"], p["line"]) for p in problems] == [(code, number)]
    assert problems[0]["message"]


def test_too_many_requests_and_the_report_is_bounded():
    many = (json.dumps(line(str(i))).encode() + b"\n" for i in range(MAX_BATCH_LINES + 1))
    problems, _, _ = validate_lines(many, URL)
    assert [(p["code"], p["line"]) for p in problems] == [("too_many_requests", MAX_BATCH_LINES + 1)]
    bad = (b"{nope\n" for _ in range(5 * MAX_REPORTED_ERRORS))
    assert len(validate_lines(bad, URL)[0]) == MAX_REPORTED_ERRORS


@pytest.fixture(scope="module")
def embeddings(model_dir):
    from maas.inference.embedder import TextEmbedder
    from maas.inference.package import read_manifest

    manifest = read_manifest(model_dir)
    return TextEmbedder(model_dir, manifest), manifest


def test_lines_are_answered_as_the_route_answers_them_and_refusals_cost_nothing(embeddings):
    embedder, manifest = embeddings
    answer = embeddings_answerer(embedder, manifest)
    bodies = [
        {"input": ["Where is my parcel?", "I cannot log in."], "model": manifest.name},
        {"input": "x", "model": "gpt-4"},
        {"input": []},
        {"input": "y", "dimensions": 7},
        {"input": "Where is my parcel?", "encoding_format": "base64"},
    ]
    answers, billed, _ = answer(bodies)
    assert billed is manifest
    assert [a.status for a in answers] == [200, 404, 400, 400, 200]
    assert [a.error.code for a in answers if a.error] == ["model_not_found", "invalid_request", "unsupported_parameter"]
    assert all(a.units == 0 and a.body == a.error.body() for a in answers if a.error)
    first = answers[0].body
    alone = embedder.embed(["Where is my parcel?", "I cannot log in."])
    np.testing.assert_allclose([d["embedding"] for d in first["data"]], alone.vectors, atol=1e-6)
    assert first["usage"] == {
        "prompt_tokens": int(sum(alone.token_counts)),
        "total_tokens": int(sum(alone.token_counts)),
    }
    assert answers[0].units == first["usage"]["total_tokens"] and first["model"] == manifest.name
    assert isinstance(answers[4].body["data"][0]["embedding"], str)  # base64, as the route sends it
