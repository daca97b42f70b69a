"""TensorFlow Serving's JSON tensors: request bodies to arrays, arrays to answers.

A predict request names its inputs in one of two formats (see TensorFlow
Serving's REST API):

- row format, `{"instances": [...]}`: one item per row; for a signature of
  one input the item is that input's value, else an object naming each input;
- columnar format, `{"inputs": ...}`: the input's whole value, or an object
  of values by input name.

Binary strings travel as `{"b64": "..."}`. Answers use `{"predictions": ...}`
(rows; a list of objects when there are several outputs) or `{"outputs": ...}`;
a string output whose name ends in `_bytes`, or that is not valid UTF-8,
is sent as `{"b64": ...}`. Floats may be `NaN` and `Infinity`, as in
TensorFlow Serving.

One extension: in row format a scalar input (`beam_width`, `max_length`)
may be given in every instance, with the same value in each; TensorFlow
Serving would need the columnar format for it.
"""

import base64
import binascii
import dataclasses
import json

import numpy as np

from zoo.serving.limits import invalid


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """An input or output of a signature: `dtype` a numpy dtype (object for strings),
    `shape` a tuple with None for a dimension of any size."""

    name: str
    dtype: np.dtype
    shape: tuple

    @property
    def is_string(self):
        return self.dtype == np.dtype(object)

    @property
    def is_scalar(self):
        return len(self.shape) == 0

    @property
    def dtype_name(self):
        return "string" if self.is_string else self.dtype.name

    @property
    def dims(self):
        """The shape as TensorFlow Serving writes it: -1 for a dimension of any size."""
        return [-1 if size is None else size for size in self.shape]

    def describe(self):
        return f"{self.dtype_name} [{', '.join(map(str, self.dims))}]"


@dataclasses.dataclass
class Checks:
    """Bounds applied while decoding values: text length, binary size, image pixels, scalar ranges."""

    max_string_chars: int
    max_binary_bytes: int
    max_image_pixels: int
    scalar_bounds: dict
    image_size: object = None  # callable(bytes) -> (width, height) or None


def parse_json(body):
    """The JSON object of a request body; `ServingError` 400 saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid(f"JSON Parse error: the body is not UTF-8 (byte {error.start})") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise invalid(f"JSON Parse error: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise invalid("JSON Parse error: nested too deeply") from None
    if not isinstance(payload, dict):
        raise invalid(f"JSON Value: the body must be a JSON object, received {type(payload).__name__}")
    return payload


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _is_named(value):
    """A JSON object naming inputs (not a `{"b64": ...}` binary value)."""
    return isinstance(value, dict) and not _is_b64(value)


def _string_leaf(value, spec, where, checks):
    if isinstance(value, str):
        if len(value) > checks.max_string_chars:
            raise invalid(f"{where}: a text of {len(value):,} characters; at most "
                          f"{checks.max_string_chars:,} are accepted")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid(f"{where}: the text holds an unpaired surrogate (\\ud800-\\udfff); send "
                          f"valid Unicode, or the bytes as {{\"b64\": ...}}") from None
    if _is_b64(value):
        encoded = value["b64"]
        if not isinstance(encoded, str):
            raise invalid(f"{where}: a \"b64\" value must be a string")
        if len(encoded) > checks.max_binary_bytes * 4 // 3 + 4:
            raise invalid(f"{where}: a binary value over {checks.max_binary_bytes:,} bytes")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"{where}: the \"b64\" value is not valid base64") from None
        if len(data) > checks.max_binary_bytes:
            raise invalid(f"{where}: a binary value of {len(data):,} bytes; at most "
                          f"{checks.max_binary_bytes:,} are accepted")
        if "image" in spec.name and checks.image_size is not None:
            size = checks.image_size(data)
            if size is None:
                raise invalid(f"{where}: not a PNG, JPEG, GIF or BMP image")
            if size[0] * size[1] > checks.max_image_pixels:
                raise invalid(f"{where}: an image of {size[0]}x{size[1]} pixels; at most "
                              f"{checks.max_image_pixels:,} pixels are accepted (shrink it first)")
        return data
    raise invalid(f"{where}: expected a string or {{\"b64\": ...}} for input '{spec.name}' "
                  f"({spec.describe()}), received {_kind(value)}")


def _kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _strings(value, spec, where, checks):
    """A nested list of strings (or b64 objects) → (flat list of bytes, shape)."""
    if not isinstance(value, list):
        return [_string_leaf(value, spec, where, checks)], ()
    if not value:
        return [], (0,)
    flat, shape = [], None
    for i, item in enumerate(value):
        items, item_shape = _strings(item, spec, where, checks)
        if shape is None:
            shape = item_shape
        elif item_shape != shape:
            raise invalid(f"{where}: a ragged list (items of shapes {list(shape)} and {list(item_shape)}); "
                          f"every row must have the same shape")
        flat += items
    return flat, (len(value), *shape)


def to_array(value, spec, where, checks):
    """`value` (JSON) as a numpy array of `spec`'s dtype and rank, checked against `checks`."""
    if spec.is_string:
        flat, shape = _strings(value, spec, where, checks)
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        array = array.reshape(shape)
    else:
        array = _numbers(value, spec, where)
    if array.ndim != len(spec.shape) or any(
            want is not None and got != want for got, want in zip(array.shape, spec.shape)):
        raise invalid(f"{where}: input '{spec.name}' must be {spec.describe()}, received shape "
                      f"{list(array.shape)}")
    if spec.is_scalar and spec.name in checks.scalar_bounds:
        lowest, highest = checks.scalar_bounds[spec.name]
        number = array.item()
        if not lowest <= number <= highest:
            raise invalid(f"{where}: {spec.name} must be in {lowest}..{highest}, received {number}")
    if (not spec.is_string and spec.dtype == np.uint8 and array.ndim == 4 and array.shape[-1] == 3
            and array.shape[1] * array.shape[2] > checks.max_image_pixels):
        raise invalid(f"{where}: images of {array.shape[2]}x{array.shape[1]} pixels; at most "
                      f"{checks.max_image_pixels:,} pixels are accepted")
    return array


