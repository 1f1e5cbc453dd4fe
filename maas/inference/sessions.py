"""ONNX Runtime sessions: threads that follow the CPUs this function really has, full graph optimisation."""

from __future__ import annotations

import os
from pathlib import Path

from maas.inference.package import Manifest


def available_cpus() -> int:
    """CPUs this process may really use: affinity mask, then a cgroup v2 quota if one is set."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def make_session(model_path: Path, manifest: Manifest, threads: int | None = None, providers: list[str] | None = None):
    """An InferenceSession with full graph optimisation and the manifest's session config."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or available_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    for key, value in manifest.session_config.items():
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(model_path), options, providers=providers or ["CPUExecutionProvider"])
