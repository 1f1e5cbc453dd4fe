"""Build `digits-cnn`: a small CNN for handwritten digits, trained here, exported to ONNX, int8, evaluated.

Data: scikit-learn's bundled `load_digits` (no download): 1,797 8x8 images of the digits 0-9 from the UCI
"optical recognition of handwritten digits" set. Each value 0..16 counts the inked pixels of a 4x4 block of a
32x32 bitmap, so higher is darker ink. A fixed, stratified 20% is held out (seed 0): 360 images.

Image convention served: an ordinary picture of a digit, dark ink on a light background (as a scan or a
drawing in any paint program saves it). The manifest's preprocessing (`image`) says how the runtime gets from
such a picture to the training domain: greyscale, pad to square with white, area-average down to 8x8 (`box`:
what the UCI preprocessing did to its 32x32 bitmaps), `invert` (ink -> high values), scale to 0..1,
standardise with the training set's mean and std. Light-on-dark images must be inverted by the client.

Training is deterministic (fixed seeds, one thread, deterministic algorithms): the same code gives the same
weights, ONNX file and sha256. Both of onnxruntime's int8 methods are measured; the one with the better
held-out accuracy ships, and the build fails if it is below MIN_INT8_ACCURACY.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from maas.inference.package import (
    MODEL_FILE,
    REPORT_FILE,
    ImagePreprocessing,
    Manifest,
    QualityReport,
    Quantization,
    TensorSpec,
    file_entries,
    publish_package,
)
from maas.tools.build.minilm import BuildError, cosine_report
from maas.tools.build.progress import Progress

NAME = "digits-cnn"
VERSION = "1"
INPUT, OUTPUT = "pixel_values", "probabilities"
LABELS = [str(d) for d in range(10)]
SIDE = 8
SEED = 0
TEST_FRACTION = 0.2
EPOCHS, BATCH, LR, WEIGHT_DECAY = 30, 32, 2e-3, 1e-4
MAX_SHIFT = 1  # training augmentation: random shifts of up to this many pixels (off-centre pictures)
MAX_BLUR, BLUR_FRACTION = 0.2, 0.5  # and mild smoothing of half the images (see _blur)
CALIBRATION_IMAGES = 512
MIN_INT8_ACCURACY = 0.97
OPSET = 17


def load_split() -> dict[str, np.ndarray]:
    """The digits as float32 [n, 8, 8] in 0..16 (higher = ink), with the fixed stratified held-out split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images, y = digits.images.astype(np.float32), digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, y, test_size=TEST_FRACTION, stratify=y, random_state=SEED
    )
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def data_sha256(split: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(split):
        digest.update(key.encode() + np.ascontiguousarray(split[key]).tobytes())
    return digest.hexdigest()


def preprocessing(mean: float, std: float) -> ImagePreprocessing:
    return ImagePreprocessing(
        width=SIDE,
        height=SIDE,
        mode="L",
        fit="pad",
        resize="box",
        background=255,
        invert=True,
        scale=1 / 255,
        mean=[mean],
        std=[std],
        layout="NCHW",
        convention="a dark digit on a light background, roughly centred and filling most of the picture "
        "(light-on-dark pictures must be inverted first)",
    )


def normalize(values: np.ndarray, spec: ImagePreprocessing) -> np.ndarray:
    """Dataset values (0..16, higher = ink) -> model input [n, 1, 8, 8]: what the runtime computes from a
    picture, ((255 - p) / 255 - mean) / std, with p the grey level of a rendered value."""
    x = values.astype(np.float32) / 16.0
    return ((x - spec.mean[0]) / spec.std[0])[:, None, :, :].astype(np.float32)


def render(values: np.ndarray, size: int, fmt: str = "PNG", resample: str = "nearest", quality: int = 90) -> bytes:
    """One 8x8 dataset image as a picture file in the served convention: dark ink on white, ``size`` pixels."""
    from PIL import Image

    grey = np.rint(255 - values.astype(np.float64) * 255 / 16).clip(0, 255).astype(np.uint8)
    filters = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}
    image = Image.fromarray(grey, "L").resize((size, size), filters[resample])
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return out.getvalue()


