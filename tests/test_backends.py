"""zoo.layers on every Keras backend, and `benchmarks/gpu_check.py` where no GPU is visible.

Keras fixes its backend at import, so each backend runs in a subprocess:
`tests/backend_cases.py` (the layer cases against the NumPy oracle and
`keras.layers`) under `KERAS_BACKEND=torch` with TensorFlow hidden, as on a
machine with PyTorch and the `keras` wheel only, and under JAX where it is
installed (JAX is not a dependency of the project: that test skips without it).
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from recipe_helpers import ROOT, load_script

TESTS = ROOT / "tests"
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_JAX = importlib.util.find_spec("jax") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch is not installed (pip install 'zoo[torch]')")


def run_python(script, arguments, backend, hide_tensorflow=False, timeout=300):
    """Run a repository script under `backend` in a fresh process; returns the completed process."""
    prelude = "import sys, runpy; sys.path.insert(0, sys.argv[1]); "
    if hide_tensorflow:
        prelude += "import without_tensorflow; "
    prelude += "script = sys.argv[2]; sys.argv = sys.argv[2:]; runpy.run_path(script, run_name='__main__')"
    # One thread: the tensors are tiny, and PyTorch's spinning threads crawl on a busy machine.
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
                   "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", prelude, str(TESTS), str(ROOT / script), *arguments],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout,
    )


def run_layer_cases(tmp_path, backend, quick, hide_tensorflow=False):
    summary_path, decoders_path = tmp_path / "summary.json", tmp_path / "decoders.npz"
    arguments = ["--output", str(summary_path), "--decoders", str(decoders_path)]
    completed = run_python("tests/backend_cases.py", arguments + (["--quick"] if quick else []),
                           backend, hide_tensorflow=hide_tensorflow)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(summary_path.read_text()), dict(np.load(decoders_path))


def check_summary(summary, backend, expected_cases):
    assert summary["backend"] == backend
    assert len(summary["results"]) == expected_cases
    assert all(row["ok"] for row in summary["results"])
    # Off TensorFlow the layers always run Keras's generic loop.
    assert summary["paths"] == ["loop"]
    kinds = {row["case"].split()[0] for row in summary["results"]}
    assert kinds == {"forward", "gradients", "keras"}


# 4 cells x 4 variants x (forward, gradients) per shape, and 4 cells x 3 Keras variants.
QUICK_CASES = 4 * 4 * 2 + 4 * 3
FULL_CASES = 2 * 4 * 4 * 2 + 4 * 3


@needs_torch
def test_layer_cases_pass_under_torch_without_tensorflow(tmp_path):
    summary, decoders = run_layer_cases(tmp_path, "torch", quick=True, hide_tensorflow=True)
    check_summary(summary, "torch", QUICK_CASES)
    assert summary["tensorflow_loaded"] is False

    # The attention decoders (input feeding included) give TensorFlow's numbers.
    backend_cases = load_script("tests/backend_cases.py", "backend_cases_here")
    on_tensorflow = backend_cases.decoder_outputs()
    assert sorted(decoders) == sorted(on_tensorflow) and len(decoders) == 2 * len(backend_cases.DECODERS)
    for key, expected in on_tensorflow.items():
        np.testing.assert_allclose(decoders[key], expected, atol=1e-5, err_msg=key)


@pytest.mark.slow
@needs_torch
def test_all_layer_cases_pass_under_torch(tmp_path):
    summary, _ = run_layer_cases(tmp_path, "torch", quick=False)
    check_summary(summary, "torch", FULL_CASES)


@pytest.mark.slow  # JAX differentiates the eager loop op by op: about a minute
@pytest.mark.skipif(not HAVE_JAX, reason="JAX is not installed (not a zoo dependency; pip install jax)")
def test_layer_cases_pass_under_jax(tmp_path):
    summary, decoders = run_layer_cases(tmp_path, "jax", quick=True, hide_tensorflow=True)
    check_summary(summary, "jax", QUICK_CASES)
    assert summary["tensorflow_loaded"] is False
    on_tensorflow = load_script("tests/backend_cases.py", "backend_cases_here").decoder_outputs()
    for key, expected in on_tensorflow.items():
        np.testing.assert_allclose(decoders[key], expected, atol=1e-5, err_msg=key)


# -- benchmarks/gpu_check.py --------------------------------------------------------


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("benchmarks/gpu_check.py", "gpu_check_under_test")


def test_gpu_check_without_a_gpu_says_so_and_exits_0(gpu_check, capsys):
    # The test machines have no GPU; where one is visible this test has nothing to say.
    if gpu_check.visible_gpu("tensorflow") is not None:
        pytest.skip("a GPU is visible here: run benchmarks/gpu_check.py itself")
    assert gpu_check.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "no GPU is visible to the Keras backend 'tensorflow'" in out
    assert "## " not in out  # no report without a GPU


@needs_torch
def test_gpu_check_runs_under_torch_without_tensorflow(tmp_path):
    report = tmp_path / "report.md"
    completed = run_python(
        "benchmarks/gpu_check.py",
        ["--cpu-stand-in", "--quick", "--timing-steps", "1", "--cells", "lstm,gru_reset_after",
         "--output", str(report)],
        "torch", hide_tensorflow=True,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    if "no GPU is visible to the Keras backend 'torch'" not in completed.stdout:
        pytest.skip("a GPU is visible here: run benchmarks/gpu_check.py itself")
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| lstm |", "| gru_reset_after |"))]
    checks = [row for row in rows if row.count("|") == 8]
    assert len(checks) == 2 * 7 and all(row.endswith("| ok |") for row in checks)
    assert all("| loop | loop |" in row for row in checks)
    timings = [row for row in rows if row.count("|") == 6]
    assert len(timings) == 2 and all("| loop |" in row for row in timings)
    assert "the recipes need the TensorFlow backend" in text
    assert "backend: torch" in text


def test_gpu_check_with_the_cpu_standing_in_under_tensorflow(gpu_check, capsys):
    assert gpu_check.main(["--cpu-stand-in", "--cells", "gru_reset_after", "--skip-timing"]) == 0
    out = capsys.readouterr().out
    checks = [line for line in out.splitlines() if line.startswith("| gru_reset_after |")]
    assert len(checks) == len(gpu_check.CONFIGURATIONS)
    assert all(line.endswith("| ok |") for line in checks)
    fused = [line for line in checks if "| keras_loop |" not in line]
    assert all("| fused/" in line for line in fused)
    assert "| keras_loop | loop | loop |" in out
    assert "Not run: no GPU" in out


def test_gpu_check_fails_when_a_comparison_is_off(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "FORWARD_TOLERANCE", -1.0)
    assert gpu_check.main(["--cpu-stand-in", "--cells", "rnn", "--skip-timing", "--skip-recipes"]) == 1
    out = capsys.readouterr().out
    assert out.count("| FAILED |") == len(gpu_check.CONFIGURATIONS)


def test_gpu_check_comparison_measures_relative_errors(gpu_check):
    want = np.array([[0.0, 10.0], [-3.0, 1.0]])
    assert gpu_check.worst_relative_error(want, want) == 0.0
    assert gpu_check.worst_relative_error(want + [[0.0, 1.1e-3], [0, 0]], want) == pytest.approx(1e-4)
    assert gpu_check.worst_relative_error(want[:1], want) == float("inf")
    forward, gradient, worst = gpu_check.compare(
        [want], {"x": want, "kernel": want + 2e-3}, [want], {"x": want, "kernel": want}
    )
    assert forward == 0.0 and worst == "kernel" and gradient == pytest.approx(2e-3)
    _, gradient, worst = gpu_check.compare(
        [want], {"x": want, "bias": None}, [want], {"x": want, "bias": want}
    )
    assert gradient == float("inf") and worst == "bias"


def test_gpu_check_rejects_unknown_cells(gpu_check):
    with pytest.raises(SystemExit):
        gpu_check.parse_arguments(["--cells", "lstm,transformer"])


def test_gpu_check_reads_every_recipes_smoke_settings(gpu_check):
    settings = gpu_check.recipe_smoke_settings()
    assert sorted(settings) == sorted(path.stem for path in (ROOT / "recipes").glob("*.py"))
    assert settings["sentiment"] == ["--max-examples", "400", "--epochs", "1"]
    # A command continued over two lines is read whole; --output-dir is the check's own.
    assert settings["translation"][-1] == "--no-ablation"
    assert all("--output-dir" not in arguments and arguments for arguments in settings.values())
