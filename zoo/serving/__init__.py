"""`zoo serve`: TensorFlow Serving's REST API for zoo models, with batching, limits and a page per model.

    zoo serve sentiment-bilstm-mr translation-gru-de-en          # http://127.0.0.1:8501/
    curl -d '{"instances": ["a gorgeous, witty film"]}' \\
        http://127.0.0.1:8501/v1/models/sentiment-bilstm-mr:predict

Clients written for TensorFlow Serving (its REST API) work unchanged: model
status, metadata and predict in row (`instances`) or columnar (`inputs`)
format, binary values as `{"b64": ...}`, errors as `{"error": ...}` with the
same HTTP codes. The server is Starlette on uvicorn (an ASGI server): one
event loop takes the connections and decodes requests, a few worker threads
run the model calls, so a slow client never holds a worker.

Pieces:

- `zoo.serving.limits`: `ServeConfig` (batching, queue, timeouts, bounds) and the bounds of each argument;
- `zoo.serving.tensors`: TensorFlow Serving's JSON tensors, decoded and encoded;
- `zoo.serving.models`: a served model, its signatures, metadata and batching policy;
- `zoo.serving.batching`: requests merged into calls, run on the worker threads;
- `zoo.serving.app`: the routes (`create_app`) and the server (`run`);
- `zoo.serving.pages` and `static/`: the index and the page of each model.
"""

from zoo.serving.limits import ServeConfig, ServingError  # noqa: F401


def create_app(models, config=None):
    """The ASGI application serving `models` (see `zoo.serving.app.create_app`)."""
    from zoo.serving.app import create_app as create

    return create(models, config)


def run(models, host="127.0.0.1", port=8501, config=None, **options):
    """Serve `models` until SIGTERM or SIGINT (see `zoo.serving.app.run`)."""
    from zoo.serving.app import run as serve

    return serve(models, host=host, port=port, config=config, **options)
