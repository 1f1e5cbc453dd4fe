"""Routes of the usage function: GET /v1/usage (the caller's own usage only), its OpenAPI document.

The tenant comes only from the authorizer's context (maas.metering.charge.caller_from_event); query parameters and
headers other than the range are ignored, so no request can read another tenant's usage.
"""

from __future__ import annotations

import logging
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Query

from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import JSON, create_resolver
from maas.metering.charge import caller_from_event
from maas.metering.reports import MAX_RANGE_DAYS, UsageService
from maas.schemas.errors import ErrorResponse
from maas.schemas.usage import UsageResponse
from maas.settings.names import DEFAULT_MAX_BODY_BYTES

USAGE_PATH = "/v1/usage"
ERRORS = {
    400: {"description": "Invalid date or range", "content": {JSON: {"model": ErrorResponse}}},
    401: {"description": "No API key, or not an authorized one", "content": {JSON: {"model": ErrorResponse}}},
}


def create_app(service: UsageService, logger: logging.Logger) -> APIGatewayRestResolver:
    """The usage function's resolver; call ``resolve(event, context)`` with an API Gateway REST event."""
    # GET only: the body limit just bounds what a stray body costs to parse.
    app = create_resolver(DEFAULT_MAX_BODY_BYTES, logger)

    @app.get(
        USAGE_PATH,
        summary="The caller's own usage, quota and failed requests",
        responses={200: {"description": "Usage"}, **ERRORS},
    )
    def get_usage(
        start: Annotated[
            str | None,
            Query(description="First day, YYYY-MM-DD (UTC). Default: the first day of `end`'s month."),
        ] = None,
        end: Annotated[
            str | None,
            Query(description=f"Last day, inclusive. Default: today (UTC). At most {MAX_RANGE_DAYS} days in all."),
        ] = None,
    ) -> UsageResponse:
        caller = caller_from_event(app.current_event.raw_event)
        report = service.caller_usage(caller, start, end)
        logger.info("usage", extra={"tenant_id": caller.tenant_id, "rows": len(report["data"])})
        return UsageResponse.model_validate(report)

    return app


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return create_app(DOCS_ONLY, DOCS_ONLY)
