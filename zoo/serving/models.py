"""The models one server holds: their signatures, metadata, limits and batching policy.

`ServedModel.load(model, config)` loads the verified serving SavedModel of a
hub name, an installed model package, or a model directory's path or URL
(`zoo.hub` resolves it), reads its card, and describes every signature as
`Signature`: its inputs and outputs, the bounds a request must keep, and
whether concurrent requests may share one call.

Which signatures are batched. Requests are merged into one call only when
that call gives each of them exactly what it would get alone:

- every output has a batch dimension and no other dimension of unknown size
  (an output padded to the longest row, such as per-word tags or an attention
  map, would be padded to the other requests' rows too);
- the signature does not sample from a `seed` (a row's random draws depend on
  its place in the batch);
- requests are merged only with requests of the same scalar arguments
  (`beam_width`, `max_length`) and the same non-batch input shapes (image
  sizes, series lengths);
- task particulars: a translation model's `serving_default` chooses its decode
  length from the longest text of the call, so only requests whose longest
  text has the same number of tokens are merged.

The others run one call per request, through the same queue and limits.
"""

import dataclasses
import re
from pathlib import Path

import numpy as np

from zoo.serving import limits as limits_module
from zoo.serving.limits import ServingError, invalid
from zoo.serving.tensors import Checks, TensorSpec

#: The one version every served model has (TensorFlow Serving's URLs name versions).
VERSION = "1"

#: Signature names of the SavedModel that are not served (TensorFlow's own initialisation).
HIDDEN_SIGNATURES = ("__saved_model_init_op",)


def _longest_source_text(request):
    """Tokens of the longest text of a translation request, as the model counts them."""
    import tensorflow as tf

    from zoo.tasks.translation import split_tokens

    texts = request.arrays["texts"]
    if texts.size == 0:
        return 0
    return int(tf.reduce_max(split_tokens(tf.constant(texts, tf.string)).row_lengths()))


#: (task, signature) -> a function of the decoded request whose value must also be equal for
#: requests to share a call (see the module docstring).
BATCH_KEYS = {("translation", "serving_default"): _longest_source_text}


def batching_policy(inputs, outputs):
    """(whether requests of a signature may share a call, why) from its inputs and outputs."""
    if not any(not spec.is_scalar for spec in inputs.values()):
        return False, "it has no batched input"
    if "seed" in inputs:
        return False, "it samples from a seed: a row's random draws depend on its place in the batch"
    for spec in outputs.values():
        if spec.is_scalar or spec.shape[0] is not None:
            return False, f"output '{spec.name}' has no batch dimension"
        if any(size is None for size in spec.shape[1:]):
            return False, (f"output '{spec.name}' is padded to the longest row of the call, which would "
                           f"depend on the other requests")
    return True, "rows are independent; requests with equal scalar arguments and input shapes share a call"


def _spec(name, tf_spec):
    import tensorflow as tf

    dtype = np.dtype(object) if tf_spec.dtype == tf.string else np.dtype(tf_spec.dtype.as_numpy_dtype)
    return TensorSpec(name, dtype, tuple(tf_spec.shape.as_list()) if tf_spec.shape.rank is not None else ())


