"""The `zoo` command: list, inspect, run, train, export, verify and package pretrained models.

    zoo list
    zoo info sentiment-bilstm-mr
    zoo predict sentiment-bilstm-mr "a gorgeous, witty film" "a dull mess"
    echo "one review per line" | zoo predict sentiment-bilstm-mr
    zoo translate translation-gru-de-en "Ich bin in zehn Minuten da." --beam 4
    zoo caption captioning-gru-emoji smile.png --attention-map smile-attention.png
    zoo forecast forecasting-gru-m1 sales.csv --horizon 6 --plot sales.png
    zoo classify timeseries-classification-japanesevowels utterance.csv
    zoo tag tagging-bilstm-brown "The old man the boats."
    zoo transcribe speech-bigru-ctc hello.wav goodbye.wav --beam 8
    zoo train sentiment --cell gru --epochs 3
    zoo export sentiment-bilstm-mr ./deploy/sentiment
    zoo verify sentiment-bilstm-mr
    zoo verify ./deploy/sentiment            # a model directory, by path or URL (gs://, s3://, ...)
    zoo package sentiment-bilstm-mr --out dist/   # a pip-installable wheel zoo-model-<name>
    zoo serve sentiment-bilstm-mr translation-gru-de-en   # TensorFlow Serving's REST API on :8501

Errors print one line to stderr and exit non-zero (2 for bad usage or input,
1 when a check fails).

`zoo predict` writes one output line per input line: a blank input gives
`-<tab>-<tab>` (nothing to classify), and bytes that are not UTF-8 are replaced
with U+FFFD (a note on stderr names the lines).
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

#: Lines `zoo predict` classifies at once (memory stays bounded; output appears batch by batch).
PREDICT_BATCH_SIZE = 256

#: Output line of `zoo predict` for a blank input line (label and probability fields are "-").
BLANK_PREDICTION = "-\t-\t"

#: Help of the model argument of the commands that read a model.
MODEL_ARGUMENT_HELP = ("a model name (local hub or installed model package), or the path or URL "
                       "(file://, gs://, s3://, ...) of a model directory")

#: Lines TensorFlow's C++ runtime writes to stderr that say nothing to a user of the command
#: line: oneDNN's notice that it falls back to Eigen for boolean and int64 tensors, logged (as an error)
#: on every model run.
NATIVE_NOISE = (b"oneDNN supports DT_BOOL only", b"oneDNN supports DT_INT64 only")


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status `code`."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


def recipes_dir():
    """Where the recipe scripts are: `recipes/` of a source checkout, else the copy an installed
    zoo ships as package data (`zoo/_recipes/`, put there by the build; see setup.py)."""
    from zoo.hub import source_checkout

    checkout = source_checkout()
    if checkout is not None:
        return checkout / "recipes"
    return Path(__file__).resolve().parent / "_recipes"


def known_recipes():
    directory = recipes_dir()
    return sorted(p.stem for p in directory.glob("*.py") if not p.name.startswith("_"))


# -- commands ------------------------------------------------------------------


def cmd_list(args):
    from zoo import hub
    from zoo.report import headline

    sources = hub.list_sources(args.pattern)
    if not sources:
        print(f"no models in the hub ({hub.models_dir()}) and no installed model packages "
              f"(entry-point group {hub.ENTRY_POINT_GROUP})")
        return 0
    unreadable = 0
    loaded_first = set()
    for source in sources:
        origin = f"[{source.describe()}]"
        if source.name in loaded_first:
            origin = f"[{source.describe()}; the hub model of this name is the one loaded]"
        loaded_first.add(source.name)
        try:
            card = hub.read_card(Path(source.location) / hub.CARD_FILE)
        except hub.CardError as error:
            unreadable += 1
            print(f"{source.name:32s} (unreadable card: {error}) {origin}")
            continue
        print(f"{source.name:32s} {card.get('task', '?'):10s} {card.get('io', '?'):12s} "
              f"{headline(card)}  {origin}")
    print(f"(hub = {hub.models_dir()}; packages = installed wheels built by 'zoo package')")
    return 1 if unreadable else 0


def cmd_info(args):
    from zoo import hub

    print(json.dumps(hub.info(args.name), indent=2))
    return 0


def _as_valid_text(text):
    """`text` with anything that is not valid UTF-8 (undecodable argv bytes) replaced by U+FFFD."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _split_line_endings(lines):
    """Byte lines split at LF, CRLF and also a lone CR (old Mac files), without their endings."""
    for raw in lines:
        raw = raw[:-1] if raw.endswith(b"\n") else raw
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        yield from raw.split(b"\r")


