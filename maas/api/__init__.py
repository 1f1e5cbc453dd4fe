"""HTTP layer: request/response schemas, routes and the one error shape. Imports logic, never handlers."""
