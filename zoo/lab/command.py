"""The lab's command line: `python -m zoo.lab ...` and `zoo lab ...` (see `zoo.lab`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.lab import EXPERIMENTS, SCALES


def build_parser(prog="python -m zoo.lab"):
    parser = argparse.ArgumentParser(prog=prog, description="Measure the documents' claims about RNNs.")
    add_arguments(parser)
    return parser


def add_arguments(parser):
    parser.add_argument("name", metavar="NAME",
                        help=f"an experiment ({', '.join(EXPERIMENTS)}), 'all', or 'report' (render the page)")
    parser.add_argument("--scale", default="full",
                        help=f"one of {', '.join(SCALES)} (default full; smoke takes seconds and writes to a "
                             f"temporary folder unless --out is given)")
    parser.add_argument("--out", help="folder of the JSON and PNG files (default: docs/lab of the checkout)")
    parser.add_argument("--check", action="store_true",
                        help="with 'report': exit 1 if the page is not what the JSON files give")


def run(args):
    """Carry out parsed arguments; returns an exit status (ValueError for bad names or scales)."""
    from zoo import lab
    from zoo.lab import report

    if args.name == "report":
        out_dir = Path(args.out) if args.out else lab.default_out_dir("full")
        page = lab.page_path(out_dir)
        if args.check:
            if report.is_current(out_dir, page):
                print(f"{page} is up to date")
                return 0
            print(f"{page} is out of date: run python -m zoo.lab report", file=sys.stderr)
            return 1
        print(f"wrote {report.write(out_dir, page)}")
        return 0
    if args.name == "all":
        lab.run_all(args.scale, args.out)
        return 0
    lab.check_name(args.name)
    result = lab.run_experiment(args.name, args.scale, args.out)
    for entry in result["claims"]:
        print(f"{result['experiment']}: {entry['verdict']}: {entry['claim']}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    from zoo._backend import import_tensorflow_quietly

    import_tensorflow_quietly()
    try:
        return run(args)
    except ValueError as error:
        print(f"python -m zoo.lab: {error}", file=sys.stderr)
        return 2