def _decode_lines(lines):
    """Decode byte lines as UTF-8, replacing bad bytes; returns (texts, numbers of bad lines).

    Lines end at LF, CRLF or a lone CR.
    """
    texts, bad = [], []
    for number, raw in enumerate(_split_line_endings(lines), start=1):
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append(number)
            texts.append(raw.decode("utf-8", "replace"))
    return texts, bad


def _read_inputs(items, command="predict"):
    """The texts to run: the arguments, else one per line of stdin (blank ones included)."""
    bad = []
    if items:
        texts = [_as_valid_text(t) for t in items]
        bad = [i for i, (old, new) in enumerate(zip(items, texts), start=1) if old != new]
        where = "argument"
    elif not sys.stdin.isatty():
        source = getattr(sys.stdin, "buffer", None)
        if source is not None:
            texts, bad = _decode_lines(source)
        else:  # an already decoded text stream
            texts = [_as_valid_text(line.rstrip("\n").rstrip("\r")) for line in sys.stdin]
        where = "line"
    else:
        texts = []
    if not any(t.strip() for t in texts):
        raise CommandError("no input: pass texts as arguments or one per line on stdin")
    if bad:
        shown = ", ".join(str(n) for n in bad[:10]) + (", ..." if len(bad) > 10 else "")
        print(f"zoo {command}: {where}{'s' if len(bad) > 1 else ''} {shown} "
              f"{'are' if len(bad) > 1 else 'is'} not valid UTF-8; "
              f"undecodable bytes replaced with U+FFFD", file=sys.stderr)
    return texts


def cmd_predict(args):
    from zoo import hub
    from zoo.tasks import get_task

    card = hub.info(args.name)
    if card.get("io") != "many-to-one":
        raise CommandError(f"'zoo predict' runs many-to-one models; {args.name} is {card.get('io')} "
                           f"(try 'zoo generate')")
    texts = _read_inputs(args.texts)
    task = get_task(card["task"])
    serving = hub.load_serving(args.name)
    for start in range(0, len(texts), PREDICT_BATCH_SIZE):  # bounded work; lines appear batch by batch
        batch = texts[start : start + PREDICT_BATCH_SIZE]
        to_classify = [text for text in batch if text.strip()]
        probabilities = iter(task.serve_predictions(serving, to_classify) if to_classify else [])
        for text in batch:  # one output line per input line, blank ones included
            if text.strip():
                print(task.format_prediction(text, float(next(probabilities))))
            else:
                print(BLANK_PREDICTION + text)
        sys.stdout.flush()
    return 0


def _task_for(name, entry_point, runs):
    """The task module of model `name`, which must provide `entry_point` (else a usage error naming
    what the command runs, e.g. "translation models", and what the model is)."""
    from zoo import hub
    from zoo.tasks import get_task

    card = hub.info(name)
    task = get_task(card["task"])
    if not hasattr(task, entry_point):
        raise CommandError(f"this command runs {runs}; {name} is a {card.get('task')} model")
    return task, card


def cmd_translate(args):
    task, _ = _task_for(args.name, "translate_cli", "translation models")
    if not 1 <= args.beam <= task.MAX_BEAM_WIDTH:
        raise CommandError(f"--beam must be in 1..{task.MAX_BEAM_WIDTH}, received {args.beam}")
    texts = _read_inputs(args.texts, command="translate")  # one output line per input line
    return task.translate_cli(args.name, texts, beam_width=args.beam, attention_map=args.attention_map)


def cmd_caption(args):
    task, _ = _task_for(args.name, "caption_cli", "captioning models")
    if not 1 <= args.beam <= task.MAX_BEAM_WIDTH:
        raise CommandError(f"--beam must be in 1..{task.MAX_BEAM_WIDTH}, received {args.beam}")
    if not args.images:
        raise CommandError("no input: pass one or more image files (PNG, JPEG, ...)")
    return task.caption_cli(args.name, args.images, beam_width=args.beam, attention_map=args.attention_map)


