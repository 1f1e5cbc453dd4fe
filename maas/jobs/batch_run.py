"""The worker's side of a batch (maas.jobs.batches): validate the whole input file, then answer its request lines
part by part on the jobs engine, then write the output and error files.

- Validation reads every line before any runs (OpenAI's rules: each line a JSON object with a unique `custom_id`,
  `method` POST and `url` equal to the batch's endpoint; at most MAX_BATCH_LINES lines and MAX_BATCH_FILE_BYTES
  bytes; not empty). A file that breaks any rule fails the batch with `errors.data[]` (line and reason); nothing
  runs and nothing is billed.
- A part is BATCH_PART_LINES lines at the job's cursor: the lines are answered together (one length-bucketed model
  run), billed as one usage event under the part's deterministic id (the same id on every retry: billed once), at
  the plan's batch price (the event is marked batch), written to results/{tenant}/{job}/part-NNNNN[.errors].jsonl,
  then the cursor advances by conditional update. Parts run in order; a cancel or the end of the completion
  window is noticed at the next part boundary, so exactly the lines written are billed and in the output file.
- Each output line is OpenAI's `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`;
  `body` is what the synchronous route answers for the line's body, a refused line's body the route's error
  (status 4xx, in the error file, never billed).
- Who answers: /v1/embeddings with the worker's own packages (`embeddings_answerer`); any other endpoint with an
  answerer the function injects (`BatchWorker.answerers`: endpoint -> a factory, called once, when the first batch
  for that endpoint runs). This layer knows no task service: the function's layer builds them (maas.api.batch_tasks).
  A part whose lines are billed under several models (a trained classifier and zero-shot lines) is one usage event
  per model, all reserved before any is written, under the part's id and `.1`, `.2`, ... in model order.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from maas.bodies import validation_error
from maas.errors import ApiError
from maas.inference.catalog import resolve_served
from maas.inference.embedder import encode_vectors
from maas.inference.validation import check_dimensions, text_list, tokenize_checked
from maas.jobs import batches as b
from maas.jobs.files import FileStore
from maas.jobs.records import iter_lines, strip_eol
from maas.jobs.store import FAILED, Job, ObjectRef
from maas.metering.charge import Ticket
from maas.schemas.batches import BatchInputLine
from maas.schemas.embeddings import EmbeddingsRequest
from maas.settings.names import DEFAULT_MAX_INPUTS
from maas.tenancy.store import Caller

# Lines per part: the unit of billing, of writing and of a cancel's reach. Small enough that a cancel lands within
# a fraction of a second; large enough that a part's fixed cost (a usage event, two puts, two updates) stays small.
BATCH_PART_LINES = 100
RESERVE_MS = 10_000


@dataclass
class Answer:
    """One line's answer: the synchronous route's status and body, its billable units (0 when refused), and what
    it is billed under when not the part's model (a classify line: the trained classifier, or zero-shot)."""

    status: int
    body: dict | list
    units: int = 0
    error: ApiError | None = None
    billed: object | None = None


def refusal(err: ApiError) -> Answer:
    return Answer(err.status, err.body(), 0, err)


# answer(bodies) -> (one Answer per body, the manifest billing records, compute milliseconds)
Answerer = Callable[[list[dict]], tuple[list[Answer], object, float]]