class Signature:
    """One signature of a served model: its specs, bounds, batching policy, and the call itself."""

    def __init__(self, model, name, function, checks, max_rows, batching_enabled):
        self.model = model
        self.name = name
        self.function = function
        self.inputs = {key: _spec(key, spec) for key, spec in function.structured_input_signature[1].items()}
        self.outputs = {key: _spec(key, spec) for key, spec in function.structured_outputs.items()}
        self.checks = checks
        self.max_rows = max_rows
        self.batchable, self.batching_note = batching_policy(self.inputs, self.outputs)
        if not batching_enabled and self.batchable:
            self.batchable, self.batching_note = False, "batching is off (--no-batching)"
        self._key_hook = BATCH_KEYS.get((model.task_name, name))
        self._tf_dtypes = {key: spec.dtype for key, spec in function.structured_input_signature[1].items()}

    def batch_key(self, request):
        """What must be equal for requests to share a call; None: this request runs alone."""
        if not self.batchable or request.rows == 0:
            return None
        parts = []
        for name, spec in self.inputs.items():
            array = request.arrays[name]
            parts.append(array.item() if spec.is_scalar else array.shape[1:])
        if self._key_hook is not None:
            parts.append(self._key_hook(request))
        return tuple(parts)

    def call(self, arrays):
        """Run the signature on numpy `arrays` (by input name); its outputs as numpy arrays."""
        import tensorflow as tf

        feeds = {name: tf.constant(arrays[name], dtype=self._tf_dtypes[name]) for name in self.inputs}
        try:
            result = self.function(**feeds)
        except tf.errors.OpError as error:
            raise model_error(error) from None
        return {name: value.numpy() for name, value in result.items()}

    def describe(self):
        """The signature for the model page: inputs, outputs, bounds, batching."""
        bounds = self.checks.scalar_bounds
        return {
            "inputs": {name: {"dtype": spec.dtype_name, "shape": spec.dims,
                              **({"bounds": list(bounds[name])} if spec.is_scalar and name in bounds else {})}
                       for name, spec in self.inputs.items()},
            "outputs": {name: {"dtype": spec.dtype_name, "shape": spec.dims} for name, spec in self.outputs.items()},
            "batched": self.batchable,
            "batching": self.batching_note,
            "max_rows": self.max_rows,
        }


def model_error(error):
    """A TensorFlow error raised by a signature as a `ServingError` with TensorFlow Serving's HTTP code
    and the first line of its message (without the graph's node names)."""
    import tensorflow as tf

    codes = {tf.errors.InvalidArgumentError: 400, tf.errors.OutOfRangeError: 400,
             tf.errors.FailedPreconditionError: 400, tf.errors.NotFoundError: 404,
             tf.errors.ResourceExhaustedError: 429, tf.errors.DeadlineExceededError: 504,
             tf.errors.UnimplementedError: 501, tf.errors.UnavailableError: 503}
    return ServingError(codes.get(type(error), 500), clean_message(error.message or type(error).__name__))


