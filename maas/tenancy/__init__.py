"""Tenants, API keys (stored hashed), the authorizer's logic, plans."""