def cmd_forecast(args):
    task, _ = _task_for(args.name, "forecast_cli", "forecasting models")
    if args.horizon is not None and args.horizon < 1:
        raise CommandError(f"--horizon must be at least 1, received {args.horizon}")
    return task.forecast_cli(args.name, args.history, horizon=args.horizon, plot=args.plot)


def cmd_classify(args):
    from zoo import hub

    task, card = _task_for(args.name, "classify_series", "time-series classifiers")
    if not args.files:
        raise CommandError("no input: pass one or more series files (CSV: rows are time steps, columns "
                           "features; or .ts, the UCR/UEA archive format)")
    serving = hub.load_serving(args.name)
    features = (card.get("dataset") or {}).get("features")
    # every file is read (and checked) before anything is printed
    inputs = [(path, task.read_series_file(path, features=features)) for path in args.files]
    print("class\tprobability\tsource")
    for path, series in inputs:
        names, probabilities = task.classify_series(serving, series)
        for number, (name, row) in enumerate(zip(names, probabilities), 1):
            source = path if len(series) == 1 else f"{path}#{number}"
            print(task.format_prediction(source, name, row))
    return 0


def cmd_tag(args):
    task, _ = _task_for(args.name, "tag_cli", "part-of-speech taggers")
    texts = _read_inputs(args.texts, command="tag")  # one output line (or CoNLL-U block) per input line
    return task.tag_cli(args.name, texts, output_format=args.format, tag_set=args.tag_set,
                        pretokenized=args.pretokenized)


def cmd_transcribe(args):
    task, _ = _task_for(args.name, "transcribe_cli", "speech recognisers")
    if not 1 <= args.beam <= task.MAX_BEAM_WIDTH:
        raise CommandError(f"--beam must be in 1..{task.MAX_BEAM_WIDTH}, received {args.beam}")
    files = list(args.files)
    if not files and not sys.stdin.isatty():  # file names, one per line
        source = getattr(sys.stdin, "buffer", None)
        lines = _decode_lines(source)[0] if source is not None else sys.stdin.read().splitlines()
        files = [line.strip() for line in lines if line.strip()]
    if not files:
        raise CommandError("no input: pass one or more WAV files, or their names one per line on stdin")
    return task.transcribe_cli(args.name, files, beam_width=args.beam, plot=args.plot)


def cmd_train(args):
    if args.recipe not in known_recipes():
        raise CommandError(f"unknown recipe {args.recipe!r}; known recipes: {', '.join(known_recipes())}")
    script = recipes_dir() / f"{args.recipe}.py"
    status = run_child([sys.executable, str(script), *args.options])
    return 128 - status if status < 0 else status  # killed by signal N: exit 128 + N, as a shell says


def _die_with_parent():
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies (even by kill -9)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the signal forwarding below still applies
        pass


