"""Every recipe, killed after its first epoch and rerun, ends with the weights of an uninterrupted run.

Slow (three smoke runs per recipe): `make test-slow`. The data order, the random
generators (dropout, augmentation), the optimizer and the learning-rate state all
have to come back for the weights to match; `tests/test_training.py` checks the
same on a tiny model in the fast suite.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from recipe_helpers import ROOT

pytestmark = pytest.mark.slow

RECIPES = {
    "sentiment": ["--held-out", "amazon-snippets", "--max-examples", "240", "--units", "8", "--embedding-dim", "16", "--max-tokens", "1500",
                  "--batch-size", "32", "--wide-epochs", "2"],
    "translation": ["--max-examples", "120", "--units", "16", "--embedding-dim", "8", "--no-ablation",
                    "--no-dictionary-ablation", "--dictionary-pairs", "0"],
    "captioning": ["--max-examples", "96", "--units", "16", "--embedding-dim", "8", "--filters", "4,4,4,8",
                   "--batch-size", "32", "--no-leave-one-style-out"],
    "speech": ["--corpus-size", "160", "--max-examples", "32", "--units", "8", "--conv-filters", "8",
               "--layers", "1", "--baselines", "dtw", "--beam-width", "4"],
    "music": ["--max-train-pieces", "12", "--units", "16", "--key-embedding-dim", "8",
              "--token-embedding-dim", "16", "--in-key-seeds", "2", "--in-key-length", "16",
              "--throughput-events", "16"],
    "forecasting": ["--members", "1", "--units", "8", "--max-series", "25", "--heldout-every", "15"],
    "timeseries_classification": ["--dataset", "JapaneseVowels", "--seeds", "1", "--max-examples", "40",
                                  "--units", "4", "--filters", "4", "--min-batches", "2"],
    "tagging": ["--max-sentences", "150", "--units", "8", "--char-units", "4", "--word-dim", "8",
                "--char-dim", "4", "--baselines", "most_frequent", "--heldout-genres", "", "--patience", "5"],
    "language_model": ["--max-tokens", "3000", "--units", "16", "--batch-size", "4", "--steps", "10",
                       "--samples-length", "4", "--dropout", "0.3"],
}


def _run(recipe, options, root, name, kill=False):
    env = {**os.environ, "TF_DETERMINISTIC_OPS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("ZOO_KILL_AFTER_EPOCH", None)
    if kill:
        env["ZOO_KILL_AFTER_EPOCH"] = "1"  # the first training to finish an epoch
    command = [sys.executable, str(ROOT / "recipes" / f"{recipe}.py"), *options, "--epochs", "3",
               "--name", name, "--output-dir", str(root / "hub"), "--run-dir", str(root / name)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, cwd=str(ROOT))


def _weights(path):
    import zoo

    return [np.asarray(w) for w in zoo.load(str(path), compile=False).get_weights()]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_resumed_after_a_kill_equals_an_uninterrupted_run(recipe, tmp_path):
    options = RECIPES[recipe]
    whole = _run(recipe, options, tmp_path, "whole")
    if "DataUnavailableError" in whole.stderr:
        pytest.skip(f"{recipe}: data unavailable")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _run(recipe, options, tmp_path, "resumed", kill=True)
    assert killed.returncode == -9, killed.stderr[-3000:]
    finished = _run(recipe, options, tmp_path, "resumed")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "resuming from the checkpoint" in finished.stdout
    expected, got = _weights(tmp_path / "hub" / "whole"), _weights(tmp_path / "hub" / "resumed")
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
