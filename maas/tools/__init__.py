"""Never shipped, never imported by the runtime: the CLI, admin, model builds, benchmarks, the local stack, layers."""
