"""Every public request and response model (a leaf: imports nothing else from maas)."""
