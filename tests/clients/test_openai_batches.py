"""OpenAI's Batch API with the stock openai SDK against `maas serve`: files.create, batches.create, batches.retrieve
(polling), files.content, batches.cancel, batches.list; every answer compared with the synchronous route's, and the
bill read from the usage events (priced at the plan's batch price)."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import boto3
import numpy as np
import openai
import pytest

from maas.api.batches import MAX_FILE_BYTES
from maas.jobs.batches import MAX_BATCH_LINES
from maas.metering.export import invoice_lines
from maas.metering.store import Meter
from maas.tables import USAGE
from maas.tenancy.plans import default_plans
from maas.tools import paths
from tests.clients.conftest import CLASSIFIER, EMBEDDING_MODEL

SENTENCES = (paths.REPO_ROOT / "maas" / "data" / "eval_sentences.txt").read_text().splitlines()
TERMINAL = ("completed", "failed", "cancelled", "expired")


def texts(n: int, salt: str = "") -> list[str]:
    """``n`` distinct sentences of varied length (so the parts hold varied token counts), at most 16 words: the model's
    compute is the same per token in a batch and a call, and short lines keep the suite's time down."""
    return [" ".join(SENTENCES[i % len(SENTENCES)].split()[: 4 + i % 13]) + f" {salt}{i}" for i in range(n)]


def jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def embedding_lines(inputs: list[str]) -> list[dict]:
    return [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": EMBEDDING_MODEL, "input": t},
        }
        for i, t in enumerate(inputs)
    ]


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.base_url}/v1", api_key=served.key, max_retries=0)


@pytest.fixture(scope="module")
def ledger(served):
    """The usage events of the suite's tenant (`maas serve` points the process's AWS clients at its moto server)."""
    tenant = served.get("/v1/usage").json()["tenant_id"]
    meter = Meter(boto3.client("dynamodb"), USAGE.local_name)

    def batch_events() -> dict[str, object]:
        return {e.request_id: e for e in meter.events(tenant, 0, time.time() + 60) if e.batch}

    return tenant, meter, batch_events


def wait(client: openai.OpenAI, batch_id: str, until=lambda b: b.status in TERMINAL, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while True:
        batch = client.batches.retrieve(batch_id)
        if until(batch):
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}: {batch.request_counts}"
        time.sleep(0.05)


def output_lines(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def test_a_1000_line_embeddings_batch_answers_every_line_as_the_route_does_at_the_batch_price(served, client, ledger):
    # GIVEN a 1,000-line embeddings file and the tenant's batch usage so far
    inputs = texts(1000, "b")
    _, _, batch_events = ledger
    before = batch_events()
    uploaded = client.files.create(file=("embed.jsonl", jsonl(embedding_lines(inputs))), purpose="batch")
    assert (uploaded.purpose, uploaded.filename, uploaded.status) == ("batch", "embed.jsonl", "processed")

    # WHEN a batch runs it, polled with batches.retrieve
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h", metadata={"run": "ci"}
    )
    assert batch.status == "validating" and batch.metadata == {"run": "ci"}
    done = wait(client, batch.id)

    # THEN it completed with every custom_id once, each body the synchronous answer within 1e-6
    assert done.status == "completed", done.errors
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (1000, 1000, 0)
    assert done.error_file_id is None and done.completed_at >= done.in_progress_at >= done.created_at
    lines = output_lines(client, done.output_file_id)
    assert sorted(line["custom_id"] for line in lines) == sorted(f"req-{i}" for i in range(1000))
    assert all(line["error"] is None and line["response"]["status_code"] == 200 for line in lines)
    by_id = {line["custom_id"]: line["response"]["body"] for line in lines}
    tokens = 0
    for start in range(0, 1000, 250):
        sync = served.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": inputs[start : start + 250]})
        assert sync.status_code == 200, sync.text
        for k, expected in enumerate(sync.json()["data"]):
            body = by_id[f"req-{start + k}"]
            assert (body["object"], body["model"], len(body["data"])) == ("list", EMBEDDING_MODEL, 1)
            np.testing.assert_allclose(body["data"][0]["embedding"], expected["embedding"], atol=1e-6)
            assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] > 0
            tokens += body["usage"]["total_tokens"]
        assert sync.json()["usage"]["total_tokens"] == sum(
            by_id[f"req-{start + k}"]["usage"]["total_tokens"] for k in range(len(sync.json()["data"]))
        )
    assert done.usage.input_tokens == tokens

    # AND usage grew by exactly its tokens, as batch usage, priced at the plan's batch price
    new = [e for rid, e in batch_events().items() if rid not in before]
    assert sum(e.units for e in new) == tokens and all(e.task == "embeddings" for e in new)
    plan = default_plans()["pro"]
    [line] = invoice_lines("t", plan, new)
    assert line.batch and line.channel == "batch" and plan.batch_discount == 0.5
    assert line.unit_price_per_million_usd == Decimal("0.02") * Decimal("0.5")


