"""Fuzzing from the served OpenAPI document (schemathesis) against the suite's `maas serve`, with a key: every
operation, bodies that fit the schema and bodies that do not. Fails on any 5xx, any request unanswered within
REQUEST_TIMEOUT_S (a hang), a status the document does not list for the operation, or a response that does not fit
its documented schema or content type. Prints how many requests it generated.

Bounded for CI: MAAS_FUZZ_EXAMPLES examples per operation and mode (default 30: about 1,100 requests in about a
minute on the 2 shared cores here; 60 gave 2,282 requests in 111 s); raise it for a longer run, e.g.
`MAAS_FUZZ_EXAMPLES=200 pytest -q tests/clients/test_fuzz_openapi.py`.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("MAAS_FUZZ_EXAMPLES", "30"))
REQUEST_TIMEOUT_S = 30.0  # an answer later than this is a hang (API Gateway gives up at 29 s)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_key(served) -> str:
    """A tenant of the fuzz run's own on the plan with the most room: its generated requests spend neither the
    other client tests' quota nor their rate limit."""
    from maas.tenancy.plans import default_plans
    from maas.tools.local.server import new_tenant

    plans = default_plans()
    roomiest = max(plans, key=lambda name: (plans[name].rate_limit, plans[name].monthly_quota))
    return new_tenant(served.moto_url, "OpenAPI fuzzing", roomiest)[1]


def _generate(strategy, call) -> None:
    """``call(case)`` on EXAMPLES cases drawn from ``strategy``."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        call(case)

    try:
        run()
    except Unsatisfiable:
        pass  # nothing to make invalid (an operation without parameters or body): no negative case


def _short(exc: BaseException) -> str:
    """A failure in a line or three: schemathesis' message without the reproduction code."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " | ".join(lines[:4])[:500]


@pytest.mark.slow
def test_fuzzed_requests_from_the_openapi_document_get_no_5xx_no_hang_and_fit_the_document(served, fuzz_key, capsys):
    # GIVEN the document the server serves, and a key
    doc = requests.get(served.base_url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    session = requests.Session()
    auth = {"Authorization": f"Bearer {fuzz_key}"}
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: dict[str, list[str]] = {}
    started = time.monotonic()

    # WHEN each operation gets EXAMPLES requests that fit its schema and EXAMPLES that do not
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            def call(case, label=operation.label):
                sent[label] += 1
                try:
                    response = case.call(base_url=served.base_url, session=session, headers=auth, timeout=60)
                    statuses[response.status_code] += 1
                    case.validate_response(response, checks=CHECKS)
                    if response.elapsed > REQUEST_TIMEOUT_S:
                        raise AssertionError(f"answered after {response.elapsed:.1f} s")
                except Exception as exc:  # collected, so that one run reports every operation's failures
                    failures.setdefault(label, []).append(_short(exc))

            _generate(operation.as_strategy(generation_mode=mode), call)

    # THEN every operation was exercised, and nothing failed
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\nOpenAPI fuzzing: {sum(sent.values())} generated requests over {len(operations)} operations in "
            f"{elapsed:.0f} s; statuses {dict(sorted(statuses.items()))}\n",
            flush=True,
        )
    assert {op.label for op in operations} == set(sent), "an operation was never called"
    assert not failures, "\n".join(
        f"{label}: {len(found)} failures, e.g. {sorted(set(found))[:3]}" for label, found in failures.items()
    )
