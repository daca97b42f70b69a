"""The layer correctness cases on whichever Keras backend `KERAS_BACKEND` names.

Run as a script in a fresh process (`tests/test_backends.py` does, once per
backend), because Keras fixes its backend at import:

    KERAS_BACKEND=torch python tests/backend_cases.py --output result.json

It checks the zoo layers against the NumPy oracle (`zoo.reference`: forward
within 1e-5, backpropagation through time within 1e-4, gradients taken by
the backend itself through `benchmarks/gpu_check.py`'s helper, the one the
GPU check relies on) and against `keras.layers` with copied weights
(`zoo.convert`), and saves the outputs of attention decoders with fixed
weights so that the test can compare them across backends. It writes a JSON
summary and exits 1 if a case failed.
"""

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import gpu_check  # noqa: E402  (sets nothing when KERAS_BACKEND is set)
import keras  # noqa: E402
from layer_cases import CELLS, make_layer, random_mask, reference_backward, reference_forward  # noqa: E402
from zoo import convert, layers  # noqa: E402

FORWARD_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-4
SHAPES = [(2, 5, 3, 4), (4, 12, 5, 8)]  # (batch, timesteps, input_dim, units)
# (go_backwards, masked, with_initial_state)
VARIANTS = [(False, False, False), (True, False, True), (False, True, True), (True, True, False)]
KERAS_CLASSES = {
    "rnn": (keras.layers.SimpleRNN, {}),
    "lstm": (keras.layers.LSTM, {}),
    "gru": (keras.layers.GRU, {"reset_after": False}),
    "gru_reset_after": (keras.layers.GRU, {"reset_after": True}),
}
DECODERS = [  # (cell, attention, input_feeding)
    ("lstm", "additive", False),
    ("gru", "general", True),
    ("rnn", "dot", True),
    ("lstm", "additive", True),
]


def as_numpy(value):
    """NumPy float64 of a NumPy array or a tensor of any backend (detached from autograd)."""
    if not isinstance(value, np.ndarray):
        value = keras.ops.convert_to_numpy(value)
    return np.asarray(value, "float64")


def largest_difference(got, want):
    return float(np.max(np.abs(as_numpy(got) - as_numpy(want))))


def oracle_cases(results, paths, shapes=SHAPES, seed=1234):
    """Forward and gradients of every cell, shape and variant against the NumPy oracle."""
    rng = np.random.default_rng(seed)
    for name in CELLS:
        for shape in shapes:
            for go_backwards, masked, with_initial_state in VARIANTS:
                batch, timesteps, input_dim, units = shape
                layer = make_layer(name, units, input_dim, rng, go_backwards=go_backwards)
                x = rng.normal(size=(batch, timesteps, input_dim)).astype("float32")
                state_count = CELLS[name][2]
                states = [
                    rng.normal(size=(batch, units)).astype("float32") if with_initial_state
                    else np.zeros((batch, units), "float32")
                    for _ in range(state_count)
                ]
                mask = random_mask(rng, batch, timesteps) if masked else None
                processed_mask = None if mask is None else (mask[:, ::-1] if go_backwards else mask)
                d_sequence = rng.normal(size=(batch, timesteps, units)).astype("float32")
                if processed_mask is not None:
                    # Outputs at masked steps are a convention; only real steps carry loss.
                    d_sequence = d_sequence * processed_mask[:, :, None]
                d_states = [rng.normal(size=(batch, units)).astype("float32") for _ in range(state_count)]

                outputs, grads = gpu_check.run_with_gradients(
                    layer, x, states if with_initial_state else None, mask,
                    [d_sequence] + d_states, training=True,
                )
                paths.add(layer.last_recurrence_path)
                x_in_order = x[:, ::-1] if go_backwards else x
                want_outputs, want_states, cache = reference_forward(
                    name, layer, x_in_order, states, processed_mask
                )
                case = (f"{name} {shape} go_backwards={go_backwards} masked={masked} "
                        f"states={with_initial_state}")
                forward = max(
                    largest_difference(got, want)
                    for got, want in zip(outputs, [want_outputs] + list(want_states))
                )
                results.append({"case": f"forward {case}", "error": forward,
                                "ok": forward <= FORWARD_TOLERANCE})

                expected, state_keys = reference_backward(name, d_sequence, d_states, cache)
                expected_x = expected["x"][:, ::-1] if go_backwards else expected["x"]
                pairs = [(grads["x"], expected_x)]
                for index, key in enumerate(state_keys if with_initial_state else []):
                    pairs.append((grads[f"state{index}"], expected[key]))
                pairs += [(grads[key], expected[key]) for key in ("kernel", "recurrent_kernel", "bias")]
                gradient = max(
                    largest_difference(got, want) / (1.0 + float(np.max(np.abs(want))))
                    for got, want in pairs
                )
                results.append({"case": f"gradients {case}", "error": gradient,
                                "ok": gradient <= GRADIENT_TOLERANCE})