def run_child(command):
    """Run `command` as a child that cannot outlive this process; its exit status is returned.

    SIGTERM and SIGINT sent to `zoo` are passed on to the child (a scheduler's
    stop reaches the training), and on Linux the child gets SIGTERM if `zoo`
    itself is killed outright, so no orphan keeps writing to a run directory.
    """
    child = subprocess.Popen(command, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    forwarded = {}

    def forward(number, _frame):
        if child.poll() is None:
            child.send_signal(number)

    for number in (signal.SIGTERM, signal.SIGINT):
        forwarded[number] = signal.signal(number, forward)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # forwarded already; wait for the child to finish
                continue
    finally:
        for number, previous in forwarded.items():
            signal.signal(number, previous)


def cmd_export(args):
    from zoo import hub

    hub.verify_files(args.name)
    target = Path(args.directory)
    if target.exists() and any(target.iterdir()):
        raise CommandError(f"export target {target} exists and is not empty")
    if args.format != "savedmodel":
        from zoo import export_formats

        # An unsupported format raises ValueError saying why (exit status 2).
        support = export_formats.check_exportable(hub.info(args.name).get("task"), args.format, args.name)
        missing = export_formats.missing_runtime(args.format)
        if missing:
            raise CommandError(missing, code=1)
        path, measured = export_formats.export(args.name, target, args.format)
        shown = ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}"
                          for key, value in measured.items())
        print(f"exported {args.name} as {args.format} to {path}: {support.exports}")
        print(f"checked with its own runtime against the SavedModel: {shown}")
        return 0
    staging = target.with_name(f".staging-{target.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(hub.model_dir(args.name), staging)
    if target.exists():
        target.rmdir()
    os.replace(staging, target)
    print(f"exported {args.name} to {target} (serving SavedModel: {target / hub.SERVING_DIR})")
    return 0


def compare_metrics(recorded, measured, prefix="", atol=1e-4, rtol=1e-4, tolerances=None):
    """Differences between recorded and re-measured metrics beyond float noise, or beyond
    `tolerances[path]` (an absolute difference) for the metrics a task names there."""
    tolerances = tolerances or {}
    problems = []
    for key, value in measured.items():
        where = f"{prefix}{key}"
        if key not in recorded:
            problems.append(f"{where}: missing from the card")
        elif isinstance(value, dict):
            problems += compare_metrics(recorded[key], value, where + ".", atol, rtol, tolerances)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            allowed = atol + rtol * abs(recorded[key])
            if where in tolerances:
                allowed = max(allowed, tolerances[where])
            if abs(value - recorded[key]) > allowed:
                problems.append(f"{where}: card {recorded[key]} vs measured {value}"
                                + (f" (allowed ±{allowed:.3g})" if where in tolerances else ""))
    return problems


def _overall_numbers(values, prefix=""):
    """The float metrics of one split, with nested per-decoder "overall" entries flattened (groups left out)."""
    for key, value in values.items():
        if isinstance(value, float):
            yield prefix + key, value
        elif isinstance(value, dict) and key != "groups":
            inner = value.get("overall", value)
            yield from _overall_numbers(inner, prefix=f"{prefix}{key}." if key != "overall" else prefix)


def _value_at(metrics, path):
    for part in path.split("."):
        metrics = metrics.get(part) if isinstance(metrics, dict) else None
    return metrics


def cmd_verify(args):
    from zoo import hub
    from zoo.tasks import get_task

    files = hub.verify_files(args.name)
    print(f"checksums: {len(files)} files OK")
    card = hub.info(args.name)
    model = hub.load(args.name, verify=False)
    task = get_task(card["task"])
    if hasattr(task, "remeasure_with_tolerances"):  # figures of sampled outputs
        measured, tolerances = task.remeasure_with_tolerances(model, card)
    else:
        measured, tolerances = task.remeasure(model, card), {}
    problems = compare_metrics(card.get("metrics", {}), measured, tolerances=tolerances)
    for split, values in measured.items():
        print(f"re-measured {split}: " + ", ".join(f"{k}={v:.6g}" for k, v in _overall_numbers(values)))
    exact = [path for path, allowed in tolerances.items() if allowed and _value_at(card.get("metrics", {}), path)
             != _value_at(measured, path)]
    if exact:
        print(f"sampled figures not reproduced exactly (float rounding differs from the machine that wrote the "
              f"card), compared within their sampling error: {', '.join(sorted(exact))}")
    if problems:
        raise CommandError("metrics differ from the card: " + "; ".join(problems), code=1)
    print(f"{args.name}: card metrics reproduced")
    return 0


def cmd_package(args):
    from zoo import packaging

    wheel = packaging.build_wheel(args.name, args.out, version=args.version)
    print(f"built {wheel} ({wheel.stat().st_size / 1e6:.1f} MB)")
    print(f"install it with 'pip install {wheel}'; then zoo.load() and 'zoo list' find the model")
    return 0


def cmd_generate(args):
    from zoo import hub
    from zoo.tasks import get_task

    card = hub.info(args.name)
    task = get_task(card["task"])
    if not hasattr(task, "generate_cli"):
        raise CommandError(f"'zoo generate' runs generative models; {args.name} is {card.get('io')}")
    return task.generate_cli(args.name, args)


def cmd_score(args):
    task, _ = _task_for(args.name, "score_cli", "language models")
    if args.texts or args.lines:
        texts = _read_inputs(args.texts, command="score")
    elif not sys.stdin.isatty():
        texts = ["\n".join(_read_inputs([], command="score"))]
    else:
        raise CommandError("no input: pass texts as arguments, or a text on stdin ('zoo score NAME < text.txt')")
    return task.score_cli(args.name, texts)


def cmd_serve(args):
    import dataclasses

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise CommandError(f"'zoo serve' needs the serve extra ({error.name} is missing): "
                           f"pip install 'zoo[serve]'", code=1) from None
    from zoo.serving.app import run
    from zoo.serving.limits import ServeConfig

    config = ServeConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(ServeConfig)})
    return run(args.names, host=args.host, port=args.port, config=config, access_log=args.access_log)


