"""functions/classify with the real trained package: accuracy report, golden labels, zero-shot, bad inputs,
metering, sample events and `maas models train-classifier`."""

from __future__ import annotations

import time
import uuid

import pytest

from maas.inference.loader import verify_package
from maas.metering.store import Meter
from maas.tables import USAGE
from maas.tools import paths
from maas.tools.build.classifier import default_data, ensure_built, read_report
from maas.tools.cli import main
from maas.tools.local.functions import load_handler
from tests.client import Client, assert_error
from tests.conftest import function_env, load_event

NAME = "ticket-intents"


@pytest.fixture(scope="session")
def classifier_dir():
    """The ticket-intents package, trained by `maas models train-classifier`'s pipeline when missing or stale."""
    return ensure_built(default_data(), NAME, paths.model_dir(NAME))


@pytest.fixture(scope="session")
def classify_handler(aws, model_dir, classifier_dir):
    """functions/classify as Lambda imports it, metered against the emulator, with the trained package and
    the embedding model (zero-shot)."""
    return load_handler("classify", {**function_env(aws, model_dir), "MAAS_CLASSIFIER_SOURCES": str(classifier_dir)})


@pytest.fixture(scope="session")
def classify(classify_handler) -> Client:
    """The classify handler; each request from a fresh tenant unless it names one."""
    return Client(classify_handler)


def _auth():
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    return {"principalId": tenant, "tenant_id": tenant, "plan": "pro", "key_prefix": "maas_clsf0000"}


def _request(client: Client, body, auth=None, raw: bytes | None = None):
    """POST /v1/classify with ``body`` as JSON (or ``raw`` bytes) from ``auth``'s tenant (default: a fresh one)."""
    return client.post("/v1/classify", json=body if raw is None else None, body=raw, authorizer=auth or _auth())


def _post(client: Client, body, auth=None, raw: bytes | None = None):
    resp = _request(client, body, auth, raw)
    return resp.status, resp.json


def test_report_meets_the_accuracy_targets(classifier_dir):
    manifest = verify_package(classifier_dir)  # every file, report.json included, matches its sha256
    report = read_report(classifier_dir)
    assert manifest.task == "classify" and manifest.name == NAME
    assert manifest.labels == sorted(report["per_class"]) and len(manifest.labels) >= 6
    assert set(manifest.files) == {"model.onnx", "tokenizer.json", "report.json"}
    assert report["n_test"] >= 100 and report["n_train"] + report["n_test"] >= 600
    assert report["accuracy"]["fp32"] >= 0.90
    assert abs(report["accuracy"]["fp32"] - report["accuracy"]["int8"]) <= 0.01  # int8 within 1 point
    assert sum(c["test"] for c in report["per_class"].values()) == report["n_test"]
    assert sum(c["test_correct_int8"] for c in report["per_class"].values()) == round(
        report["accuracy"]["int8"] * report["n_test"]
    )
    methods = {t["method"]: t["held_out_accuracy"] for t in manifest.quantization.tried}
    assert methods["weight-only int8 (shipped)"] == report["accuracy"]["int8"]
    assert manifest.evaluation == report  # the held-out report is in the manifest itself too
    assert manifest.quality.size_ratio >= 3.5 and manifest.quality.min_cosine >= 0.99


GOLDEN = [  # none of these is in the training data
    ("Could you send me a duplicate of the invoice from February?", "billing"),
    ("I returned the vacuum last week, when will I see the money back?", "refund"),
    ("The courier says my box is out for delivery but it never came.", "shipping"),
    ("I can't sign in because my verification code never arrives.", "account_access"),
    ("Every time I press export the program closes itself.", "technical_issue"),
    ("Please end my subscription at the end of this billing period.", "cancellation"),
    ("Does the blue hoodie come in extra large?", "product_question"),
]


def test_golden_sentences_get_their_expected_top_label(classify):
    status, body = _post(classify, {"inputs": [text for text, _ in GOLDEN]})
    assert status == 200 and len(body) == len(GOLDEN)
    for (text, label), scores in zip(GOLDEN, body, strict=True):
        assert scores[0]["label"] == label, (text, scores[:2])
        assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
        assert sum(s["score"] for s in scores) == pytest.approx(1.0, abs=1e-4)
        assert len(scores) == 7