@pytest.mark.parametrize(
    "name, content, code, line",
    [
        (
            "wrong url",
            lambda: jsonl(
                [*embedding_lines(["a"]), {**embedding_lines(["b"])[0], "custom_id": "x", "url": "/v1/rerank"}]
            ),
            "mismatched_endpoint",
            2,
        ),
        (
            "duplicate custom_id",
            lambda: jsonl(embedding_lines(["a", "b"]) + embedding_lines(["c"])),
            "duplicate_custom_id",
            3,
        ),
        ("not JSON", lambda: jsonl(embedding_lines(["a"])) + b"{not json\n", "invalid_json_line", 2),
        ("empty", lambda: b"", "empty_file", None),
        (
            "over the limit",
            lambda: b"".join(
                b'{"custom_id":"%d","method":"POST","url":"/v1/embeddings","body":{"input":"a"}}\n' % i
                for i in range(MAX_BATCH_LINES + 1)
            ),
            "too_many_requests",
            MAX_BATCH_LINES + 1,
        ),
    ],
)
def test_a_bad_file_fails_the_batch_with_openai_errors_and_bills_nothing(client, ledger, name, content, code, line):
    # GIVEN a file that breaks one of the batch rules
    _, _, batch_events = ledger
    before = batch_events()
    uploaded = client.files.create(file=(f"{name}.jsonl", content()), purpose="batch")
    # WHEN a batch is made of it
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    done = wait(client, batch.id)
    # THEN it failed, saying which line and why, with no output and nothing billed
    assert done.status == "failed" and done.failed_at is not None
    assert done.errors.data[0].code == code and done.errors.data[0].line == line, done.errors
    assert done.errors.data[0].message
    assert done.output_file_id is None and done.request_counts.completed == 0
    assert batch_events().keys() == before.keys()


