"""The `zoo` command: list, inspect, run, train, export and verify pretrained models.

    zoo list
    zoo info sentiment-bilstm-mr
    zoo predict sentiment-bilstm-mr "a gorgeous, witty film" "a dull mess"
    echo "one review per line" | zoo predict sentiment-bilstm-mr
    zoo train sentiment --cell gru --epochs 3
    zoo export sentiment-bilstm-mr ./deploy/sentiment
    zoo verify sentiment-bilstm-mr

Errors print one line to stderr and exit non-zero (2 for bad usage or input,
1 when a check fails).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status `code`."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


def recipes_dir():
    return Path(__file__).resolve().parent.parent / "recipes"


def known_recipes():
    directory = recipes_dir()
    return sorted(p.stem for p in directory.glob("*.py") if not p.name.startswith("_"))


# -- commands ------------------------------------------------------------------


def cmd_list(args):
    from zoo import hub
    from zoo.report import headline

    names = hub.list_models(args.pattern)
    if not names:
        print(f"no models in {hub.models_dir()}")
        return 0
    for name in names:
        card = hub.info(name)
        print(f"{name:32s} {card.get('task', '?'):10s} {card.get('io', '?'):12s} {headline(card)}")
    return 0


def cmd_info(args):
    from zoo import hub

    print(json.dumps(hub.info(args.name), indent=2))
    return 0


def _read_inputs(items):
    if items:
        texts = list(items)
    elif not sys.stdin.isatty():
        texts = [line.rstrip("\n") for line in sys.stdin]
    else:
        texts = []
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise CommandError("no input: pass texts as arguments or one per line on stdin")
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
    for text, probability in zip(texts, task.serve_predictions(serving, texts)):
        print(task.format_prediction(text, float(probability)))
    return 0


def cmd_train(args):
    if args.recipe not in known_recipes():
        raise CommandError(f"unknown recipe {args.recipe!r}; known recipes: {', '.join(known_recipes())}")
    script = recipes_dir() / f"{args.recipe}.py"
    return subprocess.call([sys.executable, str(script), *args.options])


def cmd_export(args):
    from zoo import hub

    hub.verify_files(args.name)
    target = Path(args.directory)
    if target.exists() and any(target.iterdir()):
        raise CommandError(f"export target {target} exists and is not empty")
    staging = target.with_name(f".staging-{target.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(hub.model_dir(args.name), staging)
    if target.exists():
        target.rmdir()
    os.replace(staging, target)
    print(f"exported {args.name} to {target} (serving SavedModel: {target / hub.SERVING_DIR})")
    return 0


def compare_metrics(recorded, measured, prefix="", atol=1e-4, rtol=1e-4):
    """Differences between recorded and re-measured metrics beyond float noise."""
    problems = []
    for key, value in measured.items():
        where = f"{prefix}{key}"
        if key not in recorded:
            problems.append(f"{where}: missing from the card")
        elif isinstance(value, dict):
            problems += compare_metrics(recorded[key], value, where + ".", atol, rtol)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if abs(value - recorded[key]) > atol + rtol * abs(recorded[key]):
                problems.append(f"{where}: card {recorded[key]} vs measured {value}")
    return problems


def cmd_verify(args):
    from zoo import hub
    from zoo.tasks import get_task

    files = hub.verify_files(args.name)
    print(f"checksums: {len(files)} files OK")
    card = hub.info(args.name)
    model = hub.load(args.name, verify=False)
    measured = get_task(card["task"]).remeasure(model, card)
    problems = compare_metrics(card.get("metrics", {}), measured)
    for split, values in measured.items():
        shown = {k: v for k, v in values.items() if isinstance(v, float)}
        print(f"re-measured {split}: " + ", ".join(f"{k}={v:.6g}" for k, v in shown.items()))
    if problems:
        raise CommandError("metrics differ from the card: " + "; ".join(problems), code=1)
    print(f"{args.name}: card metrics reproduced")
    return 0


def cmd_generate(args):
    from zoo import hub
    from zoo.tasks import get_task

    card = hub.info(args.name)
    task = get_task(card["task"])
    if not hasattr(task, "generate_cli"):
        raise CommandError(f"'zoo generate' runs generative models; {args.name} is {card.get('io')}")
    return task.generate_cli(args.name, args)


# -- entry point -----------------------------------------------------------------


def build_parser():
    parser = argparse.ArgumentParser(prog="zoo", description="Pretrained recurrent models: "
                                     "list, inspect, run, train, export and verify them.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("list", help="list the pretrained models")
    p.add_argument("pattern", nargs="?", help="optional glob pattern, e.g. 'sentiment-*'")
    p.set_defaults(run=cmd_list)

    p = commands.add_parser("info", help="print a model's card")
    p.add_argument("name")
    p.set_defaults(run=cmd_info)

    p = commands.add_parser("predict", help="classify texts (arguments, or lines on stdin)")
    p.add_argument("name")
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("generate", help="generate a sequence with a generative model")
    p.add_argument("name")
    p.add_argument("--key", required=True, help='e.g. "D major", "F# minor"')
    p.add_argument("--length", type=int, default=64, help="number of events")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="melody.mid", help="MIDI file to write")
    p.set_defaults(run=cmd_generate)

    p = commands.add_parser("train", help="run a recipe, e.g. 'zoo train sentiment --cell gru'")
    p.add_argument("recipe")
    p.add_argument("options", nargs=argparse.REMAINDER, help="options passed to the recipe")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("export", help="copy a verified model directory for deployment")
    p.add_argument("name")
    p.add_argument("directory")
    p.set_defaults(run=cmd_export)

    p = commands.add_parser("verify", help="check checksums and re-measure the card's metrics")
    p.add_argument("name")
    p.set_defaults(run=cmd_verify)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command not in ("train",):
        from zoo._backend import import_tensorflow_quietly

        import_tensorflow_quietly()
    from zoo.data.cache import ChecksumError, DataUnavailableError
    from zoo.hub import UnknownModelError

    try:
        return args.run(args)
    except CommandError as error:
        print(f"zoo {args.command}: {error}", file=sys.stderr)
        return error.code
    except (UnknownModelError, ValueError) as error:
        print(f"zoo {args.command}: {error}", file=sys.stderr)
        return 2
    except (ChecksumError, DataUnavailableError, OSError) as error:
        print(f"zoo {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