def test_single_string_top_k_and_model_aliases(classify):
    for model in (None, NAME, f"{NAME}@1", f"{NAME.upper()}@latest"):
        body = {"inputs": GOLDEN[2][0], "parameters": {"top_k": 2}, **({"model": model} if model else {})}
        status, result = _post(classify, body)
        assert status == 200, result
        assert len(result) == 1 and [s["label"] for s in result[0]][:1] == ["shipping"] and len(result[0]) == 2


def test_zero_shot_ranks_shipping_first_for_a_shipping_sentence(classify):
    labels = ["billing", "shipping", "technical issue", "account access"]
    text = "My package was supposed to arrive on Monday and the courier still hasn't delivered it."
    for params in ({"candidate_labels": labels}, {"candidate_labels": ", ".join(labels)}):
        status, body = _post(classify, {"inputs": [text], "parameters": params})
        assert status == 200, body
        assert body[0][0]["label"] == "shipping" and sorted(s["label"] for s in body[0]) == sorted(labels)
    status, body = _post(
        classify,
        {
            "inputs": text,
            "model": "all-minilm-l6-v2",
            "parameters": {"candidate_labels": labels, "hypothesis_template": "This ticket is about {}.", "top_k": 1},
        },
    )
    assert status == 200 and body == [{"label": "shipping", "score": body[0]["score"]}]  # one string: a flat list


@pytest.mark.parametrize(
    "body,status,fragment",
    [
        ({}, 400, "Missing required parameter: 'inputs'"),
        ({"inputs": []}, 400, "'inputs' is an empty list"),
        ({"inputs": ""}, 400, "'inputs' is empty"),
        ({"inputs": ["ok", "  "]}, 400, "'inputs[1]' is empty"),
        ({"inputs": ["x"] * 257}, 400, "maximum per request is 256"),
        ({"inputs": "x", "parameters": {"top_k": 0}}, 400, "'parameters.top_k' must be at least 1"),
        ({"inputs": "x", "parameters": {"top_k": "two"}}, 400, "top_k"),
        ({"inputs": "x", "model": "gpt-4"}, 404, "'gpt-4' does not exist"),
        ({"inputs": "x", "parameters": {"candidate_labels": []}}, 400, "candidate_labels' is empty"),
        ({"inputs": "x", "parameters": {"candidate_labels": ["a", "b", "A"]}}, 400, "repeats 'A'"),
        ({"inputs": "x", "parameters": {"candidate_labels": ["a", ""]}}, 400, "candidate_labels[1]' is empty"),
        ({"inputs": "x", "parameters": {"candidate_labels": [str(i) for i in range(33)]}}, 400, "maximum is 32"),
        ({"inputs": "x", "parameters": {"candidate_labels": ["a"], "hypothesis_template": "no slot"}}, 400, "'{}'"),
        ({"inputs": "x", "parameters": {"hypothesis_template": "About {}."}}, 400, "needs 'parameters.candidate"),
        ({"inputs": "x", "model": NAME, "parameters": {"candidate_labels": ["a"]}}, 400, "fixed labels"),
        ({"inputs": "x", "model": "all-minilm-l6-v2"}, 400, "is an embedding model"),
        ({"inputs": "x", "parameters": {"temperature": 1}}, 400, "Unsupported parameter"),
        ({"inputs": "word " * 300, "truncate": False}, 400, "longer than the model's 256 tokens"),
    ],
)
def test_bad_inputs_get_a_4xx_in_the_error_shape(classify, body, status, fragment):
    # WHEN a malformed or unservable request is posted
    resp = _request(classify, body)
    # THEN it is refused in the error shape, its message naming the problem exactly
    assert_error(resp, status, message=fragment)
    assert fragment in resp.json["error"]["message"], resp.json["error"]["message"]


def test_malformed_json_and_missing_key(classify):
    assert_error(_request(classify, None, raw=b"{not json"), 400, "invalid_json")
    resp = classify.post("/v1/classify", body=b'{"inputs":"x"}', authorizer=None)
    assert_error(resp, 401)
    assert resp.json["error"]["type"] == "authentication_error"