def _network():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4x4
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 2x2
        nn.Flatten(),
        nn.Linear(64 * 2 * 2, 64),
        nn.ReLU(),
        nn.Linear(64, len(LABELS)),
    )


def _blur(batch, weight, background: float):
    """Separable [w, 1 - 2w, w] smoothing per image (w per image): pictures upscaled smoothly, or photographed
    slightly out of focus, come out of the 8x8 area average softer than the dataset's sharp blocks."""
    import torch.nn.functional as F

    p = F.pad(batch, (1, 1, 1, 1), value=background)
    rows = (1 - 2 * weight) * p[..., :, 1:-1] + weight * (p[..., :, :-2] + p[..., :, 2:])
    return (1 - 2 * weight) * rows[..., 1:-1, :] + weight * (rows[..., :-2, :] + rows[..., 2:, :])


def train_network(x: np.ndarray, y: np.ndarray):
    """Adam on shifted copies of the training images; deterministic for the same inputs."""
    import torch
    import torch.nn.functional as F

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(SEED)
        generator = torch.Generator().manual_seed(SEED)
        net = _network()
        optimizer = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
        images, labels = torch.from_numpy(x), torch.from_numpy(y)
        background = float(images.min())  # no ink, after normalising
        padded = F.pad(images, (MAX_SHIFT,) * 4, value=background)
        span = 2 * MAX_SHIFT + 1
        net.train()
        for _ in range(EPOCHS):
            order = torch.randperm(len(images), generator=generator)
            for start in range(0, len(order), BATCH):
                idx = order[start : start + BATCH]
                shifts = torch.randint(0, span, (len(idx), 2), generator=generator).tolist()
                crops = zip(idx.tolist(), shifts, strict=True)
                batch = torch.stack([padded[i, :, dy : dy + SIDE, dx : dx + SIDE] for i, (dy, dx) in crops])
                blur = torch.rand(len(idx), 1, 1, 1, generator=generator) * MAX_BLUR
                blur *= torch.rand(len(idx), 1, 1, 1, generator=generator) < BLUR_FRACTION
                batch = _blur(batch, blur, background)
                loss = F.cross_entropy(net(batch), labels[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            schedule.step()
        return net.eval()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def export(net, dst: Path) -> None:
    """The network + softmax as one fp32 ONNX graph: pixel_values [batch, 1, 8, 8] -> probabilities [batch, 10]."""
    import torch

    model = torch.nn.Sequential(net, torch.nn.Softmax(dim=-1)).eval()
    axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, SIDE, SIDE),),
            str(dst),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def quantize_static_qdq(src: Path, dst: Path, calibration: np.ndarray) -> None:
    """onnxruntime static int8 (QDQ): weights per channel, activations per tensor from MinMax calibration;
    the softmax stays fp32 so scores keep their resolution."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(calibration, max(1, len(calibration) // 64)))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch}

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv", "Gemm", "MatMul"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def quantize_dynamic_uint8(src: Path, dst: Path) -> None:
    """onnxruntime dynamic int8: weights uint8 (ConvInteger has no int8-weight CPU kernel), activations
    quantized per tensor at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8, op_types_to_quantize=["Conv", "Gemm", "MatMul"])


def _manifest(spec: ImagePreprocessing, **fields) -> Manifest:
    return Manifest(
        name=NAME,
        version=VERSION,
        task="image-classify",
        runtime_target="layer",
        inputs=[TensorSpec(name=INPUT, datatype="FP32", shape=["batch", 1, SIDE, SIDE])],
        outputs=[TensorSpec(name=OUTPUT, datatype="FP32", shape=["batch", len(LABELS)])],
        dimensions=len(LABELS),
        labels=LABELS,
        image=spec,
        **fields,
    )


def probabilities(model: Path, spec: ImagePreprocessing, inputs: np.ndarray) -> np.ndarray:
    """Run a graph through the runtime class the service uses."""
    from maas.inference.images import ImageClassifier

    manifest = _manifest(spec, quantization=Quantization(method="none"), files={})
    return ImageClassifier(model.parent, manifest, threads=1, model_file=model.name).classify(inputs)


