"""Image inputs of image models: decode PNG/JPEG within limits, then preprocess exactly as the manifest says.

Pillow is imported here and nowhere else, so functions that serve no image model never load it.

Refusals, each in the API's error shape (never a 500):
- bad base64, a corrupt or truncated file, bytes that are no image: 400 `invalid_image` / `invalid_base64`;
- a known image format other than PNG and JPEG (GIF, WebP, BMP, TIFF, ...): 415 `unsupported_image_format`;
- more pixels than allowed (a decompression bomb: a few hundred bytes declaring 20000 x 20000): 413
  `image_too_large`, decided from the header before any pixel is decoded.
Multi-frame files (animated PNG, JPEG MPO) are classified on their first frame, as Pillow (and the Hugging
Face pipelines, which use it) decode them by default.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from maas.errors import ApiError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from maas.inference.package import MODEL_FILE, ImagePreprocessing, Manifest
from maas.inference.sessions import make_session

TASK = "image-classify"  # the manifest task of an image classifier
FORMATS = ("PNG", "JPEG")
# Content types a raw image body may have ("image/jpg" is not registered, but clients send it).
MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG"}
_SUPPORTED_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))
# Formats we recognise so that the answer can be a 415 naming them rather than "not an image".
_OTHER_MAGIC = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"%PDF", "PDF"),
    (b"<svg", "SVG"),
    (b"<?xml", "SVG"),
)
_FILTERS = {
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def sniff_format(data: bytes) -> str | None:
    """The image format the first bytes announce: 'PNG', 'JPEG', another format's name, or None."""
    for magic, name in _SUPPORTED_MAGIC + _OTHER_MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp":
        return "HEIF/AVIF"
    return None


def decode_base64(text: str, where: str) -> bytes:
    """Standard base64 (a `data:image/...;base64,` prefix and line breaks allowed) -> bytes; 400 if invalid."""
    if text.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"'{where}' is a URL; images are not fetched from URLs here: send the image itself, base64-encoded.",
            code="invalid_base64",
            param=where,
        )
    body = _WHITESPACE.sub("", _DATA_URL.sub("", text, count=1))
    if not body:
        raise InvalidRequest(f"'{where}' is empty; send a base64-encoded PNG or JPEG image.", param=where)
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            f"'{where}' is not valid base64 (standard alphabet, with padding).", code="invalid_base64", param=where
        ) from None


class ImageDecoder:
    """Decode untrusted image bytes into a Pillow image: PNG or JPEG only, at most ``max_pixels`` pixels."""

    def __init__(self, max_pixels: int):
        self.max_pixels = max_pixels
        # Pillow's own bomb guard (process-wide: it warns above the limit, raises above twice it; both are 413s
        # below) as a second line behind the header check in decode(). Never lowered below our limit, so it
        # cannot refuse what this decoder allows.
        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)

    def decode(self, data: bytes, where: str) -> Image.Image:
        """The first frame of a PNG or JPEG, EXIF orientation applied; 400/413/415 in the error shape."""
        found = sniff_format(data)
        if found is not None and found not in FORMATS:
            raise UnsupportedMediaType(
                f"'{where}' is a {found} image; send PNG or JPEG.", code="unsupported_image_format", param=where
            )
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
                width, height = image.size
                if width * height > self.max_pixels:
                    raise self._too_large(where, width, height)
                image.load()  # the first frame
                return ImageOps.exif_transpose(image)
            except ApiError:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise self._too_large(where) from None
            except Exception as exc:  # Pillow raises many types for bad files (OSError, SyntaxError, ValueError...)
                reason = "truncated" if "truncated" in str(exc) else "corrupt or not an image"
                raise InvalidRequest(
                    f"'{where}' could not be decoded as a PNG or JPEG image ({reason}).",
                    code="invalid_image",
                    param=where,
                ) from None

    def _too_large(self, where: str, width: int | None = None, height: int | None = None) -> ApiError:
        size = f"is {width} x {height} pixels" if width is not None else "has far too many pixels"
        return PayloadTooLarge(
            f"'{where}' {size}; the limit is {self.max_pixels:,} pixels per image.",
            code="image_too_large",
            param=where,
        )