def _numbers(value, spec, where):
    def bad(what):
        return invalid(f"{where}: input '{spec.name}' ({spec.describe()}) {what}")

    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise bad("must be a rectangular list of numbers (rows of equal length)") from None
    kind = array.dtype.kind
    if array.dtype == object or kind in "USV":
        raise bad("must be a rectangular list of numbers (rows of equal length, no strings or nulls)")
    if kind == "b" and spec.dtype.kind != "b":
        raise bad("takes numbers, received booleans")
    if spec.dtype.kind in "iu":
        if kind == "f":
            raise bad("takes whole numbers, received a fraction or NaN")
        if array.size:
            info = np.iinfo(spec.dtype)
            if array.min() < info.min or array.max() > info.max:
                raise bad(f"takes numbers from {info.min} to {info.max}")
    elif spec.dtype.kind == "f":
        if kind not in "iuf":
            raise bad("takes numbers")
    elif spec.dtype.kind == "b" and kind != "b":
        raise bad("takes true or false")
    return array.astype(spec.dtype, copy=False)


@dataclasses.dataclass
class Request:
    """A decoded predict request: `arrays` by input name, its number of `rows`, and whether it came
    in row format (`instances`; answered as `predictions`) or columnar (`inputs`; `outputs`)."""

    arrays: dict
    rows: int
    row_format: bool


def decode_request(payload, inputs, checks, max_rows):
    """The arrays of a predict request (already parsed JSON) for a signature with `inputs` ({name: TensorSpec}).

    Raises `ServingError` (400) naming the problem: both or neither of
    `instances`/`inputs`, a missing or unknown input, a wrong shape or type,
    a value past a bound, more than `max_rows` rows.
    """
    has_rows, has_columns = "instances" in payload, "inputs" in payload
    if has_rows and has_columns:
        raise invalid("Request can have either 'instances' (row format) or 'inputs' (columnar format), not both")
    if not has_rows and not has_columns:
        raise invalid("Missing 'inputs' or 'instances' key")
    unknown = sorted(set(payload) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise invalid(f"unknown request key(s) {', '.join(map(repr, unknown))}; a predict request has "
                      f"'signature_name' and 'instances' or 'inputs'")
    arrays = _from_rows(payload["instances"], inputs, checks, max_rows) if has_rows else \
        _from_columns(payload["inputs"], inputs, checks)
    batched = [name for name, spec in inputs.items() if not spec.is_scalar]
    sizes = {name: arrays[name].shape[0] for name in batched}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"'{name}' {size}" for name, size in sizes.items())
        raise invalid(f"the inputs must have the same first (batch) dimension; received {shown}")
    rows = next(iter(sizes.values()), 0)
    if rows > max_rows:
        raise invalid(f"{rows} rows in one request; at most {max_rows} are accepted (split the request)")
    return Request(arrays, rows, has_rows)