def test_a_batch_cancelled_halfway_bills_exactly_the_lines_in_its_output(client, ledger):
    # GIVEN a large batch that has started answering
    _, _, batch_events = ledger
    before = batch_events()
    uploaded = client.files.create(file=("cancel.jsonl", jsonl(embedding_lines(texts(3000, "c")))), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    wait(client, batch.id, until=lambda b: b.request_counts.completed > 0 or b.status in TERMINAL)
    # WHEN it is cancelled
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = wait(client, batch.id)
    # THEN it stopped at a part boundary: the output holds exactly the lines billed
    assert done.status == "cancelled" and done.cancelled_at >= done.cancelling_at
    lines = output_lines(client, done.output_file_id)
    assert 0 < len(lines) == done.request_counts.completed < 3000
    billed = sum(e.units for rid, e in batch_events().items() if rid not in before)
    assert billed == sum(line["response"]["body"]["usage"]["total_tokens"] for line in lines) == done.usage.input_tokens
    # AND cancelling again answers the cancelled batch, unchanged
    again = client.batches.cancel(batch.id)
    assert (again.status, again.request_counts, again.output_file_id) == (
        "cancelled",
        done.request_counts,
        done.output_file_id,
    )


def test_batches_list_pages_with_after_and_limit_and_files_are_the_callers_own(served, client):
    first = client.files.create(file=("one.jsonl", jsonl(embedding_lines(["x"]))), purpose="batch")
    made = [
        client.batches.create(input_file_id=first.id, endpoint="/v1/embeddings", completion_window="24h").id
        for _ in range(3)
    ]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2] and page.has_more
    rest = client.batches.list(limit=2, after=page.data[-1].id)
    assert rest.data[0].id == made[0]
    everything = [b.id for b in client.batches.list(limit=2)]  # the SDK follows has_more and last_id
    assert everything[:3] == made[::-1] and len(everything) == len(set(everything))
    for batch_id in made:
        assert wait(client, batch_id).status == "completed"
    with pytest.raises(openai.ConflictError):  # a batch that ended cannot be cancelled
        client.batches.cancel(made[0])
    # the files API: retrieve, list, delete; another tenant sees none of it
    assert client.files.retrieve(first.id).bytes == len(jsonl(embedding_lines(["x"])))
    assert first.id in {f.id for f in client.files.list(purpose="batch")}
    assert client.files.delete(first.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_" + "0" * 24)
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("x.jsonl", b"{}"), purpose="fine-tune")


