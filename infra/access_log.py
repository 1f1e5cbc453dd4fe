"""The API's access log line (a light module: the cost report reads it without loading the CDK)."""

import json

# Access log line: JSON, no request bodies, no keys (never $context.identity.apiKey).
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "apiId": "$context.apiId",
    "time": "$context.requestTimeEpoch",
    "ip": "$context.identity.sourceIp",
    "method": "$context.httpMethod",
    "resource": "$context.resourcePath",
    "status": "$context.status",
    "latencyMs": "$context.responseLatency",
    "integrationMs": "$context.integrationLatency",
    "responseBytes": "$context.responseLength",
    "tenant": "$context.authorizer.principalId",
    "errorType": "$context.error.responseType",
}
ACCESS_LOG_FORMAT = json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))