def _flatten(image: Image.Image, background: int) -> Image.Image:
    """Transparent pixels become the background grey (a digit drawn on a transparent canvas stays visible)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (background, background, background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode.startswith("I;16"):  # 16-bit greyscale PNG: keep the high byte (convert() would clip)
        return Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8), "L")
    return image


def _fit(image: Image.Image, spec: ImagePreprocessing) -> Image.Image:
    """Bring the image to the target aspect ratio: pad (centred, background grey), centre-crop, or stretch."""
    width, height = image.size
    target = spec.width / spec.height
    if spec.fit == "stretch" or abs(width / height - target) < 1e-9:
        return image
    if spec.fit == "pad":
        size = (width, round(width / target)) if width / height > target else (round(height * target), height)
        fill = spec.background if image.mode == "L" else (spec.background,) * 3
        canvas = Image.new(image.mode, size, fill)
        canvas.paste(image, ((size[0] - width) // 2, (size[1] - height) // 2))
        return canvas
    new_w, new_h = (round(height * target), height) if width / height > target else (width, round(width / target))
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return image.crop((left, top, left + new_w, top + new_h))


def preprocess(image: Image.Image, spec: ImagePreprocessing) -> np.ndarray:
    """One decoded image -> the model's float32 input for it ([C, H, W] or [H, W, C]), from the manifest only."""
    image = _flatten(image, spec.background)
    if image.mode != spec.mode:
        image = image.convert(spec.mode) if image.mode in ("L", "RGB", "1", "P") else image.convert("RGB")
        if image.mode != spec.mode:
            image = image.convert(spec.mode)
    image = _fit(image, spec).resize((spec.width, spec.height), _FILTERS[spec.resize])
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if spec.invert:
        pixels = 255.0 - pixels
    mean, std = np.asarray(spec.mean, dtype=np.float32), np.asarray(spec.std, dtype=np.float32)
    pixels = (pixels * np.float32(spec.scale) - mean) / std
    return np.ascontiguousarray(pixels.transpose(2, 0, 1) if spec.layout == "NCHW" else pixels, dtype=np.float32)


def blank(spec: ImagePreprocessing) -> np.ndarray:
    """[channels] float32: the background grey as the model sees it (after invert and normalisation): what an
    explanation puts in place of a masked cell, as if nothing were drawn there."""
    channels = 1 if spec.mode == "L" else 3
    grey = np.full(channels, 255.0 - spec.background if spec.invert else float(spec.background), dtype=np.float32)
    mean, std = np.asarray(spec.mean, dtype=np.float32), np.asarray(spec.std, dtype=np.float32)
    return ((grey * np.float32(spec.scale) - mean) / std).astype(np.float32)


class ImageClassifier:
    """A classification graph on ONNX Runtime: preprocessed images [n, ...] in, probabilities [n, labels] out."""

    def __init__(self, folder: Path, manifest: Manifest, threads: int | None = None, model_file: str = MODEL_FILE):
        if manifest.task != TASK or not manifest.labels or manifest.image is None:
            raise ValueError(f"{manifest.name} is not an image classifier (task, labels and image preprocessing)")
        self.session = make_session(Path(folder) / model_file, manifest, threads)
        self.input, self.output = manifest.inputs[0].name, manifest.outputs[0].name
        self.labels = list(manifest.labels)
        self.preprocessing = manifest.image

    def classify(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {self.input: batch})[0]

    def classify_rows(self, batch: np.ndarray, max_values: int = 1 << 24) -> tuple[np.ndarray, int]:
        """Probabilities of many images (an explanation's masked copies) in as few session.run calls as
        ``max_values`` input floats per call allow (64 MB); returns them and the number of calls."""
        per_call = max(1, max_values // max(1, int(np.prod(batch.shape[1:]))))
        out = [self.classify(batch[start : start + per_call]) for start in range(0, len(batch), per_call)]
        return np.concatenate(out), len(out)