def test_a_file_over_one_requests_limit_goes_up_in_parts_with_the_sdks_uploads_api(client):
    # GIVEN a 5 MiB batch file (over the 4 MiB a single POST /v1/files takes) and a small one
    big = jsonl(embedding_lines(["x" * 1000] * 5000))[: 5 * 1024 * 1024]
    assert len(big) > MAX_FILE_BYTES
    with pytest.raises(openai.APIStatusError) as refused:
        client.files.create(file=("big.jsonl", big), purpose="batch")
    assert refused.value.status_code == 413
    small = jsonl(embedding_lines(texts(40, "u")))

    # WHEN each goes up with uploads.upload_file_chunked, in parts under the limit
    whole = client.uploads.upload_file_chunked(
        file=big, filename="big.jsonl", bytes=len(big), mime_type="text/jsonl", purpose="batch", part_size=2 << 20
    )
    parted = client.uploads.upload_file_chunked(
        file=small, filename="small.jsonl", bytes=len(small), mime_type="text/jsonl", purpose="batch", part_size=1000
    )

    # THEN each is a file with the exact bytes, in order, and a batch runs on the small one
    assert whole.status == "completed" and whole.file.bytes == len(big)
    assert client.files.content(whole.file.id).content == big
    assert parted.status == "completed" and client.files.content(parted.file.id).content == small
    batch = client.batches.create(input_file_id=parted.file.id, endpoint="/v1/embeddings", completion_window="24h")
    done = wait(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 40
    # AND parts of a finished upload, and a size that does not add up, are refused
    with pytest.raises(openai.ConflictError):
        client.uploads.parts.create(upload_id=parted.id, data=b"more")
    short = client.uploads.create(bytes=10, filename="s.jsonl", mime_type="text/jsonl", purpose="batch")
    part = client.uploads.parts.create(upload_id=short.id, data=b"12345")
    with pytest.raises(openai.BadRequestError):
        client.uploads.complete(upload_id=short.id, part_ids=[part.id])


def task_lines(url: str, bodies: list[dict]) -> list[dict]:
    return [{"custom_id": f"{url[4:]}-{i}", "method": "POST", "url": url, "body": b} for i, b in enumerate(bodies)]


def run_batch(client: openai.OpenAI, endpoint: str, lines: list[dict]):
    uploaded = client.files.create(file=(f"{endpoint[4:]}.jsonl", jsonl(lines)), purpose="batch")
    done = wait(client, client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h").id)
    assert done.status == "completed", done.errors
    return (
        done,
        {x["custom_id"]: x for x in output_lines(client, done.output_file_id)},
        output_lines(client, done.error_file_id),
    )


def sync_usage(served, ledger, bodies: list[dict], path: str) -> tuple[list, dict]:
    """Each body through the synchronous route: the answers (status, body) and the usage they billed, per
    (model, task) — read from the tenant's events that are not batch."""
    tenant, meter, _ = ledger

    def billed() -> dict:
        return {e.request_id: e for e in meter.events(tenant, 0, time.time() + 60) if not e.batch}

    before = billed()
    answers = []
    for body in bodies:
        response = served.post(path, json=body)
        answers.append((response.status_code, response.json()))
    units: dict = {}
    for rid, e in billed().items():
        if rid not in before:
            units[(e.model, e.task)] = units.get((e.model, e.task), 0) + e.units
    return answers, units


def batch_units(new_events) -> dict:
    units: dict = {}
    for e in new_events:
        units[(e.model, e.task)] = units.get((e.model, e.task), 0) + e.units
    return units


def test_classify_and_rerank_batches_answer_each_line_as_the_route_does_billed_in_its_units(served, client, ledger):
    """The maas extension: `/v1/classify` (a trained head, named and by default, and zero-shot) and `/v1/rerank`
    as a batch's endpoint; each body equals the synchronous route's, refused lines go to the error file unbilled,
    and the batch usage per model and task equals what the same calls bill synchronously."""
    # GIVEN classify lines of all three kinds (and two the route refuses) and rerank lines (and one refused)
    sentences = texts(36, "k")
    labels = ["billing", "bug report", "praise"]
    classify = (
        [{"inputs": t} for t in sentences[:12]]
        + [
            {"model": "ticket-intents", "inputs": [t, sentences[0]], "parameters": {"top_k": 2}}
            for t in sentences[12:18]
        ]
        + [{"inputs": t, "parameters": {"candidate_labels": labels}} for t in sentences[18:30]]
        + [{"inputs": [t], "parameters": {"candidate_labels": labels, "multi_label": True}} for t in sentences[30:34]]
        + [{"model": "no-such-classifier", "inputs": "x"}, {"inputs": []}]
    )
    rerank = [
        {"model": EMBEDDING_MODEL, "query": sentences[i], "documents": sentences[i + 1 : i + 6], "top_n": 3}
        for i in range(20)
    ] + [
        {"query": sentences[0], "documents": sentences[1:4], "return_documents": True},
        {"query": "x", "documents": []},
    ]
    _, _, batch_events = ledger

    for path, bodies, refused in (("/v1/classify", classify, 2), ("/v1/rerank", rerank, 1)):
        before = batch_events()
        # WHEN the lines run as a batch, and each body through the synchronous route
        done, out, errors = run_batch(client, path, task_lines(path, bodies))
        new = [e for rid, e in batch_events().items() if rid not in before]
        sync, sync_units = sync_usage(served, ledger, bodies, path)

        # THEN every answered body is the route's, every refused line is the route's error, in the error file
        assert (done.request_counts.total, done.request_counts.failed) == (len(bodies), refused)
        assert len(out) == len(bodies) - refused and len(errors) == refused
        by_id = {**out, **{x["custom_id"]: x for x in errors}}
        for i, (status, body) in enumerate(sync):
            line = by_id[f"{path[4:]}-{i}"]
            assert line["response"]["status_code"] == status, (path, i, line)
            if status == 200:
                assert line["error"] is None and line["response"]["body"] == body, (path, i)
            else:
                assert line["response"]["body"]["error"] == body["error"]
                assert line["error"] == {"code": body["error"]["code"], "message": body["error"]["message"]}
        # AND the batch bills, per model and task, exactly the units the same calls bill, at the batch price
        assert batch_units(new) == sync_units and all(e.batch for e in new)
        assert done.usage.input_tokens == sum(sync_units.values())
        expected = {(CLASSIFIER, "classify"), (EMBEDDING_MODEL, "classify")} if path == "/v1/classify" else None
        assert set(sync_units) == (expected or {(EMBEDDING_MODEL, "rerank")})
