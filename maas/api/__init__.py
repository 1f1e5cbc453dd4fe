"""HTTP only: the one route table (routes.py), the one metered call (metered.py), the resolver, gateway responses,
the OpenAPI document, and one routes file per function. Imports tasks and the logic below, never handlers."""