def pictures_accuracy(model: Path, spec: ImagePreprocessing, values: np.ndarray, y: np.ndarray, **render_args):
    """Held-out accuracy end to end: each image rendered to a file, decoded and preprocessed (maas.inference.images)."""
    from maas.inference.images import ImageDecoder, preprocess

    decoder = ImageDecoder(max_pixels=4096 * 4096)
    batch = np.stack([preprocess(decoder.decode(render(v, **render_args), "inputs"), spec) for v in values])
    return float((probabilities(model, spec, batch).argmax(1) == y).mean())


def recipe_sha256() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def build(out_dir: Path, *, quiet: bool = False, min_accuracy: float = MIN_INT8_ACCURACY) -> Manifest:
    """Train, export, quantize, evaluate and write the package into ``out_dir`` (replaced atomically).

    Raises BuildError, writing nothing, when the shipped int8 model's held-out accuracy is below
    ``min_accuracy``."""
    import sklearn
    import torch

    progress = Progress(total=6, quiet=quiet)
    out_dir = Path(out_dir)
    with progress.stage("loading scikit-learn's digits (bundled, no download)"):
        split = load_split()
        data_sha = data_sha256(split)
        x01 = split["x_train"] / 16.0
        mean, std = round(float(x01.mean()), 6), round(float(x01.std()), 6)
        spec = preprocessing(mean, std)
        x_train, x_test = normalize(split["x_train"], spec), normalize(split["x_test"], spec)
        y_train, y_test = split["y_train"], split["y_test"]
        progress.say(f"{len(y_train)} train / {len(y_test)} held out (stratified, seed {SEED}); mean {mean}, std {std}")
    work = Path(tempfile.mkdtemp(prefix="maas-digits-"))
    try:
        with progress.stage(f"training the CNN ({EPOCHS} epochs, Adam, shifts of up to {MAX_SHIFT} px)"):
            net = train_network(x_train, y_train)
            with torch.no_grad():
                train_acc = float((net(torch.from_numpy(x_train)).argmax(1).numpy() == y_train).mean())
            progress.say(f"train accuracy {train_acc:.4f}")
        with progress.stage("exporting fp32 ONNX (softmax in the graph, dynamic batch)"):
            fp32 = work / "fp32.onnx"
            export(net, fp32)
        with progress.stage("quantizing: onnxruntime static int8 (QDQ) and dynamic int8"):
            candidates = {
                "static int8 (QDQ, per-channel weights, MinMax calibration)": work / "static.onnx",
                "dynamic int8 (uint8 weights, per-tensor)": work / "dynamic.onnx",
            }
            from onnxruntime.quantization.shape_inference import quant_pre_process

            prepared = work / "prepared.onnx"  # shape inference and constant folding, as onnxruntime recommends
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            quantize_static_qdq(prepared, work / "static.onnx", x_train[:CALIBRATION_IMAGES])
            quantize_dynamic_uint8(prepared, work / "dynamic.onnx")
        with progress.stage(f"evaluating on the {len(y_test)} held-out images"):
            p32 = probabilities(fp32, spec, x_test)
            acc32 = float((p32.argmax(1) == y_test).mean())
            tried, results = [], {}
            for method, path in candidates.items():
                p = probabilities(path, spec, x_test)
                acc = float((p.argmax(1) == y_test).mean())
                results[method] = (acc, p)
                tried.append({"method": method, "held_out_accuracy": round(acc, 6), "bytes": path.stat().st_size})
                progress.say(f"{method}: {acc:.4f}")
            # Better accuracy wins; on a tie the static model (int8 kernels, no run-time quantization).
            shipped = max(candidates, key=lambda m: results[m][0])
            acc8, p8 = results[shipped]
            png = pictures_accuracy(candidates[shipped], spec, split["x_test"], y_test, size=32)
            jpeg = pictures_accuracy(
                candidates[shipped], spec, split["x_test"], y_test, size=64, fmt="JPEG", resample="bilinear"
            )
            progress.say(
                f"fp32 {acc32:.4f}; shipped {shipped}: {acc8:.4f}; as PNG 32px {png:.4f}, JPEG 64px {jpeg:.4f}"
            )
            if acc8 < min_accuracy:
                raise BuildError(f"int8 held-out accuracy {acc8:.4f} is below the {min_accuracy} target; not written")
        with progress.stage(f"writing package to {out_dir}"):
            per_class = {
                label: {
                    "train": int((y_train == i).sum()),
                    "test": int((y_test == i).sum()),
                    "test_correct_fp32": int((p32.argmax(1)[y_test == i] == i).sum()),
                    "test_correct_int8": int((p8.argmax(1)[y_test == i] == i).sum()),
                }
                for i, label in enumerate(LABELS)
            }
            report = {
                "dataset": {
                    "name": "sklearn.datasets.load_digits",
                    "sha256": data_sha,
                    "held_out": f"{TEST_FRACTION:.0%} stratified, random_state={SEED}",
                },
                "n_train": len(y_train),
                "n_test": len(y_test),
                "accuracy": {"fp32": round(acc32, 6), "int8": round(acc8, 6)},
                "accuracy_pictures_int8": {"png_32px_nearest": round(png, 6), "jpeg_64px_bilinear_q90": round(jpeg, 6)},
                "agreement_fp32_int8": round(float((p32.argmax(1) == p8.argmax(1)).mean()), 6),
                "train_accuracy_fp32": round(train_acc, 6),
                "min_int8_accuracy": min_accuracy,
                "per_class": per_class,
                "training": {
                    "epochs": EPOCHS,
                    "batch": BATCH,
                    "lr": LR,
                    "weight_decay": WEIGHT_DECAY,
                    "optimizer": "Adam, cosine schedule",
                    "augmentation": f"random shifts of up to {MAX_SHIFT} px; [w, 1-2w, w] smoothing, w < {MAX_BLUR}, "
                    f"of {BLUR_FRACTION:.0%} of the images",
                    "seed": SEED,
                },
            }
            package = work / "package"
            package.mkdir()
            shutil.copyfile(candidates[shipped], package / MODEL_FILE)
            (package / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            fp32_bytes, model_bytes = fp32.stat().st_size, (package / MODEL_FILE).stat().st_size
            manifest = _manifest(
                spec,
                quantization=Quantization(
                    method=shipped,
                    weight_dtype="int8",
                    granularity="per output channel" if "static" in shipped else "per tensor",
                    activations="uint8 per tensor (calibrated)" if "static" in shipped else "uint8, dynamic",
                    details="Conv and Gemm quantized, softmax fp32; the better held-out accuracy of the two ships",
                    tried=[
                        {"method": "none (fp32 reference)", "held_out_accuracy": round(acc32, 6), "bytes": fp32_bytes},
                        *tried,
                    ],
                ),
                evaluation=report,
                quality=QualityReport(
                    reference=f"fp32 ONNX graph of the same network (cosine of probability vectors; {REPORT_FILE})",
                    eval_set="sklearn load_digits, held-out split",
                    eval_set_sha256=data_sha,
                    n=len(y_test),
                    **cosine_report(p8, p32),
                    fp32_bytes=fp32_bytes,
                    model_bytes=model_bytes,
                    size_ratio=round(fp32_bytes / model_bytes, 4),
                ),
                source={
                    "training_data": "sklearn.datasets.load_digits",
                    "training_data_sha256": data_sha,
                    "recipe_sha256": recipe_sha256(),
                    "torch": torch.__version__.split("+")[0],
                    "scikit-learn": sklearn.__version__,
                },
                files=file_entries(package, [MODEL_FILE, REPORT_FILE]),
            )
            publish_package(package, manifest, out_dir)
            progress.say(f"model.onnx {model_bytes / 1e3:.1f} kB ({fp32_bytes / model_bytes:.2f}x smaller than fp32)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def ensure_built(out_dir: Path, quiet: bool = True) -> Path:
    """Build into ``out_dir`` unless it holds a verified package made by this version of the build code."""
    from maas.inference.loader import ModelPackageError, verify_package

    try:
        manifest = verify_package(out_dir)
        fresh = manifest.name == NAME and manifest.source.get("recipe_sha256") == recipe_sha256()
    except ModelPackageError:
        fresh = False
    if not fresh:
        build(out_dir, quiet=quiet)
    return Path(out_dir)