def embeddings_answerer(embedder, manifest, max_inputs: int = DEFAULT_MAX_INPUTS) -> Answerer:
    """POST /v1/embeddings for many bodies at once: each body checked as the route checks it, every text of the
    good ones embedded in one run (length-bucketed), each answer shaped exactly as the route's."""

    def answer(bodies: list[dict]) -> tuple[list[Answer], object, float]:
        answers: list[Answer | None] = [None] * len(bodies)
        pending = []
        for i, body in enumerate(bodies):
            try:
                request = EmbeddingsRequest.model_validate(body)
                resolve_served(request.model, manifest)
                check_dimensions(request.dimensions, manifest)
                texts = text_list(request.input, "input", max_inputs)
                pending.append((i, request, texts, tokenize_checked(embedder, texts, request.truncate, "input")))
            except ValidationError as exc:
                answers[i] = refusal(validation_error(exc.errors()))
            except ApiError as err:
                answers[i] = refusal(err)
        started = time.perf_counter()
        if pending:
            result = embedder.embed([t for p in pending for t in p[2]], [e for p in pending for e in p[3]])
        compute_ms = (time.perf_counter() - started) * 1000
        k = 0
        for i, request, texts, _ in pending:
            vectors, counts = result.vectors[k : k + len(texts)], result.token_counts[k : k + len(texts)]
            k += len(texts)
            tokens = int(sum(counts))
            answers[i] = Answer(
                200,
                {
                    "object": "list",
                    "data": [
                        {"object": "embedding", "index": n, "embedding": v}
                        for n, v in enumerate(encode_vectors(vectors, request.encoding_format))
                    ],
                    "model": manifest.name,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
                tokens,
            )
        return answers, manifest, compute_ms

    return answer


def service_answerer(schema, run) -> Answerer:
    """A synchronous route's answer for many bodies, one at a time: each body validated by the route's ``schema``,
    then ``run(request, reserve)`` (the route's own: -> (body, units, billed)) without a per-line quota check (the
    part's units are reserved together before they are billed)."""

    def answer(bodies: list[dict]) -> tuple[list[Answer], object, float]:
        answers, started = [], time.perf_counter()
        for body in bodies:
            try:
                result, units, billed = run(schema.model_validate(body), None)
                answers.append(Answer(200, result, units, billed=billed))
            except ValidationError as exc:
                answers.append(refusal(validation_error(exc.errors())))
            except ApiError as err:
                answers.append(refusal(err))
        return answers, None, (time.perf_counter() - started) * 1000

    return answer


def answerer_for(worker, endpoint: str) -> Answerer | None:
    """How the worker answers ``endpoint``'s lines; None where it cannot (the batch fails, nothing billed)."""
    if endpoint == "/v1/embeddings":
        return embeddings_answerer(worker.embedder, worker.manifest)
    built = worker.built_answerers
    if endpoint not in built and endpoint in worker.answerers:
        built[endpoint] = worker.answerers[endpoint]()
    return built.get(endpoint)


# ---------------------------------------------------------------------------------------------- validation


def _problem(code: str, message: str, line: int | None = None, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line}


def validate_lines(lines: Iterator[bytes], endpoint: str) -> tuple[list[dict], int, str | None]:
    """(problems, request lines, the first line's model) of a batch input file given as its raw lines."""
    problems, seen, count, model, number = [], set(), 0, None, 0
    for raw in lines:
        number += 1
        text = strip_eol(raw)
        if not text.strip():
            continue  # blank lines (a trailing newline, say) are no requests
        count += 1
        if count > b.MAX_BATCH_LINES:
            problems.append(
                _problem("too_many_requests", f"A batch may hold at most {b.MAX_BATCH_LINES} requests.", number)
            )
            break
        try:
            value = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(_problem("invalid_json_line", f"The line is not valid JSON: {exc}", number))
        else:
            problems += _line_problems(value, number, endpoint, seen)
            if model is None and isinstance(value, dict) and isinstance(value.get("body"), dict):
                found = value["body"].get("model")
                model = found if isinstance(found, str) else None
        if len(problems) >= b.MAX_REPORTED_ERRORS:
            break
    if count == 0 and not problems:
        problems.append(_problem("empty_file", "The input file has no request lines."))
    return problems, count, model


def _line_problems(value, number: int, endpoint: str, seen: set[str]) -> list[dict]:
    try:
        line = BatchInputLine.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        code = {"method": "invalid_method", "url": "invalid_url", "custom_id": "invalid_custom_id"}.get(
            str(first["loc"][0]) if first["loc"] else "", "invalid_request"
        )
        where = f"'{field}': " if field else ""
        return [_problem(code, f"Line {number}: {where}{first['msg']}.", number, field)]
    if line.url != endpoint:
        return [
            _problem(
                "mismatched_endpoint",
                f"Line {number}: url '{line.url}' is not the batch's endpoint '{endpoint}'; every line of a batch "
                "goes to its one endpoint.",
                number,
                "url",
            )
        ]
    if line.custom_id in seen:
        return [
            _problem(
                "duplicate_custom_id",
                f"Line {number}: custom_id '{line.custom_id}' appears on an earlier line; each must be unique.",
                number,
                "custom_id",
            )
        ]
    seen.add(line.custom_id)
    return []


# ---------------------------------------------------------------------------------------------- the run


def part_keys(results_prefix: str, job: Job, part: int) -> tuple[str, str]:
    """The part's output lines and its error lines."""
    base = f"{results_prefix}{job.tenant_id}/{job.job_id}/part-{part:05d}"
    return f"{base}.jsonl", f"{base}.errors.jsonl"


def output_file_ids(job_id: str) -> tuple[str, str]:
    """The output and error files' ids: derived from the job, so a retried finalization rewrites the same files."""
    digest = hashlib.sha256(job_id.encode()).hexdigest()
    return f"file-{digest[:24]}", f"file-{digest[24:48]}"


def run_batch(worker, ref: ObjectRef, job: Job, caller: Caller, context=None):
    """Go on with the batch ``job`` (running, bound to ``ref``) from its cursor. Returns the worker's JobOutcome."""
    from maas.jobs.worker import Concurrent, JobFailed, JobOutcome, request_id

    store = b.BatchStore(worker.jobs)
    files = FileStore(worker.s3, ref.bucket)
    record = store.get(job.tenant_id, job.job_id)
    answer = answerer_for(worker, record.endpoint)

    def end(status: str, errors: list[dict] | None = None) -> JobOutcome:
        current = store.get(job.tenant_id, job.job_id)
        _finalize(worker, store, files, current, status, errors)
        worker.logger.info("batch ended", extra={"job_id": job.job_id, "status": status, "lines": current.job.lines})
        return JobOutcome(job.job_id, job.tenant_id, status)

    if record.phase == b.VALIDATING:
        if record.cancel_requested:
            return end(b.CANCELLED)
        if answer is None:
            problem = _problem("unsupported_endpoint", f"The batch workers do not answer {record.endpoint}.")
            return end(FAILED, [problem])
        problems, total, model = validate_lines(_read(worker, ref, 0)[1], record.endpoint)
        if problems:
            return end(FAILED, problems)
        # the first line's model; without one, the route's default: the worker's package for embeddings, none named
        # for the others (classify's default differs between trained and zero-shot lines)
        store.validated(job, total, model or (worker.manifest.name if record.endpoint == "/v1/embeddings" else ""))
    done, last_ms = 0, 0.0
    while True:
        record = store.get(job.tenant_id, job.job_id)
        if record.cancel_requested:
            return end(b.CANCELLED)
        if time.time() > record.times.get("expires_at", float("inf")):
            return end(b.EXPIRED)
        t0 = time.perf_counter()
        try:
            finished = _one_part(worker, ref, record.job, caller, answer, request_id)
        except Concurrent:
            return JobOutcome(job.job_id, job.tenant_id, "running", done, note="advanced elsewhere")
        except JobFailed as exc:
            code, _, message = str(exc).partition(": ")
            return end(FAILED, [_problem(code, message or code)])
        done += 1
        last_ms = (time.perf_counter() - t0) * 1000
        if finished:
            return end("completed")
        out_of_parts = worker.max_chunks and done >= worker.max_chunks
        remaining = context.get_remaining_time_in_millis() if context is not None else None
        if out_of_parts or (remaining is not None and remaining < 2 * last_ms + RESERVE_MS):
            worker._continue(ref)
            return JobOutcome(job.job_id, job.tenant_id, "running", done, continued=True)


def _read(worker, ref: ObjectRef, offset: int, limit: int | None = None) -> tuple[int, Iterator[bytes]]:
    """(bytes from ``offset`` to the end, the raw lines there): (0, nothing) at the end or in an empty file."""
    try:
        response = worker._get(ref, offset)
    except worker.s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":
            return 0, iter(())
        raise
    body = response["Body"]

    def lines() -> Iterator[bytes]:
        try:
            yield from iter_lines(body, limit)
        finally:
            body.close()

    return int(response["ContentLength"]), lines()


def _one_part(worker, ref: ObjectRef, job: Job, caller: Caller, answer: Answerer, request_id) -> bool:
    """Answer, bill, write and count the part at the job's cursor. Returns whether the file is done."""
    from maas.jobs.worker import Concurrent, JobFailed

    size, lines = _read(worker, ref, job.offset, BATCH_PART_LINES)
    raws, consumed, requests = [], 0, []
    for raw in lines:
        raws.append(raw)
        consumed += len(raw)
        text = strip_eol(raw)
        if text.strip():
            requests.append(BatchInputLine.model_validate_json(text))  # validated before the first part
    if not raws:
        return True
    answers, billed, compute_ms = answer([r.body for r in requests]) if requests else ([], None, 0.0)
    units = sum(a.units for a in answers)
    rid = request_id(ref.bucket, ref.key, ref.version, str(job.parts), prefix="batch")
    try:
        _bill(worker.billing, caller, rid, answers, billed, compute_ms)
    except Exception as exc:
        if getattr(exc, "status", None) == 429:
            raise JobFailed(f"quota_exceeded: {exc}") from None
        raise
    out, errors = [], []
    for n, (request, a) in enumerate(zip(requests, answers, strict=True)):
        line_id = hashlib.sha256(f"{job.job_id}\n{job.lines + n}".encode()).hexdigest()[:24]
        error = None if a.error is None else {"code": a.error.code, "message": a.error.message}
        line = {
            "id": f"batch_req_{line_id}",
            "custom_id": request.custom_id,
            "response": {"status_code": a.status, "request_id": f"{rid}.{n}", "body": a.body},
            "error": error,
        }
        (out if a.error is None else errors).append(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
    output_key, error_key = part_keys(worker.results_prefix, job, job.parts)
    for key, found in ((output_key, out), (error_key, errors)):
        worker.s3.put_object(
            Bucket=ref.bucket,
            Key=key,
            Body="".join(line + "\n" for line in found).encode("utf-8"),
            ContentType="application/jsonl",
        )
    if not worker.jobs.advance(job, len(raws), job.offset + consumed, len(out), len(errors), units, []):
        raise Concurrent()
    return consumed >= size


def _bill(billing, caller: Caller, rid: str, answers: list[Answer], billed, compute_ms: float) -> None:
    """One usage event per model the part's answered lines are billed under (the first under ``rid``, the others
    ``rid.1``, ... in model order), each at the batch price; every one reserved before any is written, so a part
    over the quota bills nothing. The compute time is shared by units."""
    groups: dict[tuple, list] = {}
    for a in answers:
        if a.units:
            manifest = a.billed if a.billed is not None else billed
            groups.setdefault((manifest.name, manifest.version, manifest.task), [manifest, 0])[1] += a.units
    if not groups:
        return
    if len(groups) == 1:
        manifest, units = next(iter(groups.values()))
        billing.charge(caller, rid, manifest, units, compute_ms, None, batch=True)
        return
    total = sum(units for _, units in groups.values())
    tickets = []
    try:
        for n, key in enumerate(sorted(groups)):
            manifest, units = groups[key]
            ticket = Ticket(caller, rid if n == 0 else f"{rid}.{n}", "", batch=True)
            billing.reserve(ticket, units)
            tickets.append((ticket, manifest, units))
    except Exception:
        for ticket, _, _ in tickets:
            billing.release(ticket)
        raise
    for ticket, manifest, units in tickets:
        billing.commit(ticket, manifest, units, compute_ms * units / total)


def _finalize(worker, store: b.BatchStore, files: FileStore, record: b.BatchRecord, status: str, errors) -> None:
    """Write the output and error files from the parts done, then end the batch with ``status``."""
    job = record.job
    store.finalizing(job)
    output_id, error_id = output_file_ids(job.job_id)

    def chunks(which: int) -> Iterator[bytes]:
        for part in range(job.parts):
            key = part_keys(worker.results_prefix, job, part)[which]
            yield worker.s3.get_object(Bucket=files.bucket, Key=key)["Body"].read()

    written = [
        files.assemble(job.tenant_id, file_id, f"{record.id}_{name}.jsonl", "batch_output", chunks(which))
        for which, (file_id, name) in enumerate(((output_id, "output"), (error_id, "error")))
    ]
    store.finish(job, status, *(w.id if w else None for w in written), errors=errors)
