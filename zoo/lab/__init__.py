"""The lab: the claims our documents make about recurrent networks, each measured by a small experiment.

    python -m zoo.lab gradients              # one experiment at full scale: JSON + PNG in docs/lab/
    python -m zoo.lab all                    # all seven (≤ 30 minutes on 2 CPU cores), then the page
    python -m zoo.lab all --scale smoke      # seconds each, written to a temporary folder
    python -m zoo.lab report                 # docs/lab.md from docs/lab/*.json (never hand-edited)
    zoo lab NAME|all|report                  # the same through the `zoo` command

Every experiment is a module with a `run(scale, out_dir)` function: seeded and
deterministic, it returns a JSON-serialisable result (claim, settings,
numbers, table, checks, verdict) and draws its figure. The verdict is
computed from the checks by one rule (`zoo.lab.common.VERDICT_RULE`).

1. `gradients`: vanishing and exploding gradients over distance.
2. `long-term`: the adding and copy-memory problems over delays T.
3. `clipping`: gradient clipping on an exploding SimpleRNN.
4. `truncation`: truncated BPTT with stateful training.
5. `music`: Chung et al. (2014) on a rebuilt JSB-style piano roll.
6. `cost`: parameters, time and memory per cell.
7. `lengths`: generalisation beyond the training lengths.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from pathlib import Path

from zoo.lab.common import SCALES, check_scale, log, save_result

#: Experiment name -> module, in the order of the page.
EXPERIMENTS = {
    "gradients": "zoo.lab.gradients",
    "long-term": "zoo.lab.long_term",
    "clipping": "zoo.lab.clipping",
    "truncation": "zoo.lab.truncation",
    "music": "zoo.lab.music",
    "cost": "zoo.lab.cost",
    "lengths": "zoo.lab.lengths",
}


def check_name(name):
    """`name` itself, or a ValueError naming the experiments."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)} (or 'all')")
    return name


def default_out_dir(scale):
    """Full results go to `docs/lab/` of the source checkout (else `./lab`); smoke ones to a temporary folder.

    A smoke run never overwrites the measured results the page is made from.
    """
    check_scale(scale)
    if scale == "smoke":
        return Path(tempfile.gettempdir()) / "zoo-lab-smoke"
    from zoo.hub import source_checkout

    root = source_checkout()
    return (root / "docs" / "lab") if root is not None else Path.cwd() / "lab"


def page_path(out_dir):
    """The page rendered from a results folder: next to it, named after it (docs/lab -> docs/lab.md)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + ".md")


def run_experiment(name, scale="full", out_dir=None):
    """Run one experiment, write `<out_dir>/<name>.json` and `<name>.png`; returns the result."""
    check_name(name)
    check_scale(scale)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(EXPERIMENTS[name])
    log(f"{name}: running at scale {scale!r}")
    result = module.run(scale=scale, out_dir=str(out_dir))
    path = save_result(result, out_dir)
    verdicts = "; ".join(c["verdict"] for c in result["claims"])
    log(f"{name}: {verdicts} ({result['seconds']:.1f} s) -> {path}")
    return result


def run_all(scale="full", out_dir=None):
    """Every experiment in order, then the page; returns {name: result}."""
    from zoo.lab import report

    check_scale(scale)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(scale)
    started = time.perf_counter()
    results = {name: run_experiment(name, scale, out_dir) for name in EXPERIMENTS}
    total = time.perf_counter() - started
    log(f"all: {total:.0f} s in total; " + ", ".join(f"{n} {r['seconds']:.0f} s" for n, r in results.items()))
    page = report.write(out_dir, page_path(out_dir))
    log(f"page: {page}")
    return results


__all__ = ["EXPERIMENTS", "SCALES", "check_name", "default_out_dir", "page_path", "run_experiment", "run_all"]
