"""What one request may ask of `zoo serve`, and the server's batching and queue settings.

Every bound here is checked before a request reaches a model, so a request
past one gets a 4xx answer naming the bound, never a long computation or a
large allocation. The bounds on a signature's scalar arguments come from the
task module's own constants (`MAX_BEAM_WIDTH`, `MAX_DECODE_LENGTH`,
`MAX_EVENTS`, ...), capped further by the server's settings.
"""

import dataclasses
import math
import struct


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """Settings of one server (each has a `zoo serve` option of the same name).

    Attributes:
        batching: Batch concurrent requests of one signature into one call.
        batch_window_ms: How long the first request of a batch waits for others.
        max_batch_size: Most rows (instances) in one batched call.
        workers: Model calls that run at the same time (threads).
        max_queue: Most requests admitted and not yet answered, over all
            models; one more is refused with 503 and a `Retry-After` header.
        request_timeout_s: A request not answered by then gets 504.
        body_timeout_s: Most seconds to receive a request body (slow clients get 408).
        max_body_bytes: Largest request body (413 beyond).
        max_rows: Most rows one request may hold (the task's own limit may be lower).
        max_string_chars: Longest text value (characters) of a text input.
        max_binary_bytes: Largest binary value (image or WAV file, decoded from base64).
        max_image_pixels: Most pixels of one image (width × height).
        max_length: Cap on `max_length` arguments (the task's own bound may be lower).
        max_events: Cap on `num_events` / `min_events` (music).
        retry_after_s: The `Retry-After` a refused request is given.
    """

    batching: bool = True
    batch_window_ms: float = 3.0
    max_batch_size: int = 64
    workers: int = 2
    max_queue: int = 256
    request_timeout_s: float = 30.0
    body_timeout_s: float = 10.0
    max_body_bytes: int = 10 * 2 ** 20
    max_rows: int = 256
    max_string_chars: int = 10_000
    max_binary_bytes: int = 8 * 2 ** 20
    max_image_pixels: int = 4_000_000
    max_length: int = 512
    max_events: int = 1024
    retry_after_s: int = 1

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "batching":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{field.name} must be a number, received {value!r}")
            if field.name == "batch_window_ms":
                if value < 0:
                    raise ValueError(f"{field.name} must be >= 0, received {value!r}")
            elif isinstance(field.default, float):
                if value <= 0:
                    raise ValueError(f"{field.name} must be > 0, received {value!r}")
            elif value < 1 or value != int(value):
                raise ValueError(f"{field.name} must be a whole number >= 1, received {value!r}")


#: One line of help per setting (the `zoo serve` options).
HELP = {
    "batch_window_ms": "how long the first request of a batch waits for others (ms)",
    "max_batch_size": "most rows in one batched call",
    "workers": "model calls that run at the same time",
    "max_queue": "most requests held at once; more get 503 with Retry-After",
    "request_timeout_s": "a request not answered by then gets 504",
    "body_timeout_s": "most seconds to receive a request body (408 after)",
    "max_body_bytes": "largest request body (413 beyond)",
    "max_rows": "most rows (instances) in one request",
    "max_string_chars": "longest text value, in characters",
    "max_binary_bytes": "largest binary value (an image or WAV file)",
    "max_image_pixels": "most pixels of one image",
    "max_length": "cap on max_length arguments (the task's own bound may be lower)",
    "max_events": "cap on num_events / min_events (music)",
    "retry_after_s": "the Retry-After a refused request is given (s)",
}


class ServingError(Exception):
    """A request that cannot be answered: `status` is the HTTP code, the message the `error` text.

    `retry_after` (seconds) is sent as a `Retry-After` header when set.
    """

    def __init__(self, status, message, retry_after=None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def invalid(message):
    """TensorFlow Serving's INVALID_ARGUMENT: HTTP 400."""
    return ServingError(400, message)


#: Scalar arguments whose bound comes from the task module: argument -> the constants looked up,
#: in order (the first one the module defines applies).
_TASK_BOUNDS = {
    "beam_width": ("MAX_BEAM_WIDTH",),
    "max_length": ("MAX_DECODE_LENGTH", "MAX_CAPTION_TOKENS", "MAX_GENERATE_LENGTH"),
    "num_events": ("MAX_EVENTS",),
    "min_events": ("MAX_EVENTS",),
    "top_k": ("MAX_TOP_K",),
}

#: Largest temperature accepted (a sampling temperature past this is noise).
MAX_TEMPERATURE = 100.0


def scalar_bounds(task, config):
    """`{argument: (lowest, highest)}` for the scalar arguments of `task`'s signatures.

    Args:
        task: The task module (its MAX_* constants give the bounds), or None.
        config: The `ServeConfig` (its caps apply on top).
    """
    bounds = {"temperature": (0.0, MAX_TEMPERATURE), "top_p": (0.0, 1.0)}
    caps = {"max_length": config.max_length, "num_events": config.max_events, "min_events": config.max_events}
    for argument, constants in _TASK_BOUNDS.items():
        highest = next((getattr(task, name) for name in constants if hasattr(task, name)), None)
        cap = caps.get(argument)
        if highest is None and cap is None:
            continue
        highest = min(v for v in (highest, cap) if v is not None)
        lowest = 0 if argument in ("top_k", "min_events") else 1
        bounds[argument] = (lowest, highest)
    if hasattr(task, "MIN_SAMPLE_RATE") and hasattr(task, "MAX_SAMPLE_RATE"):
        bounds["sample_rate"] = (task.MIN_SAMPLE_RATE, task.MAX_SAMPLE_RATE)
    return bounds


def rows_limit(task, config):
    """Most rows one request (and one call) of `task` may hold: the server's cap and the task's own."""
    own = [getattr(task, name) for name in ("MAX_SIGNATURE_BATCH", "MAX_BATCH") if hasattr(task, name)]
    return min([config.max_rows, *own])


def image_size(data):
    """(width, height) an encoded PNG, GIF, BMP or JPEG file declares, read from its header only;
    None for anything else (or a file cut short)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:4] == b"GIF8" and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


#: JPEG start-of-frame markers (they carry the image size); C4, C8 and CC are other segments.
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data):
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # segments without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if marker in _JPEG_FRAMES:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        position += 2 + length
    return None
