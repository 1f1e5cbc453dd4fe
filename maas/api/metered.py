"""The one metered call: every billed route (embeddings, forwarded or not, classify, images, rerank, v2 infer, the
heavy-model proxy) answers through ``metered``, dispatched without the resolver so that every refusal, body
validation included, is counted apart as a failed request.

The sequence (maas/metering/README.md): who is calling (the authorizer's context) -> parse the body -> admit (the
billing id; an Idempotency-Key reused with another request is a 422 here, before anything runs) -> run (timed),
which calls ``reserve(units)`` once the units are counted and before the model runs (429 if they do not fit) ->
commit: the one usage-event write. An ApiError at any step is the refusal (not billed, its reservation given
back, counted by Billing.failed), anything else a 500 in the one error shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pydantic import BaseModel

from maas.api.resolver import BinaryBody, binary_result, error_result, internal_error_result, proxy_result
from maas.bodies import dumps, json_body
from maas.errors import ApiError
from maas.metering.charge import Billing, Ticket
from maas.tenancy.store import Caller

# run(request, reserve) -> (response body, billable units, billed manifest)
Run = Callable[[object, Callable[[int], None]], tuple[object, int, object]]


def json_parser(model: type[BaseModel], max_body_bytes: int) -> Callable[[dict], BaseModel]:
    """``parse`` for a JSON body: the event's body validated into ``model`` (415, 413 and 400 in the error shape)."""

    def parse(event: dict) -> BaseModel:
        return json_body(event, model, max_body_bytes)

    return parse


def refused(
    billing: Billing,
    caller: Caller | None,
    err: ApiError,
    logger: logging.Logger,
    ticket: Ticket | None = None,
    *,
    kserve: bool = False,
) -> dict:
    """The refusal's proxy result (``kserve``: in KServe v2's error shape); counted apart, never billed."""
    logger.info("request refused", extra={"status": err.status, "code": err.code})
    billing.release(ticket)
    return error_result(err, billing.failed(caller, err, ticket.request_id if ticket else None), kserve=kserve)


def metered(
    billing: Billing,
    event: dict,
    parse: Callable[[dict], object],
    run: Run,
    *,
    logger: logging.Logger,
    name: str = "metered call",
    kserve: bool = False,
) -> dict:
    """Answer one billed request (an API Gateway event) as a proxy result.

    ``parse(event) -> request`` (json_parser for JSON bodies); ``run(request, reserve) -> (response body, billable
    units, billed manifest)``: ``reserve(units)`` before the model runs (a run that cannot count first, a forward to
    a heavy model's endpoint, skips it and is fitted after), the body a dict, already-serialised JSON text or a
    BinaryBody (bytes), the manifest what the usage event records (the version that answered). ``name``: the
    message of the call's DEBUG log line (the route's task). ``kserve``: errors in KServe v2's shape (the /v2 tensor
    routes)."""
    caller, ticket = None, None
    try:
        caller = billing.caller(event)
        request = parse(event)
        ticket = billing.admit(caller, event)
        started = time.perf_counter()
        result, units, billed = run(request, lambda n: billing.reserve(ticket, n))
        compute_ms = (time.perf_counter() - started) * 1000
        headers = billing.commit(ticket, billed, units, compute_ms)
        # DEBUG, not INFO: API Gateway's access log has a line per request and the EMF metrics carry the numbers;
        # formatting this line cost ~0.15 ms, 5% of a single-sentence embeddings call.
        logger.debug(name, extra={"units": units, "ms": round(compute_ms, 2)})
        if isinstance(result, BinaryBody):
            return binary_result(200, result, headers)
        return proxy_result(200, result if isinstance(result, str) else dumps(result), headers)
    except ApiError as err:
        return refused(billing, caller, err, logger, ticket, kserve=kserve)
    except Exception:
        billing.release(ticket)
        logger.exception("unhandled error")
        return internal_error_result(kserve)
