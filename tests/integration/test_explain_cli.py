"""`maas explain`: the classify service's explanation drawn as an HTML page and a PNG, words coloured by value."""

from __future__ import annotations

import html
import re

import pytest
from PIL import Image

from maas.tools.cli import main

TEXT = "Where is my parcel? It was due on Monday & still isn't here"


def test_html_colours_every_word_by_its_value(tmp_path, capsys, model_dir):
    out = tmp_path / "why.html"
    # GIVEN the local packages, WHEN explaining a text as HTML
    assert (
        main(["explain", TEXT, "--model", "ticket-intents", "--out", str(out), "--models-dir", str(model_dir.parent)])
        == 0
    )
    page = out.read_text(encoding="utf-8")
    # THEN every word is a coloured span carrying its value, the text reads back unchanged (escaped), and the
    # caption states what is explained
    spans = re.findall(
        r'<span style="background: rgba\((\d+),(\d+),(\d+),([\d.]+)\)[^"]*" title="([+-][\d.]+)">([^<]*)</span>', page
    )
    assert [html.unescape(s[5]) for s in spans] == TEXT.split()
    for r, _, b, _, value, _ in spans:  # red raises the label, blue lowers it
        assert (int(r) == 255) == (float(value) >= 0) and (int(b) == 251) == (float(value) < 0)
    assert "&amp;" in page and "shipping: probability" in page
    printed = capsys.readouterr().out
    assert printed.startswith("shipping: probability") and "Shapley values" in printed


def test_png_is_a_picture(tmp_path, model_dir):
    out = tmp_path / "why.png"
    assert main(["explain", TEXT, "--out", str(out), "--models-dir", str(model_dir.parent)]) == 0
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.width == 900 and picture.height >= 100
        colours = picture.convert("RGB").getcolors(1 << 20)
    assert any(rgb[0] > 200 and rgb[1] < 120 and rgb[2] < 160 for _, rgb in colours)  # some word is red


def test_a_bad_suffix_is_refused(tmp_path, capsys):
    assert main(["explain", TEXT, "--out", str(tmp_path / "why.jpg")]) == 2
    assert "--out must end in .png or .html" in capsys.readouterr().out


def test_url_asks_a_running_api_and_draws_the_same_explanation(tmp_path, model_dir):
    from maas.tools.explain import explain_locally
    from maas.tools.local.server import start

    running = start(port=0, model_dir=model_dir)
    try:
        out = tmp_path / "why.html"
        args = ["explain", TEXT, "--out", str(out), "--url", running.base_url, "--api-key", running.demo_key]
        assert main(args) == 0
    finally:
        running.stop()
    local = explain_locally(TEXT, "ticket-intents", None, model_dir.parent)["explanation"]
    titles = [float(v) for v in re.findall(r'title="([+-][\d.]+)"', out.read_text(encoding="utf-8"))]
    assert titles == [pytest.approx(w["value"], abs=1e-4) for w in local["words"]]  # drawn to 4 decimals
