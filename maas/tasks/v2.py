"""Open Inference Protocol (KServe v2) REST for the served model package: health, model metadata, tensor infer.

Tensors travel as KServe's JSON: `{"name", "datatype", "shape", "data"}` with `data` flat in row-major order
(a nested, rectangular list is accepted too). The model's inputs and outputs, their datatypes and shapes come
from the package's manifest; dynamic dimensions are -1, as KServe writes them. Errors are raised as ApiError; the
routes (maas.api.v2, maas.api.heavy) answer them in the protocol's shape, `{"error": "<message>"}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maas.errors import InvalidRequest, NotFound
from maas.inference.package import BilledUnder, Manifest
from maas.inference.validation import check_token_budget
from maas.schemas.v2 import InferRequest, InferTensor
from maas.settings import names as c
from maas.tasks.embeddings import EmbeddingsService, Reserve

# Billed per token the model runs, like /v1/embeddings: the non-padding positions (the attention mask's ones), at
# least one per row (a row that is all padding still runs). Recorded under this task, priced by the plans' family of
# the same name.
TASK = "v2-infer"
PLATFORM = "onnxruntime_onnx"
# Where the binary tensor data extension is not served (a heavy model's endpoint), what to tell tritonclient.
BINARY_REFUSAL = (
    "The binary tensor data extension is not supported on this route; send JSON tensors (tritonclient: "
    "InferInput.set_data_from_numpy(array, binary_data=False) and outputs=[InferRequestedOutput(name, "
    "binary_data=False)])."
)
DTYPES = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32, "FP64": np.float64, "BOOL": np.bool_}
# The binary tensor data extension (Triton's): a tensor's values as raw little-endian bytes, row-major, after a
# JSON part whose length in bytes this header gives (on the request and on a response with binary outputs).
BINARY_HEADER = "Inference-Header-Content-Length"
BINARY_DTYPES = {"INT64": "<i8", "INT32": "<i4", "FP32": "<f4", "FP64": "<f8", "BOOL": "|b1"}


@dataclass(frozen=True)
class BinaryTensors:
    """A KServe response with binary outputs (the binary tensor data extension): the JSON part (``body``, each such
    output with ``parameters.binary_data_size`` and no ``data``), then ``data``, those outputs' bytes in order."""

    body: dict
    data: bytes


