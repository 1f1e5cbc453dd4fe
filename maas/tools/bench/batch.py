"""`maas bench batch`: a whole S3 batch job through the real batch_s3 handler vs raw onnxruntime batching.

Same lines, same model package, same threads:

- raw (file order): tokenizers + ``InferenceSession.run`` in batches of 32 in the file's order, each padded to
  its longest input, as a user batching by hand would;
- raw (length-sorted): the same, after sorting the lines by token length (the strongest simple baseline);
- job: ``functions/batch_s3/app.py`` on the S3 event of the uploaded file, on the local emulator (moto): reads
  the file, parses, embeds in length buckets, writes the result parts and the manifest, bills each part
  (metering on). Timed from the event to the handler's return; the upload is not counted.

Rounds are interleaved (the machines are shared and noisy); the best round of each contender is reported,
with the median beside it. Nothing here asserts a number: it measures and reports.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import uuid
from importlib import resources
from itertools import islice

import numpy as np

from maas.inference.package import TOKENIZER_FILE, read_manifest
from maas.inference.sessions import available_cpus, make_session
from maas.settings.names import ENV_CHUNK_LINES, ENV_MODEL_SOURCE, ENV_THREADS
from maas.tools import paths

BATCH = 32
TARGET = 0.8


def bench_lines(count: int) -> list[str]:
    """``count`` lines cycled from the 260 varied evaluation sentences (one word to 400+ words)."""
    text = resources.files("maas.data").joinpath("eval_sentences.txt").read_text(encoding="utf-8")
    base = [line for line in text.splitlines() if line.strip()]
    return [base[i % len(base)] for i in range(count)]


class Raw:
    """Tokenize with padding to the batch's longest, run the session: batches of ``BATCH``."""

    def __init__(self, folder, threads: int):
        from tokenizers import Tokenizer

        manifest = read_manifest(folder)
        self.session = make_session(folder / "model.onnx", manifest, threads)
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(manifest.max_sequence_length or 512)
        self.tokenizer.enable_padding()
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = manifest.outputs[0].name

    def run(self, texts: list[str], sort: bool) -> np.ndarray:
        order = list(range(len(texts)))
        if sort:
            lengths = [sum(e.attention_mask) for e in self.tokenizer.encode_batch(texts)]  # unpadded
            order.sort(key=lengths.__getitem__)
        out = np.empty((len(texts), 384), np.float32)
        it = iter(order)
        while batch := list(islice(it, BATCH)):
            enc = self.tokenizer.encode_batch([texts[i] for i in batch])
            ids = np.array([e.ids for e in enc], np.int64)
            mask = np.array([e.attention_mask for e in enc], np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            out[batch] = self.session.run([self.output], {k: feed[k] for k in self.inputs})[0]
        return out


def run(args) -> int:
    from maas.tables import API_KEYS, TENANTS
    from maas.tenancy.store import TenantStore
    from maas.tools.local.batch import event_for_object
    from maas.tools.local.emulator import AwsEmulator, aws_env, table_env
    from maas.tools.local.functions import LambdaContext, load_handler

    threads = args.threads or available_cpus()
    folder = paths.model_dir(args.model)
    lines = bench_lines(args.lines)
    emulator = AwsEmulator()
    emulator.start()
    try:
        emulator.create_tables()
        s3 = emulator.client("s3")
        bucket = "maas-bench-jobs"
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        tenant = TenantStore(emulator.client("dynamodb"), TENANTS.local_name, API_KEYS.local_name).create_tenant(
            "Bench", "enterprise"
        )
        env = {
            **aws_env(emulator.url),
            **table_env(),
            ENV_MODEL_SOURCE: str(folder),
            ENV_THREADS: str(threads),
            ENV_CHUNK_LINES: str(args.chunk_lines),
        }
        handler = load_handler("batch_s3", env)
        raw = Raw(folder, threads)
        body = "".join(json.dumps(t) + "\n" for t in lines).encode()
        timings: dict[str, list[float]] = {"raw (file order)": [], "raw (length-sorted)": [], "job": []}
        reference = None
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            reference = raw.run(lines, sort=False)
            timings["raw (file order)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            raw.run(lines, sort=True)
            timings["raw (length-sorted)"].append(time.perf_counter() - t0)
            key = f"jobs/{tenant.tenant_id}/bench-{uuid.uuid4().hex[:8]}.jsonl"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            event = event_for_object(s3, bucket, key)
            t0 = time.perf_counter()
            out = handler(event, LambdaContext(function_name="batch_s3", timeout_s=900))
            timings["job"].append(time.perf_counter() - t0)
            if out["jobs"][0]["status"] != "completed":
                raise RuntimeError(f"the bench job did not complete: {out}")
        first_part = out["jobs"][0]["job_id"]
        part = s3.get_object(Bucket=bucket, Key=f"results/{tenant.tenant_id}/{first_part}/part-00000.jsonl")
        # Read the whole body: the emulator serves one request at a time, and an unread stream would hold it.
        got = [json.loads(x) for x in part["Body"].read().splitlines()[:64]]
        vectors = np.array([r["embedding"] for r in got], np.float32)
        agreement = float(np.min(np.sum(vectors * reference[: len(vectors)], axis=1)))
    finally:
        emulator.stop()
    rate = {k: len(lines) / min(v) for k, v in timings.items()}
    median = {k: len(lines) / statistics.median(v) for k, v in timings.items()}
    rows = [f"| {k:<19} | {rate[k]:>15.1f} | {median[k]:>17.1f} |" for k in timings]
    best_raw = max(rate["raw (file order)"], rate["raw (length-sorted)"])
    print(f"`maas bench batch`: {len(lines)} lines, {threads} threads, {args.rounds} rounds, chunk {args.chunk_lines}")
    print()
    print("| contender           | inputs/s (best) | inputs/s (median) |")
    print("|---------------------|----------------:|------------------:|")
    print("\n".join(rows))
    print()
    ratio = rate["job"] / best_raw
    print(f"job / best raw = {ratio:.2f} (target >= {TARGET}): {'PASS' if ratio >= TARGET else 'FAIL'}")
    print(f"job / raw (file order) = {rate['job'] / rate['raw (file order)']:.2f}")
    print(f"agreement (min cosine, first 64 lines, job vs raw): {agreement:.6f}")
    cpu = platform.processor() or platform.machine()
    print(f"CPU {cpu} | {available_cpus()} CPUs | Python {platform.python_version()} | load {os.getloadavg()}")
    return 0