def clean_message(message):
    """A TensorFlow error message without graph noise: "assertion failed: [beam_width must be <= 16]
    [Condition ...] [x (beam_width:0) = ] [99] ..." becomes "beam_width must be <= 16 (received 99)"."""
    lines = [line.strip() for line in message.split("\n")]
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[", "defined at")
    text = " ".join(line for line in lines if line and not line.startswith(noise)) or message.strip()
    text = re.sub(r"\s*\[\[.*?\]\]", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\]", "", text).strip()
    assertion = re.match(r"assertion failed: \[(.*?)\](?: \[Condition[^\]]*\])?"
                         r"(?: \[x \([^)]*\) = \] \[([^\]]*)\])?(?=\s|$)", text)
    if assertion:
        received = f" (received {assertion.group(2)})" if assertion.group(2) is not None else ""
        return assertion.group(1) + received
    return text


def _tensor_info(info):
    from tensorflow.core.framework import types_pb2

    return {
        "dtype": types_pb2.DataType.Name(info.dtype),
        "tensor_shape": {"dim": [{"size": str(d.size), "name": d.name} for d in info.tensor_shape.dim],
                         "unknown_rank": bool(info.tensor_shape.unknown_rank)},
        "name": info.name,
    }


def read_signature_defs(saved_model_dir):
    """The SignatureDefs of the SavedModel at `saved_model_dir` as TensorFlow Serving prints them."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    graph = next((g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags), proto.meta_graphs[0])
    return {
        name: {"inputs": {k: _tensor_info(v) for k, v in sorted(sig.inputs.items())},
               "outputs": {k: _tensor_info(v) for k, v in sorted(sig.outputs.items())},
               "method_name": sig.method_name}
        for name, sig in sorted(graph.signature_def.items()) if name not in HIDDEN_SIGNATURES
    }


def _served_name(source, card):
    if source.origin in ("hub", "package"):
        return source.name
    name = card.get("name")
    if isinstance(name, str) and name and all(c.isalnum() or c in "._-" for c in name):
        return name
    return Path(str(source.location).rstrip("/")).name


@dataclasses.dataclass
class ServedModel:
    """A loaded model: `name` (as served), its `card`, task module (None for a task this zoo does not
    know), SavedModel directory and `signatures` ({name: Signature})."""

    name: str
    card: dict
    task: object
    directory: Path
    serving: object = None
    signatures: dict = dataclasses.field(default_factory=dict)
    signature_defs: dict = dataclasses.field(default_factory=dict)
    config: object = None

    @property
    def task_name(self):
        return self.card.get("task")

    @classmethod
    def load(cls, model, config, verify=True):
        """Load `model` (a hub name, installed package name, or model directory path/URL), its
        checksums verified unless `verify` is False."""
        import tensorflow as tf

        from zoo import hub
        from zoo.tasks import get_task

        source = hub.locate(model)
        directory = Path(hub.verified_dir(model, verify))  # fetched (a URL) and checked once
        card = hub.read_card(directory / hub.CARD_FILE)
        try:
            task = get_task(card.get("task"))
        except ValueError:
            task = None
        serving = tf.saved_model.load(str(directory / hub.SERVING_DIR))
        served = cls(_served_name(source, card), card, task, directory, serving)
        served.signature_defs = read_signature_defs(directory / hub.SERVING_DIR)
        served._configure(config)
        return served

    def configured(self, config):
        """This model (the same loaded SavedModel) with the limits and batching of `config`."""
        other = dataclasses.replace(self, signatures={})
        other._configure(config)
        return other

    def _configure(self, config):
        self.config = config
        checks = Checks(config.max_string_chars, config.max_binary_bytes, config.max_image_pixels,
                        limits_module.scalar_bounds(self.task, config), limits_module.image_size)
        max_rows = limits_module.rows_limit(self.task, config)
        for name, function in self.serving.signatures.items():
            if name not in HIDDEN_SIGNATURES:
                self.signatures[name] = Signature(self, name, function, checks, max_rows, config.batching)

    def signature(self, name):
        if name is None:
            name = "serving_default"
        if not isinstance(name, str):
            raise invalid(f"'signature_name' must be a string, received {name!r}")
        if name not in self.signatures:
            raise invalid(f"Serving signature name: \"{name}\" not found in signature def "
                          f"(this model has: {', '.join(sorted(self.signatures))})")
        return self.signatures[name]

    def status(self):
        """TensorFlow Serving's GetModelStatusResponse for the one version."""
        return {"model_version_status": [{"version": VERSION, "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self):
        """TensorFlow Serving's GetModelMetadataResponse: the signatures with dtypes and shapes."""
        return {"model_spec": {"name": self.name, "signature_name": "", "version": VERSION},
                "metadata": {"signature_def": {"signature_def": self.signature_defs}}}

    def examples(self):
        """A small valid predict request (columnar format) per signature, from the task module's
        `serving_examples` where it has one, else made from the input specs."""
        import base64

        examples = {}
        try:
            if hasattr(self.task, "serving_examples_for_card"):
                examples = self.task.serving_examples_for_card(self.card)
            elif hasattr(self.task, "serving_examples"):
                examples = self.task.serving_examples()
        except Exception:  # an example that cannot be made must not stop the server
            examples = {}

        def as_json(value):
            if isinstance(value, list):
                return [as_json(v) for v in value]
            if isinstance(value, str) and value.startswith("base64:"):
                return {"b64": value[len("base64:"):]}
            if isinstance(value, bytes):
                return {"b64": base64.b64encode(value).decode("ascii")}
            if isinstance(value, np.ndarray):
                return as_json(value.tolist())
            if isinstance(value, np.generic):
                return value.item()
            return value

        requests = {}
        for name, signature in self.signatures.items():
            given = examples.get(name, {})
            inputs = {key: as_json(given[key]) if key in given else _example_value(spec)
                      for key, spec in signature.inputs.items()}
            requests[name] = {"signature_name": name, "inputs": inputs}
        return requests


def _example_value(spec):
    shape = [1 if size is None else size for size in spec.shape]
    if spec.is_string:
        return np.full(shape, "example", dtype=object).tolist()
    return np.ones(shape, spec.dtype).tolist()
