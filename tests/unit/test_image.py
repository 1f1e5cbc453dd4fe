"""maas.inference.images: format sniffing, base64 rules and the manifest-driven preprocessing, on synthetic pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from maas.errors import InvalidRequest, UnsupportedMediaType
from maas.inference.images import ImageDecoder, decode_base64, preprocess, sniff_format
from maas.inference.package import ImagePreprocessing


def _spec(**kw) -> ImagePreprocessing:
    fields = dict(width=4, height=4, mode="L", resize="box", invert=True, scale=1 / 255, mean=[0.0], std=[1.0])
    return ImagePreprocessing(**{**fields, **kw})


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_sniffing_names_formats():
    assert sniff_format(b"\x89PNG\r\n\x1a\n....") == "PNG" and sniff_format(b"\xff\xd8\xff\xe0") == "JPEG"
    assert sniff_format(b"GIF89a") == "GIF" and sniff_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WebP"
    assert sniff_format(b"\0\0\0\x1cftypavif") == "HEIF/AVIF" and sniff_format(b"hello") is None


def test_base64_rules():
    assert decode_base64("data:image/png;base64,aGk=", "inputs") == b"hi"
    assert decode_base64("aGVs\nbG8=", "inputs") == b"hello"
    for bad in ("aGk", "a$b=", "http://example.com/x.png"):
        with pytest.raises(InvalidRequest):
            decode_base64(bad, "inputs")


def test_dark_ink_on_white_becomes_high_values_and_layout_is_nchw():
    picture = Image.new("L", (8, 8), 255)
    picture.paste(0, (0, 0, 2, 2))  # one black 2x2 block in the top-left corner
    x = preprocess(ImageDecoder(10_000).decode(_png(picture), "inputs"), _spec())
    assert x.shape == (1, 4, 4) and x.dtype == np.float32
    assert x[0, 0, 0] == pytest.approx(1.0) and x[0, 3, 3] == pytest.approx(0.0)


def test_fit_pads_with_the_background_crops_or_stretches():
    wide = Image.new("L", (8, 4), 0)  # all ink, twice as wide as tall
    padded = preprocess(wide, _spec())  # padded to 8x8 with white: top and bottom rows have no ink
    assert padded[0, 0].max() == pytest.approx(0.0) and padded[0, 1:3].min() == pytest.approx(1.0)
    assert preprocess(wide, _spec(fit="stretch")).min() == pytest.approx(1.0)
    assert preprocess(wide, _spec(fit="center-crop")).min() == pytest.approx(1.0)


def test_rgb_models_get_three_normalised_channels_nhwc():
    spec = _spec(mode="RGB", invert=False, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], layout="NHWC")
    x = preprocess(Image.new("RGB", (6, 6), (255, 0, 255)), spec)
    assert x.shape == (4, 4, 3) and x[0, 0].tolist() == pytest.approx([1.0, -1.0, 1.0])


def test_sixteen_bit_greyscale_keeps_its_range():
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    x = preprocess(ImageDecoder(10_000).decode(_png(deep), "inputs"), _spec(invert=False))
    assert x.min() == pytest.approx(1.0)


def test_a_manifest_with_the_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match="needs 3 mean"):
        _spec(mode="RGB")


def test_other_formats_are_415_and_noise_is_400():
    out = io.BytesIO()
    Image.new("L", (4, 4)).save(out, "BMP")
    with pytest.raises(UnsupportedMediaType, match="BMP"):
        ImageDecoder(10_000).decode(out.getvalue(), "inputs")
    with pytest.raises(InvalidRequest, match="could not be decoded"):
        ImageDecoder(10_000).decode(b"\xff\xd8\xff" + b"\0" * 30, "inputs")
