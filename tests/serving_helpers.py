"""Run a hub model's SavedModel signatures under the TF1 session loader and under `tf.saved_model.load`.

`saved_model_cli run` and older TensorFlow Serving clients load a SavedModel
with `tf.compat.v1.saved_model.loader.load` into a `Session`, which restores
only the variables held by the SavedModel's saver. `check_session_loader(name)`
runs every signature of hub model `name` that way, in a separate process with
eager execution off and without zoo, and compares the outputs with those of
`tf.saved_model.load`. Inputs come from the task module's `serving_examples()`
where it has one, else from the signature's input specs.

The separate process is started once per test process and serves one model
after another, each loaded into a graph and a session of its own (it never
imports zoo, which it checks after every model): importing TensorFlow costs
seconds, a model's check well under one.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from zoo import hub
from zoo.tasks import get_task

SESSION_RUNNER = textwrap.dedent("""
    import base64, json, os, sys, traceback
    import numpy as np
    import tensorflow as tf

    def decoded(value):  # binary inputs travel through JSON as "base64:<text>"
        if isinstance(value, list):
            return [decoded(v) for v in value]
        if isinstance(value, str) and value.startswith("base64:"):
            return base64.b64decode(value[len("base64:"):])
        return value

    def run(path, inputs):
        results = {}
        with tf.compat.v1.Session(graph=tf.Graph()) as session:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
            for name, values in inputs.items():
                signature = meta_graph.signature_def[name]
                feeds = {signature.inputs[key].name: np.asarray(
                             decoded(value), tf.dtypes.as_dtype(signature.inputs[key].dtype).as_numpy_dtype)
                         for key, value in values.items()}
                fetches = {key: output.name for key, output in signature.outputs.items()}
                outputs = session.run(fetches, feeds)
                results[name] = {key: np.asarray(value).tolist() for key, value in outputs.items()}
        assert not any(m == "zoo" or m.startswith("zoo.") for m in sys.modules)
        return results

    # Answers go to a private copy of stdout, one JSON line per request; anything else written to
    # stdout (by Python or by TensorFlow's C++ side) lands on stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    tf.compat.v1.disable_eager_execution()
    for line in sys.stdin:  # one request a line: {"path": ..., "inputs": {signature: {key: value}}}
        request = json.loads(line)
        try:
            answer = {"results": run(request["path"], request["inputs"])}
        except BaseException:
            answer = {"error": traceback.format_exc()}
        answers.write(json.dumps(answer, default=lambda b: b.decode("utf-8", "replace")) + "\\n")
        answers.flush()
""")


class _SessionRunner:
    """The process that runs SESSION_RUNNER, started on first use (again if it died)."""

    def __init__(self):
        self.process = None
        self.stderr = None

    def _start(self):
        import atexit
        import tempfile

        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen([sys.executable, "-c", SESSION_RUNNER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.stderr, text=True, cwd="/")
        atexit.register(self.close)

    def _stderr_tail(self):
        self.stderr.seek(0, 2)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - 3000))
        return self.stderr.read().decode("utf-8", "replace")

    def run(self, path, inputs, timeout=600):
        """{signature: {output: value}} of the SavedModel at `path` fed `inputs` in a TF1 session."""
        import select

        if self.process is None or self.process.poll() is not None:
            self._start()
        try:
            self.process.stdin.write(json.dumps({"path": str(path), "inputs": inputs}) + "\n")
            self.process.stdin.flush()
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            line = self.process.stdout.readline() if ready else ""
        except BrokenPipeError:
            line = ""
        if not line:  # timed out or died: start afresh next time
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{path}: the session runner gave no answer: {self._stderr_tail()}")
        answer = json.loads(line)
        assert "error" not in answer, f"{path}: {answer.get('error', '')[-3000:]}"
        return answer["results"]

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_session_runner = _SessionRunner()


def _decoded(value):
    """Inputs with "base64:<text>" strings turned into bytes (how binary inputs travel through JSON)."""
    import base64

    if isinstance(value, list):
        return [_decoded(v) for v in value]
    if isinstance(value, str) and value.startswith("base64:"):
        return base64.b64decode(value[len("base64:"):])
    return value


def _example_from_spec(spec):
    """A small input of `spec`'s dtype and shape: unknown dimensions are 2, values 1 / "example"."""
    import tensorflow as tf

    shape = [2 if size is None else size for size in spec.shape.as_list()]
    if spec.dtype == tf.string:
        return np.full(shape, "example", dtype=object).tolist()
    return np.ones(shape, spec.dtype.as_numpy_dtype).tolist()


def _signature_inputs(name, serving):
    card = hub.info(name)
    task = get_task(card["task"])
    if hasattr(task, "serving_examples_for_card"):  # inputs whose shape depends on the model
        examples = task.serving_examples_for_card(card)
    else:
        examples = task.serving_examples() if hasattr(task, "serving_examples") else {}
    inputs = {}
    for signature, function in serving.signatures.items():
        specs = function.structured_input_signature[1]
        given = examples.get(signature, {})
        inputs[signature] = {key: given[key] if key in given else _example_from_spec(spec)
                             for key, spec in specs.items()}
    return inputs


def _as_comparable(value):
    value = np.asarray(value)
    if value.dtype == object or value.dtype.kind in "SU":
        return np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v,
                            otypes=[object])(value)
    return value


def check_session_loader(name, serving=None):
    """Assert that every signature of hub model `name` gives the same outputs in a TF1 session.
    `serving`: the model's SavedModel already loaded with `tf.saved_model.load` (else it is loaded here)."""
    import tensorflow as tf

    path = hub.model_dir(name) / hub.SERVING_DIR
    if serving is None:
        serving = tf.saved_model.load(str(path))
    inputs = _signature_inputs(name, serving)
    assert inputs, f"{name}: the SavedModel has no signature"
    in_session = _session_runner.run(path, inputs)
    for signature, values in inputs.items():
        function = serving.signatures[signature]
        specs = function.structured_input_signature[1]
        expected = function(**{key: tf.constant(_decoded(value), specs[key].dtype)
                               for key, value in values.items()})
        assert sorted(in_session[signature]) == sorted(expected), signature
        for key, value in expected.items():
            want, got = _as_comparable(value.numpy()), _as_comparable(in_session[signature][key])
            assert got.shape == want.shape, (signature, key)
            if want.dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6,
                                           err_msg=f"{name} {signature} {key}")
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"{name} {signature} {key}")


def assert_weights_saved_once(saved_model_dir, parameter_count):
    """The SavedModel's checkpoint holds each float weight of the model once (not a Keras copy as well)."""
    import tensorflow as tf

    checkpoint = str(Path(saved_model_dir) / "variables" / "variables")
    reader = tf.train.load_checkpoint(checkpoint)
    dtypes = reader.get_variable_to_dtype_map()
    floats = sum(int(np.prod(shape)) for name, shape in reader.get_variable_to_shape_map().items()
                 if dtypes[name].is_floating and "OBJECT_GRAPH" not in name)
    assert floats == parameter_count, f"{floats} float values saved for {parameter_count} parameters"
