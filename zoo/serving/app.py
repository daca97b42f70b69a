"""The HTTP application: TensorFlow Serving's REST API, the model pages, and the uvicorn server.

Routes:

- `GET /v1/models/{name}[/versions/1]`: the model's status;
- `GET /v1/models/{name}[/versions/1]/metadata`: its signatures, dtypes and shapes;
- `POST /v1/models/{name}[/versions/1]:predict`: run a signature;
- `GET /`: the served models; `GET /models/{name}`: a page to try one;
- `GET /zoo/stats`: requests, calls and batch sizes per signature, queue state.

Errors are `{"error": "..."}` with TensorFlow Serving's HTTP codes: 400 for a
malformed request or a bad input, 404 for an unknown model or version, 413
for a body over the limit, 408 for a body that does not arrive in time, 503
with `Retry-After` when the queue is full, 504 for a request past its timeout.
"""

import asyncio
import contextlib
import logging
import re
import signal
import socket
import threading
import time

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from zoo.serving import pages
from zoo.serving.batching import Batcher
from zoo.serving.limits import ServeConfig, ServingError, invalid
from zoo.serving.models import VERSION, ServedModel
from zoo.serving.tensors import decode_request, dumps, encode_answer, parse_json

logger = logging.getLogger("zoo.serving")

#: TensorFlow Serving's URL forms (case-insensitive, as there).
PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:(classify|regress|predict)", re.I)
STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+))?(/metadata)?", re.I)

#: Bodies larger than this are decoded in a thread, so a large request does not stall the others.
DECODE_IN_THREAD_BYTES = 256 * 1024


def json_response(value, status=200, headers=None):
    return Response(dumps(value), status_code=status, media_type="application/json", headers=headers)


def error_response(error):
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return json_response({"error": str(error)}, error.status, headers)


