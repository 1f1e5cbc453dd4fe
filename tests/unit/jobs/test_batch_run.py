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


class Ledger:
    """A Billing stand-in that records reservations, releases and commits, and refuses past ``quota`` units."""

    def __init__(self, quota: int = 10**9):
        self.quota, self.reserved, self.calls = quota, 0, []

    def reserve(self, ticket, units):
        if self.reserved + units > self.quota:
            err = RuntimeError("quota")
            err.status = 429
            raise err
        self.reserved += units
        ticket.reservation = units
        self.calls.append(("reserve", ticket.request_id, units))

    def release(self, ticket):
        self.reserved -= ticket.reservation
        self.calls.append(("release", ticket.request_id))

    def commit(self, ticket, manifest, units, compute_ms):
        assert ticket.batch
        self.calls.append(("commit", ticket.request_id, manifest.name, units, round(compute_ms, 6)))

    def charge(self, caller, rid, manifest, units, compute_ms, before, batch=False):
        assert batch
        self.calls.append(("charge", rid, manifest.name, units))


def billed_as(name: str, task: str = "classify"):
    from types import SimpleNamespace

    return SimpleNamespace(name=name, version="1", task=task)


def test_a_part_billed_under_several_models_is_one_event_per_model_all_reserved_first():
    from maas.jobs.batch_run import Answer, _bill

    head, zero_shot = billed_as("ticket-intents"), billed_as("all-minilm-l6-v2")
    answers = [Answer(200, [], 7, billed=zero_shot), Answer(400, {}, 0), Answer(200, [], 5, billed=head)]
    answers.append(Answer(200, [], 3, billed=zero_shot))
    ledger = Ledger()
    _bill(ledger, None, "batch-x", answers, None, 30.0)
    # models in name order: all-minilm-l6-v2 (10 units) under the part's id, ticket-intents (5) under .1
    assert ledger.calls == [
        ("reserve", "batch-x", 10),
        ("reserve", "batch-x.1", 5),
        ("commit", "batch-x", "all-minilm-l6-v2", 10, 20.0),
        ("commit", "batch-x.1", "ticket-intents", 5, 10.0),
    ]
    one = Ledger()
    _bill(one, None, "batch-y", [Answer(200, [], 4, billed=head), Answer(200, [], 2, billed=head)], None, 1.0)
    assert one.calls == [("charge", "batch-y", "ticket-intents", 6)]
    nothing = Ledger()
    _bill(nothing, None, "batch-z", [Answer(404, {}, 0)], head, 1.0)
    assert nothing.calls == []


def test_a_part_over_the_quota_bills_none_of_its_models():
    from maas.jobs.batch_run import Answer, _bill

    ledger = Ledger(quota=12)
    answers = [Answer(200, [], 10, billed=billed_as("a")), Answer(200, [], 5, billed=billed_as("b"))]
    with pytest.raises(RuntimeError, match="quota"):
        _bill(ledger, None, "batch-q", answers, None, 1.0)
    assert ledger.calls == [("reserve", "batch-q", 10), ("release", "batch-q")] and ledger.reserved == 0
    assert not any(call[0] == "commit" for call in ledger.calls)


def test_metrics_of_two_models_in_one_invocation_go_out_under_their_own_dimensions(capsys):
    from aws_lambda_powertools import Metrics

    from maas.metering.charge import Billing

    metrics = Metrics(namespace="maas-test", service="batch")
    billing = Billing(None, {}, metrics=metrics)
    billing._dimensions({"model": "ticket-intents", "task": "classify"})
    billing._metric("BilledUnits", 5)
    billing._dimensions({"model": "ticket-intents", "task": "classify"})  # the same: nothing goes out
    assert capsys.readouterr().out == ""
    billing._dimensions({"model": "all-minilm-l6-v2", "task": "classify"})
    billing._metric("BilledUnits", 10)
    first = json.loads(capsys.readouterr().out)
    assert (first["model"], first["BilledUnits"]) == ("ticket-intents", [5.0])
    metrics.flush_metrics()
    second = json.loads(capsys.readouterr().out)
    assert (second["model"], second["BilledUnits"]) == ("all-minilm-l6-v2", [10.0])
