"""The web pages of `zoo serve`: an index of the served models and one page per model.

A model page is generated from the model's card (description, headline
metrics and baselines, architecture) and its signatures. It carries the data
its script needs as JSON in the page, and `static/zoo.js` builds the form for
the model's task (text box, image or WAV upload, key and length for music,
history for forecasts) and draws the answer (probability bars, attention
maps, piano roll, forecast intervals). Every page also has an API console
prefilled with a valid request for each signature. Plain HTML and JavaScript,
served by the same server: nothing is fetched from elsewhere.
"""

import html
import json
from importlib import resources

from zoo.serving.tensors import dumps

#: Static files the pages use: name -> media type.
ASSETS = {"zoo.js": "text/javascript; charset=utf-8", "zoo.css": "text/css; charset=utf-8"}


def asset(name):
    """(bytes, media type) of a static file, or None for a name that is not one."""
    if name not in ASSETS:
        return None
    return resources.files("zoo.serving").joinpath("static", name).read_bytes(), ASSETS[name]


def _script_json(value):
    """JSON safe inside a <script> element (no "</script>", no "<!--")."""
    return (json.dumps(value, ensure_ascii=False, allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _headline(card):
    try:
        from zoo.report import headline

        return headline(card)
    except Exception:  # noqa: BLE001  a card of another shape: show the rest of the page
        return ""


def _numbers(values, prefix="", depth=2):
    """(label, number) pairs of a nested metrics dict, `depth` levels deep: the measured values (floats)
    and the number of examples (counts such as a confusion matrix's are left out)."""
    rows = []
    for key, value in values.items():
        label = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, float) or (isinstance(value, int) and key in ("examples", "n", "series")):
            rows.append((label, value))
        elif isinstance(value, dict) and depth > 1 and key != "groups":
            rows += _numbers(value, label + ".", depth - 1)
    return rows


def card_metrics(card, limit=16):
    """The card's test metrics (or its first split's) and its baseline, as (label, number) rows."""
    metrics = card.get("metrics") or {}
    split = "test" if "test" in metrics else next(iter(metrics), None)
    rows = [(f"{split}: {label}", value) for label, value in _numbers(metrics.get(split) or {})][:limit]
    baseline = card.get("baseline")
    if isinstance(baseline, dict):
        name = baseline.get("name", "baseline")
        rows += [(f"baseline {name}: {label}", value) for label, value in _numbers(baseline)][:limit // 2]
    return rows


def page_data(model):
    """What a model page's script needs: card summary, signatures, example requests, task extras."""
    card = model.card
    dataset = card.get("dataset") if isinstance(card.get("dataset"), dict) else {}
    extras = {key: dataset[key] for key in ("columns", "target_index", "class_names", "horizon", "context",
                                            "features", "image_size") if key in dataset}
    if model.task_name == "music":
        try:
            from zoo.music import ALL_KEYS

            extras["keys"] = list(ALL_KEYS)
        except ImportError:
            pass
    return {
        "name": model.name,
        "task": model.task_name,
        "io": card.get("io"),
        "signatures": {name: signature.describe() for name, signature in sorted(model.signatures.items())},
        # as JSON text: an example may hold NaN, which the page's script reads and sends as it is
        "examples": {name: dumps(request) for name, request in model.examples().items()},
        "extras": extras,
    }


class PageRenderer:
    """Renders the index and the model pages (the model pages once, on first use)."""

    def __init__(self, models):
        self.models = models
        self._cache = {}

    def index(self):
        rows = []
        for name, model in sorted(self.models.items()):
            card = model.card
            rows.append(
                f"<tr><td><a href=\"/models/{html.escape(name)}\">{html.escape(name)}</a></td>"
                f"<td>{html.escape(str(card.get('task', '?')))}</td>"
                f"<td>{html.escape(str(card.get('io', '')))}</td>"
                f"<td>{html.escape(_headline(card))}</td></tr>")
        body = (
            "<h1>zoo serve</h1>"
            f"<p>{len(self.models)} model{'s' if len(self.models) != 1 else ''} served. Each speaks "
            "TensorFlow Serving's REST API: <code>GET /v1/models/NAME</code>, "
            "<code>GET /v1/models/NAME/metadata</code>, <code>POST /v1/models/NAME:predict</code>. "
            "Open a model to try it.</p>"
            "<table class=\"models\"><thead><tr><th>model</th><th>task</th><th>I/O</th><th>measured</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            "<p class=\"small\"><a href=\"/zoo/stats\">server statistics</a> (requests, batches, queue)</p>")
        return _page("zoo serve", body)

    def not_found(self, name):
        return _page("not found", f"<h1>No model {html.escape(name)}</h1><p><a href=\"/\">the served models</a></p>")

    def model_page(self, name):
        if name not in self._cache:
            self._cache[name] = self._render(self.models[name])
        return self._cache[name]

    def _render(self, model):
        card = model.card
        escaped = html.escape(model.name)
        metric_rows = "".join(
            f"<tr><td>{html.escape(label)}</td><td>{value:.4g}</td></tr>" if isinstance(value, float)
            else f"<tr><td>{html.escape(label)}</td><td>{value:,}</td></tr>"
            for label, value in card_metrics(card))
        facts = []
        for label, key in (("task", "task"), ("I/O", "io"), ("architecture", "architecture"),
                           ("parameters", "parameters"), ("inputs", "inputs"), ("outputs", "outputs"),
                           ("license", "license")):
            value = card.get(key)
            if value not in (None, ""):
                shown = f"{value:,}" if isinstance(value, int) else str(value)
                facts.append(f"<dt>{label}</dt><dd>{html.escape(shown)}</dd>")
        body = (
            f"<p class=\"small\"><a href=\"/\">all models</a></p><h1>{escaped}</h1>"
            f"<p>{html.escape(str(card.get('description', '')))}</p>"
            "<div class=\"columns\"><section class=\"try\"><h2>Try it</h2><div id=\"try\"></div></section>"
            "<aside><h2>Measured</h2>"
            f"<p class=\"headline\">{html.escape(_headline(card))}</p>"
            f"<table class=\"metrics\">{metric_rows}</table>"
            f"<dl>{''.join(facts)}</dl></aside></div>"
            "<section><h2>API</h2><p>TensorFlow Serving's REST API: "
            f"<code>POST /v1/models/{escaped}:predict</code> with "
            "<code>{\"signature_name\": ..., \"instances\": [...]}</code> or <code>{\"inputs\": {...}}</code>; "
            f"<a href=\"/v1/models/{escaped}/metadata\">metadata</a>. Edit a request and send it:</p>"
            "<div id=\"console\"></div><h3>Signatures</h3><div id=\"signatures\"></div></section>"
            f"<script type=\"application/json\" id=\"model-data\">{_script_json(page_data(model))}</script>"
            "<script src=\"/static/zoo.js\"></script>")
        return _page(f"{model.name} · zoo serve", body)


def _page(title, body):
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><link rel=\"stylesheet\" href=\"/static/zoo.css\">"
            f"</head><body><main>{body}</main></body></html>")
