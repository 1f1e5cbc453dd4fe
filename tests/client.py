"""One test client for the Lambda handlers (Chalice's `chalice.test.Client` is the model): build the API Gateway
REST event production sends (maas.tools.local.apigw.make_event), invoke the handler, read the proxy result.

    rerank = Client(rerank_handler, authorizer=AUTH)
    resp = rerank.post("/v1/rerank", json={"query": "q", "documents": ["a"]})
    assert resp.status == 200 and resp.json["results"]
    assert_error(rerank.post("/v1/rerank", json={}), 400, "invalid_request")
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from maas.tools.local.apigw import make_event, response_parts
from maas.tools.local.functions import LambdaContext

_DEFAULT = object()  # "the client's own authorizer context"
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Response:
    """A handler's proxy result: status, headers (multi-value ones joined with ', '), body, and the result itself."""

    status: int
    headers: dict[str, str]
    body: bytes
    result: dict

    @cached_property
    def json(self):
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)


class Client:
    """Calls one handler with API Gateway events, as the authorizer would have passed them (``authorizer``: the
    authorizer's context, None for a request without one)."""

    def __init__(self, handler: Callable[[dict, object], dict], authorizer: dict | None = None):
        self.handler = handler
        self.authorizer = authorizer

    def invoke(self, event: dict) -> Response:
        """The handler's answer to ``event`` (a sample event, or one built by ``request``)."""
        result = self.handler(event, LambdaContext())
        status, headers, body = response_parts(result)
        return Response(status, headers, body, result)

    def request(
        self,
        method: str,
        path: str,
        *,
        json=None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
        authorizer=_DEFAULT,
        request_id: str | None = None,
        resource: str | None = None,
    ) -> Response:
        """METHOD PATH with ``json`` (serialised) or raw ``body`` bytes; a body is sent as JSON unless ``headers``
        say otherwise."""
        data = jsonlib.dumps(json).encode() if json is not None else body
        event = make_event(
            method,
            path,
            query=query,
            headers=headers if headers is not None else (JSON_HEADERS if data is not None else None),
            body=data,
            authorizer=self.authorizer if authorizer is _DEFAULT else authorizer,
            request_id=request_id,
            resource=resource,
        )
        return self.invoke(event)

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> Response:
        return self.request("POST", path, **kwargs)


def assert_error(resp: Response, status: int, code: str | None = None, *, message: str | None = None) -> None:
    """``resp`` is ``status`` in the API's one error shape, with ``code`` and a message containing ``message``."""
    assert resp.status == status, (resp.status, resp.body[:500])
    body = resp.json
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), body
    if code is not None:
        assert body["error"]["code"] == code, body
    if message is not None:
        assert message.lower() in body["error"]["message"].lower(), body["error"]["message"]


def assert_kserve_error(resp: Response, status: int, code: str | None = None, *, message: str | None = None) -> None:
    """``resp`` is ``status`` in the KServe v2 error shape (``{"error": "<message>"}``, the /v2 tensor routes'), with
    the code ``code`` in its X-Error-Code header and a message containing ``message``."""
    assert resp.status == status, (resp.status, resp.body[:500])
    body = resp.json
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    assert resp.headers.get("X-Error-Code"), resp.headers
    if code is not None:
        assert resp.headers["X-Error-Code"] == code, resp.headers
    if message is not None:
        assert message.lower() in body["error"].lower(), body["error"]
