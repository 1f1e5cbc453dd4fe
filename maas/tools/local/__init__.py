"""Local development: API Gateway events from HTTP requests, the local server, in-process invoke."""