def with_binary_inputs(request: InferRequest, blob: bytes) -> InferRequest:
    """The request with the binary tensor data extension's values: each input whose ``parameters.binary_data_size``
    is given takes that many bytes of ``blob`` (what follows the JSON part), in input order, as Triton lays them out.
    Sizes that do not add up to ``blob`` are a 400."""
    inputs, offset = [], 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            inputs.append(tensor)
            continue
        where = f"input '{tensor.name}'"
        dtype = BINARY_DTYPES.get(tensor.datatype)
        if tensor.data is not None:
            raise InvalidRequest(f"{where} has both 'data' and parameters.binary_data_size.", code="invalid_tensor")
        if dtype is None:
            raise InvalidRequest(
                f"{where}: datatype {tensor.datatype} is not supported as binary data.", code="invalid_tensor"
            )
        itemsize = np.dtype(dtype).itemsize
        if not isinstance(size, int) or size < 0 or size % itemsize or offset + size > len(blob):
            raise InvalidRequest(
                f"{where}: binary_data_size {size!r} does not fit the {len(blob) - offset} bytes left after the JSON "
                f"part in multiples of {itemsize} ({tensor.datatype}).",
                code="invalid_tensor",
            )
        values = np.frombuffer(blob, dtype=dtype, count=size // itemsize, offset=offset)
        inputs.append(tensor.model_copy(update={"data": values}))
        offset += size
    if offset != len(blob):
        raise InvalidRequest(
            f"{len(blob) - offset} bytes after the JSON part belong to no input's binary_data_size.",
            code="invalid_tensor",
        )
    return request.model_copy(update={"inputs": inputs})


def _dims(shape: list[int | str]) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


def billable_tokens(feed: dict[str, np.ndarray]) -> int:
    """The tokens a feed runs: per row the attention mask's ones (its non-padding positions), at least 1; a feed
    without a mask runs every position. The same count /v1/embeddings bills for the same text."""
    mask = feed.get("attention_mask")
    if mask is None:
        return int(np.prod(next(iter(feed.values())).shape))
    rows = mask.reshape(mask.shape[0], -1).sum(axis=1)
    return int(np.maximum(rows, 1).sum())


class V2Service:
    """KServe v2 on the container's embedding model (the same EmbeddingsService: one session, 503 on a failed
    load, retried). Limits: at most ``max_rows`` rows (and MAX_FLOAT_INPUTS), the model's maximum sequence length,
    and the settings' token budget on rows x positions."""

    def __init__(self, embeddings: EmbeddingsService, max_rows: int, binary_outputs: bool = True):
        """``binary_outputs``: answer binary outputs when asked (the binary tensor data extension); False: a 400
        (BINARY_REFUSAL) where the response cannot carry bytes."""
        self.embeddings = embeddings
        self.binary_outputs = binary_outputs
        self.settings = embeddings.settings
        # JSON output tensors: as many rows as float embeddings fit Lambda's 6 MB response
        self.max_rows = min(max_rows, c.MAX_FLOAT_INPUTS)
        self.billed = BilledUnder(TASK)  # the answering version's manifest under this task

    def ready(self) -> bool:
        try:
            self.embeddings.ready()
        except Exception:
            return False
        return True

    def _model(self, name: str, version: str | None) -> tuple[object, Manifest]:
        """(embedder, manifest) of the served version the path names (`/versions/{v}` or `name@v` pins one)."""
        self.embeddings.ready()
        model_id = f"{name}@{version}" if version else name
        if "@" in name and version:
            raise NotFound(f"The model '{model_id}' does not exist or is not served here.", code="model_not_found")
        return self.embeddings.pick(model_id)

    def metadata(self, name: str, version: str | None = None) -> dict:
        """KServe model metadata: tensor names, datatypes and shapes from the manifest."""
        _, m = self._model(name, version)
        return {
            "name": m.name,
            "versions": [m.version],
            "platform": PLATFORM,
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": _dims(t.shape)} for t in m.inputs],
            "outputs": [{"name": t.name, "datatype": t.datatype, "shape": _dims(t.shape)} for t in m.outputs],
        }

    def _feed(self, request: InferRequest, manifest: Manifest, embedder) -> dict[str, np.ndarray]:
        specs = {t.name: t for t in manifest.inputs}
        given: dict[str, InferTensor] = {}
        for i, tensor in enumerate(request.inputs):
            if tensor.name not in specs:
                raise InvalidRequest(
                    f"inputs[{i}]: unknown input '{tensor.name}'; the model's inputs are {', '.join(specs)}.",
                    code="invalid_tensor",
                    param="inputs",
                )
            if tensor.name in given:
                raise InvalidRequest(f"inputs[{i}]: input '{tensor.name}' is given twice.", code="invalid_tensor")
            given[tensor.name] = tensor
        optional = {"token_type_ids"}  # all zeros for single-segment text when a client leaves it out
        missing = [n for n in specs if n not in given and n not in optional]
        if missing:
            raise InvalidRequest(f"Missing input tensor(s): {', '.join(missing)}.", code="invalid_tensor")
        feed, shape = {}, None
        for name, tensor in given.items():
            spec = specs[name]
            where = f"input '{name}'"
            if tensor.datatype != spec.datatype:
                raise InvalidRequest(
                    f"{where} has datatype {tensor.datatype}; the model expects {spec.datatype}.", code="invalid_tensor"
                )
            if len(tensor.shape) != len(spec.shape):
                raise InvalidRequest(
                    f"{where} has shape {tensor.shape}; the model expects {len(spec.shape)} dimensions "
                    f"{_dims(spec.shape)}.",
                    code="invalid_tensor",
                )
            for got, want in zip(tensor.shape, spec.shape, strict=True):
                if got < 1 or (isinstance(want, int) and got != want):
                    raise InvalidRequest(
                        f"{where} has shape {tensor.shape}; the model expects {_dims(spec.shape)}.",
                        code="invalid_tensor",
                    )
            if shape is not None and tensor.shape != shape:
                raise InvalidRequest(
                    f"{where} has shape {tensor.shape}, other inputs {shape}; all must match.", code="invalid_tensor"
                )
            shape = tensor.shape
            rows, width = shape[0], shape[-1]
            if rows > self.max_rows:
                raise InvalidRequest(
                    f"{where} has {rows} rows; the maximum per request is {self.max_rows}.", code="too_many_inputs"
                )
            limit = manifest.max_sequence_length
            if len(shape) == 2 and limit and width > limit:
                raise InvalidRequest(
                    f"{where} has sequence length {width}; the model's maximum is {limit}.",
                    code="context_length_exceeded",
                )
            dtype = np.dtype(DTYPES.get(spec.datatype, np.float32))
            if tensor.data is None:
                raise InvalidRequest(
                    f"{where} has no 'data' (nor parameters.binary_data_size with binary data).", code="invalid_tensor"
                )
            try:
                array = np.asarray(tensor.data)
                # integers for integer tensors (no silent truncation of 1.5 or "7"), numbers for float tensors
                kinds = "iu" if dtype.kind in "iu" else "iuf"
                if array.size and array.dtype.kind not in kinds:
                    raise ValueError(array.dtype)
                array = array.astype(dtype)
            except (ValueError, TypeError, OverflowError):
                raise InvalidRequest(
                    f"{where}: 'data' must be {spec.datatype} numbers, flat in row-major order.", code="invalid_tensor"
                ) from None
            expected = int(np.prod(shape))
            if array.size != expected:
                raise InvalidRequest(
                    f"{where}: shape {shape} needs {expected} values, 'data' has {array.size}.", code="invalid_tensor"
                )
            feed[name] = array.reshape(shape)
        self._check_values(feed, embedder)
        for name in optional & specs.keys() - feed.keys():
            feed[name] = np.zeros(shape, dtype=np.int64)
        return feed

    def _check_values(self, feed: dict[str, np.ndarray], embedder) -> None:
        """Values the graph would fail on (an out-of-range token id is a Gather error, a 500) are a 400 here."""
        vocab = embedder.tokenizer.get_vocab_size()
        ids = feed.get("input_ids")
        if ids is not None and (ids.min() < 0 or ids.max() >= vocab):
            raise InvalidRequest(
                f"input 'input_ids' holds token ids outside the vocabulary [0, {vocab}).", code="invalid_tensor"
            )
        for name in ("attention_mask", "token_type_ids"):
            values = feed.get(name)
            if values is not None and not np.isin(values, (0, 1)).all():
                raise InvalidRequest(f"input '{name}' must hold only 0 and 1.", code="invalid_tensor")

    def infer(
        self, name: str, request: InferRequest, version: str | None = None, reserve: Reserve | None = None
    ) -> tuple[dict | BinaryTensors, int, Manifest]:
        """Run the named tensors through the session as given (no re-tokenisation, no re-batching);
        return (KServe response body, or BinaryTensors when binary outputs were asked for, billable tokens
        (``billable_tokens``), what the usage event records: the version that answered).
        ``reserve(units)``: called once the billable units are known, before the model runs (the quota check)."""
        embedder, manifest = self._model(name, version)
        out_names = [t.name for t in manifest.outputs]
        wanted = [o.name for o in request.outputs] if request.outputs else out_names
        # Triton's rule: an output's own binary_data, else the request's binary_data_output
        binary = {n: bool((request.parameters or {}).get("binary_data_output")) for n in wanted}
        for o in request.outputs or []:
            if o.name not in out_names:
                raise InvalidRequest(
                    f"unknown output '{o.name}'; the model's outputs are {', '.join(out_names)}.",
                    code="invalid_tensor",
                    param="outputs",
                )
            if "binary_data" in (o.parameters or {}):
                binary[o.name] = bool(o.parameters["binary_data"])
        if any(binary.values()) and not self.binary_outputs:
            raise InvalidRequest(BINARY_REFUSAL, code="unsupported")
        feed = self._feed(request, manifest, embedder)
        # the session runs every position, padding included: that is what the time budget counts
        shape = next(iter(feed.values())).shape
        positions = int(np.prod(shape))
        check_token_budget(positions, self.settings.request_token_budget, f"{shape[0]} rows x {shape[-1]} positions")
        units = billable_tokens(feed)
        if reserve is not None:
            reserve(units)
        session = embedder.session
        names = [i.name for i in session.get_inputs()]
        # Rows are independent: run them in slices of about MAAS_BATCH_TOKENS positions, as /v1/embeddings batches
        # (one run of 117 x 256 positions was 1.3x slower per token than slices of 256 here).
        step = max(1, self.settings.batch_tokens // shape[-1])
        parts = [session.run(wanted, {n: feed[n][i : i + step] for n in names}) for i in range(0, shape[0], step)]
        results = [np.concatenate([part[k] for part in parts]) for k in range(len(wanted))]
        specs = {t.name: t for t in manifest.outputs}
        outputs, blobs = [], []
        for n, value in zip(wanted, results, strict=True):
            output = {"name": n, "datatype": specs[n].datatype, "shape": list(value.shape)}
            if binary[n]:
                raw = np.ascontiguousarray(value, dtype=BINARY_DTYPES.get(specs[n].datatype, "<f4")).tobytes()
                output["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                # 9 decimals keep every float32 digit that matters, as in /v1/embeddings
                output["data"] = np.round(value.astype(np.float64), 9).reshape(-1).tolist()
            outputs.append(output)
        body = {"model_name": manifest.name, "model_version": manifest.version, "outputs": outputs}
        if request.id is not None:
            body["id"] = request.id
        answer = BinaryTensors(body, b"".join(blobs)) if blobs else body
        return answer, units, self.billed(manifest)