def _add_serve_arguments(p):
    import dataclasses

    from zoo.serving.limits import HELP, ServeConfig

    p.add_argument("names", nargs="+", metavar="NAME", help=MODEL_ARGUMENT_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this "
                   "machine only; 0.0.0.0 exposes the server to the network)")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501, TensorFlow Serving's REST port)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--no-batching", dest="batching", action="store_false",
                   help="run every request as its own call")
    for field in dataclasses.fields(ServeConfig):
        if field.name == "batching":
            continue
        p.add_argument("--" + field.name.replace("_", "-"), type=type(field.default), default=field.default,
                       help=f"{HELP.get(field.name, '')} (default {field.default})")


def cmd_lab(args):
    from zoo.lab.command import run

    return run(args)


# -- entry point -----------------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(prog="zoo", description="Pretrained recurrent models: "
                                     "list, inspect, run, train, export, verify and package them.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("list", help="list the pretrained models (local hub and installed model "
                            "packages), each with where it comes from")
    p.add_argument("pattern", nargs="?", help="optional glob pattern, e.g. 'sentiment-*'")
    p.set_defaults(run=cmd_list)

    p = commands.add_parser("info", help="print a model's card")
    p.add_argument("name", help=MODEL_ARGUMENT_HELP)
    p.set_defaults(run=cmd_info)

    p = commands.add_parser("predict", help="classify texts (arguments, or lines on stdin; one "
                            "output line per input, '-' fields for a blank one)")
    p.add_argument("name")
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("generate", help="generate with a generative model: text from a prompt "
                            "(language models) or a melody in a key (music models)")
    p.add_argument("name")
    p.add_argument("--prompt", help="language models: the text to continue (default: none)")
    p.add_argument("--key", help='music models: the key, e.g. "D major", "F# minor"')
    p.add_argument("--length", type=int,
                   help="tokens (words or characters) or note events to generate (default 200 / 64)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, default=0, help="language models: sample among the k most "
                   "likely tokens (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="language models: sample within the "
                   "nucleus of probability p (1 = all)")
    p.add_argument("--beam", type=int, default=1, help="language models: the most likely continuation "
                   "by beam search of this width (> 1; no sampling)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="melody.mid", help="music models: the MIDI file to write")
    p.set_defaults(run=cmd_generate)

    p = commands.add_parser("score", help="score texts with a language model: log-probability, "
                            "perplexity and bits per word or character (arguments, or stdin as one text)")
    p.add_argument("name", help=MODEL_ARGUMENT_HELP)
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--lines", action="store_true", help="score each line of stdin as its own text")
    p.set_defaults(run=cmd_score)

    p = commands.add_parser("translate", help="translate German texts (arguments, or lines on stdin)")
    p.add_argument("name")
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--beam", type=int, default=4, help="beam width (1 = greedy)")
    p.add_argument("--attention-map", metavar="FILE.png",
                   help="write a heat map of target against source words (one file per text)")
    p.set_defaults(run=cmd_translate)

    p = commands.add_parser("caption", help="describe images in words (image files as arguments)")
    p.add_argument("name")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--beam", type=int, default=3, help="beam width (1 = greedy)")
    p.add_argument("--attention-map", metavar="FILE.png",
                   help="write the image with each word's attention overlaid (one file per image)")
    p.set_defaults(run=cmd_caption)

    p = commands.add_parser("forecast", help="forecast a series from its history (a CSV file: rows "
                            "are time steps, numeric columns are features; empty cells are missing)")
    p.add_argument("name", help=MODEL_ARGUMENT_HELP)
    p.add_argument("history", metavar="HISTORY.csv")
    p.add_argument("--horizon", type=int, help="steps ahead (default: all the model forecasts)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the history, forecast and 80%% interval")
    p.set_defaults(run=cmd_forecast)

    p = commands.add_parser("classify", help="classify time series (files: CSV with rows as time steps "
                            "and columns as features, or .ts of the UCR/UEA archive)")
    p.add_argument("name", help=MODEL_ARGUMENT_HELP)
    p.add_argument("files", nargs="*", metavar="SERIES")
    p.set_defaults(run=cmd_classify)

    p = commands.add_parser("tag", help="tag each word of texts with its part of speech (arguments, "
                            "or lines on stdin; token/TAG per line, or CoNLL-U)")
    p.add_argument("name", help=MODEL_ARGUMENT_HELP)
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--format", choices=("slash", "conllu"), default="slash",
                   help="slash (default): token/TAG separated by spaces; conllu: one block per text")
    p.add_argument("--tag-set", help="which tag set to print (default: the model's first, e.g. universal)")
    p.add_argument("--pretokenized", action="store_true",
                   help="the texts are already split into tokens at spaces")
    p.set_defaults(run=cmd_tag)

    p = commands.add_parser("transcribe", help="transcribe speech (WAV files as arguments, or their names "
                            "one per line on stdin; text<TAB>file per line)")
    p.add_argument("name", help=MODEL_ARGUMENT_HELP)
    p.add_argument("files", nargs="*", metavar="WAV")
    p.add_argument("--beam", type=int, default=8, help="beam width (1 = greedy best path)")
    p.add_argument("--plot", metavar="PNG", help="draw the first file's spectrogram and CTC alignment (per-frame "
                   "probabilities of the blank and of the best character) to this PNG file")
    p.set_defaults(run=cmd_transcribe)

    p = commands.add_parser("train", help="run a recipe, e.g. 'zoo train sentiment --cell gru'")
    p.add_argument("recipe")
    p.add_argument("options", nargs=argparse.REMAINDER, help="options passed to the recipe")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("export", help="copy a verified model directory for deployment, or "
                            "write its LiteRT / ONNX numeric core (--format)")
    p.add_argument("name")
    p.add_argument("directory")
    p.add_argument("--format", choices=("savedmodel", "tflite", "onnx"), default="savedmodel",
                   help="savedmodel (default): copy the model directory; tflite / onnx: the numeric "
                        "core with its vocabularies and contract.json (see zoo.export_formats)")
    p.set_defaults(run=cmd_export)

    p = commands.add_parser("verify", help="check checksums and re-measure the card's metrics")
    p.add_argument("name", help=MODEL_ARGUMENT_HELP)
    p.set_defaults(run=cmd_verify)

    p = commands.add_parser("package", help="build a pip-installable wheel zoo-model-NAME holding the "
                            "verified model directory")
    p.add_argument("name", help=MODEL_ARGUMENT_HELP)
    p.add_argument("--out", default="dist", help="directory the wheel is written to (default: dist)")
    p.add_argument("--version", help="package version (default: the zoo version in the card)")
    p.set_defaults(run=cmd_package)

    p = commands.add_parser("serve", help="serve models over TensorFlow Serving's REST API, with a page "
                            "to try each one at http://HOST:PORT/ (needs the serve extra)")
    _add_serve_arguments(p)
    p.set_defaults(run=cmd_serve)

    from zoo.lab.command import add_arguments as add_lab_arguments

    p = commands.add_parser("lab", help="measure the documents' claims about RNNs: run an experiment "
                            "(or all) writing its figure and JSON, or 'report' to render docs/lab.md")
    add_lab_arguments(p)
    p.set_defaults(run=cmd_lab)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command not in ("train",):
        from zoo._backend import import_tensorflow_quietly

        import_tensorflow_quietly()
    from zoo.data.cache import ChecksumError, DataUnavailableError
    from zoo.hub import UnknownModelError

    from zoo.hub import CardError

    quiet = filtered_native_stderr(NATIVE_NOISE) if args.command != "train" else contextlib.nullcontext()
    try:
        with quiet:
            return args.run(args)
    except CommandError as error:
        print(f"zoo {args.command}: {error}", file=sys.stderr)
        return error.code
    except CardError as error:
        print(f"zoo {args.command}: {error}", file=sys.stderr)
        return 1
    except (UnknownModelError, ValueError) as error:
        print(f"zoo {args.command}: {error}", file=sys.stderr)
        return 2
    except (ChecksumError, DataUnavailableError, OSError, ImportError) as error:
        print(f"zoo {args.command}: {error}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def filtered_native_stderr(noise):
    """Drop stderr lines (file descriptor 2, where TensorFlow's C++ logs go) containing any of
    the byte strings in `noise`; every other line passes through unchanged."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable file descriptor 2
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        with os.fdopen(read_end, "rb") as source:
            for line in source:
                if not any(pattern in line for pattern in noise):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="zoo-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump reads to the end
        thread.join(timeout=10)
        os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