def test_each_call_is_billed_once_in_input_tokens(classify, aws, model_dir):
    from tokenizers import Tokenizer

    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    auth, start = _auth(), time.time() - 1
    texts = ["Where is my order?", "I was charged twice."]
    assert _post(classify, {"inputs": texts}, auth)[0] == 200
    labels = ["shipping", "billing"]
    params = {"candidate_labels": labels, "hypothesis_template": "About {}."}
    assert _post(classify, {"inputs": texts[0], "parameters": params}, auth)[0] == 200
    assert _post(classify, {"inputs": []}, auth)[0] == 400  # refused: not billed
    events = sorted(meter.events(auth["tenant_id"], start, time.time() + 1), key=lambda e: e.model)
    assert [(e.model, e.task) for e in events] == [("all-minilm-l6-v2", "classify"), (NAME, "classify")]
    zero_shot, trained = events
    assert trained.units == sum(len(tok.encode(t).ids) for t in texts)
    hypotheses = [f"About {label}." for label in labels]  # zero-shot also embeds one hypothesis per label
    assert zero_shot.units == sum(len(tok.encode(t).ids) for t in [texts[0], *hypotheses])


def test_a_missing_classifier_is_a_503_and_zero_shot_still_works(aws, model_dir, tmp_path):
    handler = load_handler(
        "classify", {**function_env(aws, model_dir), "MAAS_CLASSIFIER_SOURCES": str(tmp_path / NAME)}
    )
    client = Client(handler)
    assert_error(_request(client, {"inputs": "hello", "model": NAME}), 503, "model_unavailable")
    status, body = _post(client, {"inputs": "hello", "parameters": {"candidate_labels": ["greeting", "refund"]}})
    assert status == 200 and body[0]["label"] == "greeting"


@pytest.mark.parametrize(
    "event,status",
    [
        ("classify-post.json", 200),
        ("classify-post-batch.json", 200),
        ("classify-post-zero-shot.json", 200),
        ("classify-post-invalid.json", 400),
        ("classify-post-unknown-model.json", 404),
    ],
)
def test_sample_events(classify, event, status):
    resp = classify.invoke(load_event(event))
    assert resp.status == status, resp.body
    if event == "classify-post-zero-shot.json":
        assert resp.json[0]["label"] == "shipping"  # one string, zero-shot: a flat list


def test_train_classifier_cli_refuses_a_bad_csv(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\nhello,a\n")
    assert main(["models", "train-classifier", "--data", str(bad), "--name", "x", "--out", str(tmp_path / "x")]) == 1
    assert "missing column(s) 'label'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_train_classifier_cli_shows_progress_and_rebuilds_byte_identically(classifier_dir, tmp_path, capsys):
    out = tmp_path / NAME
    assert main(["models", "train-classifier", "--data", str(default_data()), "--name", NAME, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "[1/7] reading" in captured.err and "[7/7] writing package" in captured.err
    assert "held-out accuracy: fp32" in captured.out
    rebuilt, first = verify_package(out), verify_package(classifier_dir)
    assert {k: v.sha256 for k, v in rebuilt.files.items()} == {k: v.sha256 for k, v in first.files.items()}


def test_maas_serve_routes_classify_behind_the_authorizer(model_dir, classifier_dir):
    import requests

    from maas.tools.local.server import start

    assert classifier_dir.parent == model_dir.parent  # the classify function finds it next to the embedding model
    running = start(port=0, model_dir=model_dir)
    try:
        url = f"{running.base_url}/v1/classify"
        body = {"inputs": ["Where is my parcel?", "I forgot my password"], "parameters": {"top_k": 1}}
        ok = requests.post(url, json=body, headers={"Authorization": f"Bearer {running.demo_key}"}, timeout=30)
        assert ok.status_code == 200, ok.text
        assert [r[0]["label"] for r in ok.json()] == ["shipping", "account_access"]
        assert int(ok.headers["X-Quota-Remaining"]) < int(ok.headers["X-Quota-Limit"])
        refused = requests.post(url, json=body, timeout=30)
        assert refused.status_code == 401 and set(refused.json()) == {"error"}
    finally:
        running.stop()


def test_repeated_zero_shot_labels_give_the_same_scores_and_the_same_bill(classify, aws):
    meter = Meter(aws.client("dynamodb"), USAGE.local_name)
    auth, start = _auth(), time.time() - 1
    body = {"inputs": "The app freezes when I open it", "parameters": {"candidate_labels": ["bug report", "praise"]}}
    first, again = _post(classify, body, auth), _post(classify, body, auth)  # again: cached vectors
    assert first == again and first[0] == 200 and first[1][0]["label"] == "bug report"
    units = [e.units for e in meter.events(auth["tenant_id"], start, time.time() + 1)]
    assert len(units) == 2 and units[0] == units[1]
