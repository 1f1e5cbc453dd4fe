"""Model build pipelines: from framework weights to verified model packages (needs the `build` extra)."""