class ModelServer:
    """The state behind the routes: the models, the batcher and the request counters.

    Args:
        models: `ServedModel`s, served under their `name`.
        config: A `ServeConfig`.
    """

    def __init__(self, models, config):
        self.config = config
        self.models = {}
        for model in models:
            if model.name in self.models:
                raise ValueError(f"two models would be served as {model.name!r}")
            self.models[model.name] = model
        self.batcher = Batcher(config)
        self.in_flight = 0
        self.counts = {"refused_queue_full": 0, "timed_out": 0, "errors": 0, "answered": 0}
        self.started = time.time()
        self._pages = pages.PageRenderer(self.models)

    # -- TensorFlow Serving's API ---------------------------------------------------------------

    async def api(self, request):
        path, method = request.url.path, request.method
        try:
            match = PREDICT_PATH.fullmatch(path)
            if method == "POST" and match:
                name, version, verb = match.groups()
                model = self._model(name, version)
                if verb.lower() != "predict":
                    raise invalid(f"{verb} needs a {verb} signature; zoo models answer predict requests")
                return await self._predict(request, model)
            match = STATUS_PATH.fullmatch(path)
            if method == "GET" and match:
                name, version, metadata = match.groups()
                if not name:
                    raise invalid("Missing model name in request.")
                model = self._model(name, version)
                return json_response(model.metadata() if metadata else model.status())
            raise invalid(f"Malformed request: {method} {path}")
        except ServingError as error:
            return error_response(error)

    def _model(self, name, version):
        model = self.models.get(name)
        if model is None or (version is not None and version.lstrip("0") != VERSION):
            wanted = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise ServingError(404, f"Servable not found for request: {wanted}")
        return model

    async def _predict(self, request, model):
        config = self.config
        if self.in_flight >= config.max_queue:
            self.counts["refused_queue_full"] += 1
            raise ServingError(503, f"the server holds {self.in_flight} requests, its queue limit "
                                    f"(max_queue); retry in {config.retry_after_s} s",
                               retry_after=config.retry_after_s)
        self.in_flight += 1
        try:
            body = await self._read_body(request)
            if len(body) > DECODE_IN_THREAD_BYTES:
                signature, decoded = await asyncio.to_thread(self._decode, model, body)
            else:
                signature, decoded = self._decode(model, body)
            try:
                outputs = await asyncio.wait_for(self.batcher.run(signature, decoded), config.request_timeout_s)
            except asyncio.TimeoutError:
                self.counts["timed_out"] += 1
                raise ServingError(504, f"the request did not finish within {config.request_timeout_s:g} s "
                                        f"(request_timeout_s)") from None
            answer = encode_answer(outputs, decoded.row_format)
            self.counts["answered"] += 1
            return json_response(answer)
        except ServingError:
            self.counts["errors"] += 1
            raise
        except Exception as error:  # noqa: BLE001  an answer, not a dropped connection
            self.counts["errors"] += 1
            logger.exception("predict failed")
            raise ServingError(500, f"internal error: {type(error).__name__}: {error}") from None
        finally:
            self.in_flight -= 1

    @staticmethod
    def _decode(model, body):
        payload = parse_json(body)
        signature = model.signature(payload.get("signature_name") or None)
        return signature, decode_request(payload, signature.inputs, signature.checks, signature.max_rows)

    async def _read_body(self, request):
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise invalid(f"Content-Length {declared!r} is not a number")
            if int(declared) > limit:
                raise ServingError(413, f"the body has {int(declared):,} bytes; at most {limit:,} are accepted "
                                        f"(max_body_bytes)")
        chunks, size = [], 0

        async def receive():
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ServingError(413, f"the body is over {limit:,} bytes (max_body_bytes)")
                chunks.append(chunk)

        try:
            await asyncio.wait_for(receive(), self.config.body_timeout_s)
        except asyncio.TimeoutError:
            raise ServingError(408, f"the request body did not arrive within {self.config.body_timeout_s:g} s "
                                    f"(body_timeout_s)") from None
        return b"".join(chunks)

    # -- pages and statistics -------------------------------------------------------------------

    async def index(self, request):
        return HTMLResponse(self._pages.index())

    async def page(self, request):
        name = request.path_params["name"]
        if name not in self.models:
            return HTMLResponse(self._pages.not_found(name), status_code=404)
        return HTMLResponse(self._pages.model_page(name))

    async def asset(self, request):
        found = pages.asset(request.path_params["file"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        content, media_type = found
        return Response(content, media_type=media_type, headers={"Cache-Control": "max-age=300"})

    async def stats(self, request):
        return json_response({
            "uptime_s": round(time.time() - self.started, 1),
            "in_flight": self.in_flight,
            "max_queue": self.config.max_queue,
            **self.counts,
            "batching": {"on": self.config.batching, "window_ms": self.config.batch_window_ms,
                         "max_batch_size": self.config.max_batch_size, "workers": self.config.workers},
            "signatures": self.batcher.snapshot(),
        })

    def close(self):
        self.batcher.close()


def create_app(models, config=None):
    """The ASGI application serving `models` (`ServedModel`s, or names/paths to load).

    Example:
        >>> app = create_app(["sentiment-bilstm-mr"])          # doctest: +SKIP
        >>> # uvicorn.run(app, host="127.0.0.1", port=8501)
    """
    config = config or ServeConfig()
    loaded = [(m if m.config == config else m.configured(config)) if isinstance(m, ServedModel)
              else ServedModel.load(m, config) for m in models]
    server = ModelServer(loaded, config)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(server.close)  # running calls finish first

    app = Starlette(routes=[
        Route("/", server.index),
        Route("/models/{name}", server.page),
        Route("/static/{file}", server.asset),
        Route("/zoo/stats", server.stats),
        Route("/v1/{rest:path}", server.api, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ], lifespan=lifespan)
    app.state.server = server
    return app


def check_address(host, port):
    """Raise OSError saying why if `host`:`port` cannot be listened on (taken, or not this machine's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def run(models, host="127.0.0.1", port=8501, config=None, access_log=False, verify=True):
    """Load `models` and serve them until SIGTERM or SIGINT; in-flight requests finish first.

    Returns once the server has stopped.
    """
    import uvicorn

    config = config or ServeConfig()
    check_address(host, port)  # before the models load: a taken port fails at once
    loaded = [ServedModel.load(m, config, verify=verify) for m in models]
    app = create_app(loaded, config)
    uvicorn_config = uvicorn.Config(
        app, host=host, port=port, log_level="info", access_log=access_log, lifespan="on",
        timeout_keep_alive=5,
        # requests that are running get this long to finish after SIGTERM
        timeout_graceful_shutdown=int(config.request_timeout_s + 5),
        # connections beyond this get 503 from uvicorn itself, before any work
        limit_concurrency=max(1000, 2 * config.max_queue),
    )
    server = uvicorn.Server(uvicorn_config)
    shown_host = f"[{host}]" if ":" in host else host
    names = ", ".join(model.name for model in loaded)
    print(f"zoo serve: {names} at http://{shown_host}:{port}/ (TensorFlow Serving REST API under "
          f"/v1/models/NAME; batching {'on' if config.batching else 'off'})", flush=True)
    # uvicorn stops on SIGTERM/SIGINT after the requests in flight are answered, then raises the
    # signal again; these handlers take that second delivery, so the command ends with status 0.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            previous[number] = signal.signal(number, lambda *_: None)
    try:
        server.run()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    print("zoo serve: stopped", flush=True)
    return 0 if server.started else 1
