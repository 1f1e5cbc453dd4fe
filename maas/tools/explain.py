"""`maas explain "text" --out FILE.png|.html`: a text's explanation as a picture, words coloured by value.

The explanation comes from the classify service itself (maas.tasks.classify, in this process, on the packages under
models/, metering off) or, with --url, from a running maas API (`maas serve` or a deployment). Red words raise the
predicted label's probability, blue words lower it; the stronger the colour, the larger the value.
"""

from __future__ import annotations

import html
import json
import urllib.request
from functools import cache
from pathlib import Path

from maas.tools import paths

POSITIVE, NEGATIVE = (255, 0, 81), (0, 139, 251)  # shap's own red and blue


@cache
def _service(models_dir: Path, classifier: str):
    """The classify service over the packages in ``models_dir`` (metering off), built once per process."""
    from maas.settings import names as c
    from maas.settings.functions import ClassifySettings
    from maas.tasks.classify import ClassifyService

    settings = ClassifySettings.from_env(
        {
            c.ENV_MODEL_SOURCE: str(models_dir / paths.DEFAULT_MODEL),
            c.ENV_CLASSIFIER_SOURCES: str(models_dir / classifier),
            c.ENV_METERING: "off",
        }
    )
    return ClassifyService(settings)


def classify_locally(
    text: str, model: str, labels: list[str] | None, models_dir: Path, explain: bool = False
) -> list[dict]:
    """POST /v1/classify's labels for one text, answered by the classify service in this process."""
    from maas.schemas.classify import ClassifyRequest
    from maas.settings import names as c

    parameters = {"explain": True} if explain else {}
    parameters.update({"candidate_labels": labels} if labels else {})
    request = ClassifyRequest(inputs=[text], parameters=parameters, model=None if labels is None else model)
    service = _service(models_dir, model if labels is None else c.DEFAULT_CLASSIFIER)
    return service.classify(request).body[0]


def explain_locally(text: str, model: str, labels: list[str] | None, models_dir: Path) -> dict:
    """The first label of POST /v1/classify with explain, answered by the classify service in this process."""
    return classify_locally(text, model, labels, models_dir, explain=True)[0]


def explain_remotely(text: str, model: str, labels: list[str] | None, url: str, api_key: str) -> dict:
    """The first label of POST {url}/v1/classify with explain."""
    parameters = {"explain": True, **({"candidate_labels": labels} if labels else {})}
    body = json.dumps({"inputs": [text], "model": model, "parameters": parameters}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/classify",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 (the user's own API URL)
        return json.loads(resp.read())[0][0]


def _colour(value: float, scale: float) -> tuple[float, float, float, float]:
    """RGBA (0-1) for a value: red when it raises the label, blue when it lowers it, alpha by its size."""
    rgb = POSITIVE if value >= 0 else NEGATIVE
    return (*(c / 255 for c in rgb), min(1.0, abs(value) / scale) if scale > 0 else 0.0)


def _caption(top: dict) -> str:
    e = top["explanation"]
    return (
        f"{top['label']}: probability {e['value']:.3f} = base {e['base_value']:.3f} (every word masked) + the "
        f"words' values ({e['method']} Shapley values, {e['evaluations']} model evaluations)"
    )


def render_html(text: str, top: dict) -> str:
    """A self-contained HTML page: the text with each word's background coloured by its value (hover: value)."""
    words, scale = top["explanation"]["words"], max((abs(w["value"]) for w in top["explanation"]["words"]), default=0)
    parts, at = [], 0
    for w in words:
        parts.append(html.escape(text[at : w["start"]]))
        r, g, b, a = _colour(w["value"], scale)
        style = f"background: rgba({r * 255:.0f},{g * 255:.0f},{b * 255:.0f},{a:.2f}); padding: 2px; border-radius: 3px"
        parts.append(f'<span style="{style}" title="{w["value"]:+.4f}">{html.escape(w["text"])}</span>')
        at = w["end"]
    parts.append(html.escape(text[at:]))
    return (
        '<!doctype html><meta charset="utf-8"><title>maas explain</title>'
        '<body style="font-family: sans-serif; max-width: 48em; margin: 2em auto">'
        f"<p>{html.escape(_caption(top))}</p>"
        f'<p style="font-size: 1.4em; line-height: 2">{"".join(parts)}</p>'
        "<p>red raises the label's probability, blue lowers it; hover a word for its value</p></body>\n"
    )


def render_png(text: str, top: dict, out: Path, width_in: float = 9.0) -> None:
    """A PNG: the words in reading order, each on a box coloured by its value, and its value beneath it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words = top["explanation"]["words"]
    scale = max((abs(w["value"]) for w in words), default=0)
    fig = plt.figure(figsize=(width_in, 1.0), dpi=100)
    renderer = fig.canvas.get_renderer()
    x, y, margin = 0.02, 0.0, 0.02
    placed = []
    for w in words:  # measure each word and its value to wrap lines at the figure's width
        probes = [fig.text(0, 0, w["text"], fontsize=15), fig.text(0, 0, f"{w['value']:+.3f}", fontsize=7)]
        width = max(p.get_window_extent(renderer).width for p in probes) / fig.bbox.width + 0.012
        for p in probes:
            p.remove()
        if x + width > 1 - margin and placed:
            x, y = 0.02, y + 1
        placed.append((w, x, y))
        x += width + 0.008
    lines = int(y) + 1
    fig.set_size_inches(width_in, 0.6 + 0.75 * lines)
    fig.text(0.02, 1 - 0.25 / (0.6 + 0.75 * lines), _caption(top), fontsize=9, va="top", wrap=True)
    for w, x, line in placed:
        frac = (0.45 + 0.75 * line) / (0.6 + 0.75 * lines)
        fig.text(
            x,
            1 - frac - 0.18 / (0.6 + 0.75 * lines),
            w["text"],
            fontsize=15,
            va="center",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": _colour(w["value"], scale), "edgecolor": "none"},
        )
        fig.text(x, 1 - frac - 0.48 / (0.6 + 0.75 * lines), f"{w['value']:+.3f}", fontsize=7, color="#555555")
    fig.savefig(out, dpi=100)
    plt.close(fig)


def run(args) -> int:
    """`maas explain`: explain, then write the picture the suffix of --out asks for (.png or .html)."""
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".html"):
        print("error: --out must end in .png or .html")
        return 2
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    if args.url:
        top = explain_remotely(args.text, args.model, labels, args.url, args.api_key or "")
    else:
        top = explain_locally(args.text, args.model, labels, Path(args.models_dir))
    if out.suffix.lower() == ".html":
        out.write_text(render_html(args.text, top), encoding="utf-8")
    else:
        render_png(args.text, top, out)
    print(_caption(top))
    for w in sorted(top["explanation"]["words"], key=lambda w: -abs(w["value"]))[:5]:
        print(f"  {w['value']:+.4f}  {w['text']}")
    print(f"written to {out}")
    return 0