def _check_names(given, inputs, where):
    missing = [name for name in inputs if name not in given]
    extra = [name for name in given if name not in inputs]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input(s) {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"unknown input(s) {', '.join(map(repr, extra))}")
        raise invalid(f"{where}: {'; '.join(parts)}; the signature takes "
                      f"{', '.join(f'{n} ({s.describe()})' for n, s in inputs.items())}")


def _from_rows(instances, inputs, checks, max_rows):
    if not isinstance(instances, list) or not instances:
        raise invalid("'instances' must be a non-empty list (one item per row)")
    if len(instances) > max_rows:
        raise invalid(f"{len(instances)} instances in one request; at most {max_rows} are accepted "
                      f"(split the request)")
    named = all(_is_named(item) for item in instances)
    if len(inputs) == 1 and not named:
        (name, spec), = inputs.items()
        if spec.is_scalar:
            raise invalid(f"input '{name}' is a scalar; send it in columnar format: {{\"inputs\": {{\"{name}\": ...}}}}")
        return {name: to_array(instances, spec, "instances", checks)}
    if not named:
        raise invalid(f"the signature takes several inputs ({', '.join(inputs)}): each instance must be an "
                      f"object naming them")
    for i, item in enumerate(instances):
        _check_names(item, inputs, f"instances[{i}]")
    arrays = {}
    for name, spec in inputs.items():
        column = [item[name] for item in instances]
        if spec.is_scalar:
            if any(value != column[0] or type(value) is not type(column[0]) for value in column[1:]):
                raise invalid(f"'{name}' is one value per request (a scalar); every instance must give the same "
                              f"value, or send it once in columnar format")
            arrays[name] = to_array(column[0], spec, f"instances[0].{name}", checks)
        else:
            arrays[name] = to_array(column, spec, f"instances[*].{name}", checks)
    return arrays


def _from_columns(value, inputs, checks):
    if len(inputs) == 1 and not (_is_named(value) and set(value) == set(inputs)):
        (name, spec), = inputs.items()
        return {name: to_array(value, spec, "inputs", checks)}
    if not _is_named(value):
        raise invalid(f"'inputs' must be an object naming the signature's inputs ({', '.join(inputs)})")
    _check_names(value, inputs, "inputs")
    return {name: to_array(value[name], spec, f"inputs.{name}", checks) for name, spec in inputs.items()}


# -- answers -----------------------------------------------------------------------------------


def _json_strings(value, binary):
    if isinstance(value, list):
        return [_json_strings(item, binary) for item in value]
    if isinstance(value, bytes):
        if not binary:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def to_json_value(name, array):
    """A numpy output as plain JSON values (strings decoded; `_bytes` outputs as {"b64": ...})."""
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind == "S":
        return _json_strings(array.tolist(), binary=name.endswith("_bytes"))
    return array.tolist()


def encode_answer(outputs, row_format):
    """The JSON answer of a predict request: {"predictions": ...} (row format) or {"outputs": ...}."""
    if not row_format:
        if len(outputs) == 1:
            (name, value), = outputs.items()
            return {"outputs": to_json_value(name, value)}
        return {"outputs": {name: to_json_value(name, value) for name, value in outputs.items()}}
    sizes = {name: (np.shape(value)[0] if np.ndim(value) else None) for name, value in outputs.items()}
    first = next(iter(sizes.values()), None)
    if first is None or any(size != first for size in sizes.values()):
        shown = ", ".join(f"{name}: {size}" for name, size in sizes.items())
        raise invalid(f"the outputs do not share a batch dimension ({shown}); ask in columnar format "
                      f"('inputs') for outputs of different sizes")
    columns = {name: to_json_value(name, value) for name, value in outputs.items()}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    return {"predictions": [{name: column[i] for name, column in columns.items()} for i in range(first)]}


def dumps(answer):
    """Compact JSON text, NaN and Infinity written as TensorFlow Serving writes them."""
    return json.dumps(answer, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
