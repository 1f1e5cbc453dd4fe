"""The API's access log line (a light module: the cost report reads it without loading the CDK).

One line per call, paid at ingestion ($0.50/GB): only what is needed to answer "who called what, how did it end
and how long did it take" and what the metric filters read (apiId, errorType). The function's own latency and the
response size are in Lambda's and API Gateway's metrics already, so they are not repeated per call here.
"""

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
    "tenant": "$context.authorizer.principalId",
    "errorType": "$context.error.responseType",
}
ACCESS_LOG_FORMAT = json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))
