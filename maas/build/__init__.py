"""Model build pipelines: from framework weights to verified model packages (needs the `build` extra)."""

# Packages `maas models build NAME` can make, and the precision each is built in.
BUILDS = {"all-minilm-l6-v2": "int8", "all-minilm-l6-v2-fp32": "fp32"}