def keras_cases(results, paths, seed=99):
    """zoo layers converted from `keras.layers` (copied weights) give Keras's numbers, and back."""
    rng = np.random.default_rng(seed)
    for name, (keras_class, extra) in KERAS_CLASSES.items():
        for go_backwards, masked in [(False, False), (True, False), (False, True)]:
            keras_layer = keras_class(6, return_sequences=True, return_state=True,
                                      go_backwards=go_backwards, **extra)
            keras_layer.build((None, None, 3))
            keras_layer.set_weights(
                [rng.normal(0, 0.5, size=w.shape).astype("float32") for w in keras_layer.get_weights()]
            )
            ours = convert.from_keras(keras_layer)
            x = rng.normal(size=(4, 9, 3)).astype("float32")
            mask = keras.ops.convert_to_tensor(random_mask(rng, 4, 9)) if masked else None
            want = keras_layer(x, mask=mask)
            got = ours(x, mask=mask)
            paths.add(ours.last_recurrence_path)
            back = convert.to_keras(ours)
            error = max(
                [largest_difference(a, b) for a, b in zip(got, want)]
                + [largest_difference(a, b) for a, b in zip(back(x, mask=mask), want)]
            )
            same_class = type(ours).__name__ == type(keras_layer).__name__ and type(back) is keras_class
            results.append({"case": f"keras {name} go_backwards={go_backwards} masked={masked}",
                            "error": error, "ok": same_class and error <= FORWARD_TOLERANCE})


def decoder_outputs(seed=7):
    """Outputs and weights of attention decoders with fixed weights, keyed for an .npz file."""
    rng = np.random.default_rng(seed)
    batch, source, target, embed, units = 3, 6, 4, 5, 6
    values = rng.normal(size=(batch, source, units)).astype("float32")
    inputs = rng.normal(size=(batch, target, embed)).astype("float32")
    source_mask = np.ones((batch, source), bool)
    source_mask[0, 4:] = False
    arrays = {}
    for cell, attention, feeding in DECODERS:
        decoder = layers.AttentionDecoder(cell, units, attention=attention, input_feeding=feeding)
        decoder(inputs, values, mask=source_mask)  # builds every weight
        decoder.set_weights(
            [rng.normal(0, 0.5, size=w.shape).astype("float32") for w in decoder.get_weights()]
        )
        outputs, weights = decoder(inputs, values, mask=keras.ops.convert_to_tensor(source_mask))
        key = f"{cell}_{attention}_{'feeding' if feeding else 'plain'}"
        arrays[f"{key}_outputs"] = keras.ops.convert_to_numpy(outputs)
        arrays[f"{key}_weights"] = keras.ops.convert_to_numpy(weights)
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description="zoo layer cases on the active Keras backend")
    parser.add_argument("--output", required=True, help="JSON summary to write")
    parser.add_argument("--decoders", help="also save attention decoder outputs to this .npz file")
    parser.add_argument("--quick", action="store_true",
                        help=f"oracle cases at the first shape only, {SHAPES[0]}")
    args = parser.parse_args(argv)
    results, paths = [], set()
    oracle_cases(results, paths, shapes=SHAPES[:1] if args.quick else SHAPES)
    keras_cases(results, paths)
    if args.decoders:
        np.savez(args.decoders, **decoder_outputs())
    summary = {
        "backend": keras.backend.backend(),
        "paths": sorted(str(path) for path in paths),
        "tensorflow_loaded": "tensorflow" in sys.modules,
        "results": results,
    }
    Path(args.output).write_text(json.dumps(summary, indent=1))
    failed = [row for row in results if not row["ok"]]
    for row in failed:
        print(f"FAILED {row['case']}: error {row['error']:.2e}")
    print(f"{len(results) - len(failed)} of {len(results)} cases passed on {summary['backend']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
