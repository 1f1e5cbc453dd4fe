"""`maas serve` runs batch jobs end to end: POST /v1/jobs, upload to the presigned URL, the bucket's S3 event
(moto -> queue -> batch_s3), progress and results through GET /v1/jobs/{id}."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from maas.tools.local.server import start


@pytest.fixture(scope="module")
def served(model_dir):
    running = start(port=0, model_dir=model_dir)
    yield running
    running.stop()


def _call(running, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        running.base_url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {running.demo_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _finished(running, job_id: str, within_s: float = 60) -> dict:
    """The job as GET /v1/jobs/{id} shows it once completed or failed (or when the time is up)."""
    deadline = time.monotonic() + within_s
    while True:
        _, seen = _call(running, "GET", f"/v1/jobs/{job_id}")
        if seen["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def test_a_local_job_runs_from_upload_to_results(served):
    status, job = _call(served, "POST", "/v1/jobs", {"input_format": "csv"})
    assert status == 201, job
    data = b'input\nthe first text\n"a second, quoted"\n\n'
    upload = urllib.request.Request(job["upload"]["url"], data=data, method="PUT", headers={"Content-Type": "text/csv"})
    with urllib.request.urlopen(upload, timeout=30) as response:
        assert response.status == 200
    seen = _finished(served, job["id"])
    assert seen["status"] == "completed", seen
    assert seen["progress"] == {"lines": 3, "succeeded": 2, "failed": 1, "parts": 1}
    with urllib.request.urlopen(seen["results"]["part_urls"][0], timeout=30) as response:
        lines = [json.loads(x) for x in response.read().splitlines()]
    assert [r["line"] for r in lines] == [2, 3, 4] and "error" in lines[2]
    status, missing = _call(served, "GET", "/v1/jobs/job_000000000000000000000000")
    assert status == 404 and missing["error"]["code"] == "job_not_found"


def test_a_local_job_with_an_empty_upload_fails_and_an_unknown_model_is_refused(served):
    status, refused = _call(served, "POST", "/v1/jobs", {"model": "no-such-model"})
    assert status == 404 and refused["error"]["code"] == "model_not_found"
    status, job = _call(served, "POST", "/v1/jobs", {"input_format": "jsonl"})
    assert status == 201, job
    upload = urllib.request.Request(
        job["upload"]["url"], data=b"", method="PUT", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(upload, timeout=30) as response:
        assert response.status == 200
    seen = _finished(served, job["id"])
    assert (seen["status"], seen["error"]) == ("failed", "empty_input: the file has no input lines"), seen
    assert seen["stalled"] is False and "results" not in seen
