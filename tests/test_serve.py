"""`zoo serve`: TensorFlow Serving's REST API over the hub models, batching, limits, pages.

One model per task of the hub (the smallest) is loaded once for the module and
served in process (Starlette's test client); every signature's example request
is replayed in TensorFlow Serving's documented JSON format and its answer
compared with a direct call of the SavedModel signature. One test runs the real
command on a socket and stops it with SIGTERM while a request is in flight
(its process starts first, so that its loading overlaps the others').
Tasks without a model in the hub are skipped, saying so.
"""

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from zoo import hub

pytest.importorskip("starlette", reason="zoo serve needs the serve extra (pip install 'zoo[serve]')")
pytest.importorskip("uvicorn", reason="zoo serve needs the serve extra (pip install 'zoo[serve]')")
pytest.importorskip("httpx2", reason="the serve tests need httpx2 (pip install 'zoo[serve]')")

from starlette.testclient import TestClient  # noqa: E402

from zoo.serving import ServeConfig  # noqa: E402
from zoo.serving.app import create_app  # noqa: E402
from zoo.serving.limits import ServingError, image_size  # noqa: E402
from zoo.serving.models import ServedModel, batching_policy  # noqa: E402
from zoo.serving.tensors import TensorSpec  # noqa: E402

TASKS = ("sentiment", "translation", "captioning", "music", "language-model", "tagging", "forecasting",
         "timeseries-classification", "speech")


def _smallest_model_per_task():
    chosen = {}
    for name in hub.list_models():
        try:
            card = hub.info(name)
        except hub.CardError:
            continue
        size = sum(entry.get("bytes", 0) for entry in card.get("files", {}).values())
        task = card.get("task")
        if task not in chosen or size < chosen[task][1]:
            chosen[task] = (name, size)
    return {task: name for task, (name, _) in chosen.items()}


MODELS = _smallest_model_per_task()


def _model_for(task):
    if task not in MODELS:
        pytest.skip(f"no {task} model in the hub ({hub.models_dir()}); train one with its recipe")
    return MODELS[task]


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_server():
    """`zoo serve sentiment-bilstm-mr` as a real process on a free port (started before the in-process
    models load, so both load at once). Its batch window is long (1 s): a request stays in flight
    long enough to send SIGTERM meanwhile."""
    name = MODELS.get("sentiment")
    if name is None:
        yield None
        return
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "zoo.cli", "serve", name, "--port", str(port), "--batch-window-ms", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    yield {"process": process, "port": port, "name": name}
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)


@pytest.fixture(scope="module")
def models(live_server):
    """{task: ServedModel}, each loaded once (checksums are the hub tests' business)."""
    config = ServeConfig()
    return {task: ServedModel.load(name, config, verify=False) for task, name in MODELS.items()}


@pytest.fixture(scope="module")
def client(models):
    with TestClient(create_app(list(models.values()), ServeConfig())) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def batching_app(models):
    """The same models with a batch window long enough that concurrent requests always meet."""
    return create_app(list(models.values()), ServeConfig(batch_window_ms=250.0, max_batch_size=32))


@pytest.fixture(scope="module")
def limited_client(models):
    """Tight limits, a one-request queue and a request timeout shorter than the batch window."""
    config = ServeConfig(max_body_bytes=4000, max_rows=4, max_string_chars=50, max_image_pixels=100 * 100,
                         max_queue=1, batch_window_ms=600.0, request_timeout_s=0.3, max_length=30,
                         max_events=100)
    app = create_app([models[t] for t in ("sentiment", "translation", "captioning", "music") if t in models],
                     config)
    with TestClient(app) as test_client:
        yield test_client


def _post(client, model, body):
    return client.post(f"/v1/models/{model}:predict", content=json.dumps(body).encode("utf-8"),
                       headers={"Content-Type": "application/json"})


def _decoded(value):
    """JSON inputs as the signature takes them ({"b64"} objects to bytes)."""
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def _direct(model, signature, inputs):
    """Outputs of a direct call of the SavedModel signature, as numpy arrays."""
    import tensorflow as tf

    function = model.serving.signatures[signature]
    specs = function.structured_input_signature[1]
    result = function(**{k: tf.constant(_decoded(v), specs[k].dtype) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in result.items()}


def _assert_same(got, want, where, exact=True):
    """A JSON answer value equals a numpy output: strings equal, numbers equal as float32."""
    want = np.asarray(want)
    if want.dtype == object:
        as_text = np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else b, otypes=[object])
        expected = as_text(want).tolist() if want.size else want.tolist()
        assert got == expected, where
        return
    got = np.asarray(got, dtype=want.dtype)
    assert got.shape == want.shape, (where, got.shape, want.shape)
    if exact:
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=where)


# -- the API ---------------------------------------------------------------------------------------


def test_status_versions_and_unknown_models_answer_as_tensorflow_serving(client):
    name = _model_for("sentiment")
    expected = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.get(f"/v1/models/{name}").json() == expected
    assert client.get(f"/v1/models/{name}/versions/1").json() == expected
    answer = client.get(f"/v1/models/{name}/versions/2")
    assert answer.status_code == 404
    assert answer.json() == {"error": f"Servable not found for request: Specific({name}, 2)"}
    answer = _post(client, "no-such-model", {"instances": ["x"]})
    assert answer.status_code == 404
    assert answer.json() == {"error": "Servable not found for request: Latest(no-such-model)"}
    assert answer.headers["content-type"] == "application/json"
    assert client.get(f"/v1/models/{name}:predict").status_code == 400  # GET of a POST path: malformed
    assert "Malformed request" in client.get(f"/v1/models/{name}/what").json()["error"]
    answer = client.post(f"/v1/models/{name}:classify", json={"examples": []})
    assert answer.status_code == 400 and "predict" in answer.json()["error"]
    answer = _post(client, f"{name}/versions/1", {"instances": ["a fine film"]})
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1


def test_a_model_directory_given_by_path_is_served_under_its_cards_name(tmp_path):
    name = _model_for("sentiment")
    model = ServedModel.load(hub.model_dir(name), ServeConfig(), verify=False)
    assert model.name == hub.info(name)["name"] == name
    with TestClient(create_app([model])) as local:
        assert local.get(f"/v1/models/{name}").status_code == 200
    with pytest.raises(ValueError, match="two models would be served as"):
        create_app([model, model])


@pytest.mark.parametrize("task", TASKS)
def test_metadata_lists_every_signature_with_its_dtypes_and_shapes(task, client, models):
    from tensorflow.core.framework import types_pb2

    name = _model_for(task)
    answer = client.get(f"/v1/models/{name}/metadata").json()
    assert answer["model_spec"] == {"name": name, "signature_name": "", "version": "1"}
    signature_defs = answer["metadata"]["signature_def"]["signature_def"]
    functions = models[task].serving.signatures
    assert sorted(signature_defs) == sorted(functions.keys())
    for signature, function in functions.items():
        for key, spec in function.structured_input_signature[1].items():
            shown = signature_defs[signature]["inputs"][key]
            assert types_pb2.DataType.Value(shown["dtype"]) == spec.dtype.as_datatype_enum, (signature, key)
            sizes = [int(d["size"]) for d in shown["tensor_shape"]["dim"]]
            assert sizes == [-1 if s is None else s for s in spec.shape.as_list()], (signature, key)
        assert sorted(signature_defs[signature]["outputs"]) == sorted(function.structured_outputs)
        assert signature_defs[signature]["method_name"] == "tensorflow/serving/predict"


def _rows_request(signature_name, inputs, specs):
    """The same request in row format: one instance per row, scalars repeated in each."""
    batched = [k for k, s in specs.items() if not s.is_scalar]
    rows = len(inputs[batched[0]])
    if len(specs) == 1:
        return {"signature_name": signature_name, "instances": inputs[batched[0]]}
    instances = [{k: (inputs[k][i] if k in batched else inputs[k]) for k in specs} for i in range(rows)]
    return {"signature_name": signature_name, "instances": instances}


@pytest.mark.parametrize("task", TASKS)
def test_replayed_requests_answer_exactly_what_the_signature_returns(task, client, models):
    """Every signature's example request, in columnar format (and the default signature's in row
    format too), gives the outputs of a direct call of the SavedModel signature."""
    name = _model_for(task)
    model = models[task]
    examples = model.examples()
    for signature, request in examples.items():
        direct = _direct(model, signature, request["inputs"])
        answer = _post(client, name, request)
        assert answer.status_code == 200, (signature, answer.text[:500])
        outputs = answer.json()["outputs"]
        if len(direct) == 1:
            outputs = {next(iter(direct)): outputs}
        assert sorted(outputs) == sorted(direct), signature
        for key, value in direct.items():
            _assert_same(outputs[key], value, f"{name} {signature} {key}")
        specs = model.signatures[signature].inputs
        if signature != "serving_default" or all(spec.is_scalar for spec in specs.values()) \
                or len(json.dumps(request)) > 50_000:  # (images as pixel lists: the columnar check will do)
            continue
        answer = _post(client, name, _rows_request(signature, request["inputs"], specs))
        assert answer.status_code == 200, (signature, answer.text[:500])
        predictions = answer.json()["predictions"]
        rows = next(iter(direct.values())).shape[0]
        assert len(predictions) == rows
        for i in range(rows):
            for key, value in direct.items():
                got = predictions[i] if len(direct) == 1 else predictions[i][key]
                _assert_same(got, value[i], f"{name} row {i} {key}")


def test_a_documented_request_response_pair_for_sentiment(client, models):
    """The README's exchange: row format in, one probability per instance out (one output: no names)."""
    name = _model_for("sentiment")
    texts = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés."]
    answer = _post(client, name, {"instances": texts})
    assert answer.status_code == 200
    body = answer.json()
    assert list(body) == ["predictions"] and len(body["predictions"]) == 2
    want = _direct(models["sentiment"], "serving_default", {"texts": texts})["probability"]
    _assert_same(body["predictions"], want, "sentiment")
    assert body["predictions"][0] > 0.5 > body["predictions"][1]
    columnar = _post(client, name, {"inputs": {"texts": texts}}).json()
    assert columnar == {"outputs": body["predictions"]}
    binary = _post(client, name, {"instances": [{"b64": base64.b64encode(t.encode()).decode()} for t in texts]})
    assert binary.json() == body


# -- batching --------------------------------------------------------------------------------------


async def _concurrently(app, requests):
    import httpx2

    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
        answers = await asyncio.gather(*[
            http.post(f"/v1/models/{model}:predict", json=body) for model, body in requests])
    return answers


def _stats(app, model, signature):
    return app.state.server.batcher.stats[(model, signature)]


def test_concurrent_requests_share_one_call_and_get_what_they_would_get_alone(batching_app, models):
    name = _model_for("sentiment")
    texts = [["a gorgeous, witty film"], ["a tedious mess", "not bad at all"], ["the worst two hours of my life"],
             ["quietly devastating"], ["I laughed, I cried, I want my money back", "fine"], ["meh"]]
    before = dict(_stats(batching_app, name, "serving_default"))
    answers = asyncio.run(_concurrently(batching_app, [(name, {"instances": t}) for t in texts]))
    after = _stats(batching_app, name, "serving_default")
    assert after["batched_calls"] > before.get("batched_calls", 0), dict(after)
    assert after["calls"] - before.get("calls", 0) < len(texts)
    for request, answer in zip(texts, answers):
        assert answer.status_code == 200, answer.text
        alone = _direct(models["sentiment"], "serving_default", {"texts": request})["probability"]
        _assert_same(answer.json()["predictions"], alone, str(request), exact=False)


def test_translation_batches_only_requests_whose_results_cannot_change(batching_app, models):
    """`serving_default` merges texts of the same longest length (its decode length follows it);
    `translate_greedy` merges equal `max_length`s only: a max_length of 3 cuts its translation."""
    name = _model_for("translation")
    same_length = ["Ich bin müde.", "Wo ist er?", "Das ist gut."]  # 4 tokens each
    requests = [(name, {"instances": [t]}) for t in same_length + ["Der Zug kommt morgen um zehn Uhr an."]]
    greedy = [(name, {"signature_name": "translate_greedy", "inputs": {"texts": ["Ich bin müde."], "max_length": n}})
              for n in (3, 12, 12)]
    before = dict(_stats(batching_app, name, "serving_default"))
    before_greedy = dict(_stats(batching_app, name, "translate_greedy"))
    answers = asyncio.run(_concurrently(batching_app, requests + greedy))
    for (_, body), answer in zip(requests, answers):
        alone = _direct(models["translation"], "serving_default", {"texts": body["instances"]})
        assert answer.json()["predictions"][0]["translations"] == alone["translations"][0].decode()
    for (_, body), answer in zip(greedy, answers[len(requests):]):
        alone = _direct(models["translation"], "translate_greedy", body["inputs"])
        assert answer.json()["outputs"]["translations"] == [alone["translations"][0].decode()]
    after = _stats(batching_app, name, "serving_default")
    assert after["calls"] - before.get("calls", 0) == 2  # the three 4-token texts, then the long one
    after_greedy = _stats(batching_app, name, "translate_greedy")
    assert after_greedy["calls"] - before_greedy.get("calls", 0) == 2  # max_length 3, then both 12s
    short, long_ = answers[len(requests)].json(), answers[len(requests) + 1].json()
    assert short["outputs"]["translations"] != long_["outputs"]["translations"]


@pytest.mark.parametrize("task", TASKS)
def test_every_batched_signature_gives_each_row_what_it_gets_alone(task, models):
    """The batching policy's promise, checked on the model itself: the example rows of each batchable
    signature, as one-row requests merged by batch key, equal one call per row."""
    from zoo.serving.batching import merge_inputs, split_outputs
    from zoo.serving.tensors import decode_request

    model = models[task] if task in models else pytest.skip(f"no {task} model in the hub")
    checked = 0
    for name, signature in model.signatures.items():
        if not signature.batchable:
            continue
        inputs = model.examples()[name]["inputs"]
        whole = decode_request({"inputs": inputs}, signature.inputs, signature.checks, signature.max_rows)
        singles = []
        for i in range(whole.rows):
            arrays = {k: (v if signature.inputs[k].is_scalar else v[i:i + 1]) for k, v in whole.arrays.items()}
            singles.append(type(whole)(arrays, 1, False))
        groups = {}
        for single in singles:
            groups.setdefault(signature.batch_key(single), []).append(single)
        for group in groups.values():
            merged = split_outputs(signature.call(merge_inputs(signature, group)), [1] * len(group))
            for single, got in zip(group, merged):
                try:
                    alone = signature.call(single.arrays)
                except ServingError:
                    # A row the model refuses alone (a language model scoring a batch of nothing but
                    # one empty text) is not compared; in the server such a request fails alone.
                    continue
                checked += 1
                for key, value in alone.items():
                    _assert_same(np.asarray(got[key]).tolist() if value.dtype != object else
                                 [v.decode() for v in got[key]], value, f"{model.name} {name} {key}", exact=False)
    if not any(s.batchable for s in model.signatures.values()):
        pytest.skip(f"{model.name} has no batchable signature")
    assert checked > 0


def test_signatures_that_cannot_batch_exactly_run_alone():
    def spec(name, dtype, shape):
        return TensorSpec(name, np.dtype(dtype), shape)

    texts = {"texts": spec("texts", object, (None,))}
    assert batching_policy(texts, {"probability": spec("probability", "float32", (None,))})[0]
    attention = {"attention": spec("attention", "float32", (None, None, None))}
    batchable, why = batching_policy({**texts, "beam_width": spec("beam_width", "int32", ())}, attention)
    assert not batchable and "padded" in why
    sampled = {"keys": spec("keys", object, (None,)), "seed": spec("seed", "int64", ())}
    batchable, why = batching_policy(sampled, {"lengths": spec("lengths", "int32", (None,))})
    assert not batchable and "seed" in why
    assert not batching_policy({}, {"horizon": spec("horizon", "int32", ())})[0]


def test_music_generation_with_seeds_is_never_merged(batching_app, models):
    name = _model_for("music")
    bodies = [{"signature_name": "generate", "inputs": {"keys": [key], "num_events": 8, "temperature": 1.0,
                                                        "seed": seed, "min_events": 8}}
              for key, seed in (("D major", 1), ("F minor", 2), ("D major", 3))]
    before = dict(_stats(batching_app, name, "generate"))
    answers = asyncio.run(_concurrently(batching_app, [(name, b) for b in bodies]))
    after = _stats(batching_app, name, "generate")
    assert after["calls"] - before.get("calls", 0) == 3
    for body, answer in zip(bodies, answers):
        alone = _direct(models["music"], "generate", body["inputs"])
        _assert_same(answer.json()["outputs"]["tokens"], alone["tokens"], str(body))


# -- limits and errors ------------------------------------------------------------------------------


def _png_header(width, height):
    """The first bytes of a PNG file declaring width x height (no pixel data: nothing to decode)."""
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", width, height,
                                                                               8, 2, 0, 0, 0)


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "JSON Parse error"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (json.dumps({"instances": ["a"], "inputs": ["a"]}).encode(), 400, "either"),
    (json.dumps({"signature_name": "nope", "instances": ["a"]}).encode(), 400,
     'Serving signature name: \\"nope\\" not found'),
    (json.dumps({"instances": [1, 2]}).encode(), 400, "expected a string"),
    (json.dumps({"instances": []}).encode(), 400, "non-empty list"),
    (json.dumps({"instances": ["a", "b", "c", "d", "e"]}).encode(), 400, "at most 4"),
    (json.dumps({"instances": ["x" * 51]}).encode(), 400, "at most 50"),
    (json.dumps({"instances": [{"b64": "%%%"}]}).encode(), 400, "not valid base64"),
    (json.dumps({"instances": ["a" * 45] * 4, "pad": "x" * 4000}).encode(), 413, "at most 4,000"),
])
def test_bad_sentiment_requests_get_tensorflow_serving_error_codes(limited_client, body, status, message):
    name = _model_for("sentiment")
    answer = limited_client.post(f"/v1/models/{name}:predict", content=body)
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert list(answer.json()) == ["error"]


def test_a_chunked_body_over_the_limit_is_cut_off(limited_client):
    name = _model_for("sentiment")

    def chunks():
        yield b'{"instances": ["'
        for _ in range(10):
            yield b"x" * 500

    answer = limited_client.post(f"/v1/models/{name}:predict", content=chunks())
    assert answer.status_code == 413 and "max_body_bytes" in answer.json()["error"]


def test_scalar_arguments_and_images_are_bounded(limited_client):
    name = _model_for("translation")
    texts = ["Ich bin müde."]
    for arguments, message in (({"beam_width": 99, "max_length": 10}, "beam_width must be in 1..16"),
                               ({"beam_width": 0, "max_length": 10}, "beam_width must be in 1..16"),
                               ({"beam_width": 2, "max_length": 31}, "max_length must be in 1..30"),
                               ({"beam_width": 2.5, "max_length": 10}, "whole numbers"),
                               ({"beam_width": [2], "max_length": 10}, "int32 []")):
        answer = _post(limited_client, name, {"signature_name": "translate", "inputs": {"texts": texts, **arguments}})
        assert answer.status_code == 400 and message in answer.json()["error"], (arguments, answer.text)
    # the same scalar given differently in two instances cannot be one call's argument
    answer = _post(limited_client, name, {"signature_name": "translate", "instances": [
        {"texts": "a", "beam_width": 2, "max_length": 5}, {"texts": "b", "beam_width": 3, "max_length": 5}]})
    assert answer.status_code == 400 and "same value" in answer.json()["error"]
    if "music" in MODELS:
        answer = _post(limited_client, MODELS["music"], {"signature_name": "generate", "inputs": {
            "keys": ["D major"], "num_events": 101, "temperature": 1.0, "seed": 1, "min_events": 1}})
        assert answer.status_code == 400 and "num_events must be in 1..100" in answer.json()["error"]
    if "captioning" in MODELS:
        model = MODELS["captioning"]
        big = {"b64": base64.b64encode(_png_header(5000, 4000)).decode()}
        answer = _post(limited_client, model, {"signature_name": "caption_bytes", "instances": [big]})
        assert answer.status_code == 400 and "5000x4000" in answer.json()["error"]
        junk = {"b64": base64.b64encode(b"GIF7 is not a format").decode()}
        answer = _post(limited_client, model, {"signature_name": "caption_bytes", "instances": [junk]})
        assert answer.status_code == 400 and "not a PNG, JPEG, GIF or BMP" in answer.json()["error"]
        pixels = np.zeros((1, 101, 100, 3), np.uint8).tolist()
        answer = _post(limited_client, model, {"instances": pixels})
        assert answer.status_code in (400, 413), answer.text  # too many pixels (or bytes) either way


def test_a_full_queue_answers_503_with_retry_after_and_a_slow_request_504(limited_client):
    """max_queue=1 and a 600 ms batch window: the first request holds the queue (and passes its 0.3 s
    timeout: 504); one sent meanwhile is refused at once."""
    name = _model_for("sentiment")
    results = {}

    def first():
        results["first"] = _post(limited_client, name, {"instances": ["slow"]})

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.time() + 5
    while limited_client.app.state.server.in_flight == 0 and time.time() < deadline:
        time.sleep(0.01)
    second = _post(limited_client, name, {"instances": ["refused"]})
    thread.join(timeout=30)
    assert second.status_code == 503, second.text
    assert second.headers["retry-after"] == "1"
    assert "queue limit" in second.json()["error"]
    assert results["first"].status_code == 504, results["first"].text
    assert "did not finish within 0.3 s" in results["first"].json()["error"]


def test_a_graph_error_is_a_400_with_a_clean_message(client):
    name = _model_for("language-model")
    answer = _post(client, name, {"signature_name": "generate", "inputs": {
        "prompts": ["the"], "max_length": 5, "temperature": 1.0, "top_k": 0, "top_p": 0.0, "seed": 1}})
    assert answer.status_code == 400, answer.text
    assert "[[" not in answer.json()["error"] and "top_p" in answer.json()["error"]


def test_image_headers_give_the_declared_size():
    import tensorflow as tf

    image = tf.zeros([7, 5, 3], tf.uint8)
    assert image_size(tf.io.encode_png(image).numpy()) == (5, 7)
    assert image_size(tf.io.encode_jpeg(image).numpy()) == (5, 7)
    assert image_size(b"GIF89a" + struct.pack("<HH", 300, 200) + b"\0" * 10) == (300, 200)
    assert image_size(b"BM" + b"\0" * 16 + struct.pack("<ii", 30, -20)) == (30, 20)
    assert image_size(b"RIFF....WEBP") is None


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_queue"):
        ServeConfig(max_queue=0)
    from zoo.cli import build_parser

    args = build_parser().parse_args(["serve", "m", "--no-batching", "--max-queue", "3", "--batch-window-ms", "5"])
    assert (args.batching, args.max_queue, args.batch_window_ms, args.host, args.port) == \
        (False, 3, 5.0, "127.0.0.1", 8501)
    from zoo.serving.app import check_address

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            check_address("127.0.0.1", taken.getsockname()[1])


# -- pages -----------------------------------------------------------------------------------------


def test_the_index_links_every_model_and_each_page_carries_its_card_and_signatures(client, models):
    index = client.get("/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    for task, model in models.items():
        assert f'href="/models/{model.name}"' in index.text
        page = client.get(f"/models/{model.name}")
        assert page.status_code == 200
        assert 'src="/static/zoo.js"' in page.text and "<script src=\"http" not in page.text
        raw = page.text.split('id="model-data">', 1)[1].split("</script>", 1)[0]
        data = json.loads(raw)
        assert data["name"] == model.name and data["task"] == task
        assert sorted(data["signatures"]) == sorted(model.signatures)
        assert sorted(data["examples"]) == sorted(model.signatures)
    for asset in ("zoo.js", "zoo.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/models/no-such-model").status_code == 404


@pytest.fixture(scope="module")
def socket_server(models):
    """All the test models served by uvicorn on a real port, in a thread of this process."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(list(models.values())), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_the_page_scripts_run_every_form_against_the_server(socket_server, models):
    """The pages' script itself, under Node with a stand-in DOM (tests/serve_page_driver.js): each form's
    buttons are clicked with the page's own example inputs, and what the page shows is read back.
    The same flows as the browser test, at the HTTP level."""
    import shutil

    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("needs Node.js (apt-get install nodejs) to run the pages' script")
    driver = Path(__file__).resolve().parent / "serve_page_driver.js"
    names = [model.name for model in models.values()]
    run = subprocess.run([node, str(driver), socket_server, *names], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    pages = {page["model"]: page for page in map(json.loads, run.stdout.splitlines())}
    assert sorted(pages) == sorted(names), run.stderr[-3000:]
    for task, model in models.items():
        page = pages[model.name]
        assert "crashed" not in page, page.get("crashed")
        assert page["task"] == task and page["signatures"] == len(model.signatures)
        assert page["console"]["errors"] == [] and '"outputs"' in page["console"]["text"], page["console"]
        actions = {action["button"]: action for action in page["actions"]}
        if task == "speech":  # its first button needs an uploaded file; the example tone needs none
            assert "choose a WAV file first" in actions["Transcribe"]["errors"][0]
            actions.pop("Transcribe")
        assert actions, f"{model.name}: the page has no form"
        for label, action in actions.items():
            assert action["errors"] == [], (model.name, label, action["errors"])
            assert action["text"].strip(), (model.name, label)
        if task == "sentiment":
            assert "positive" in actions["Classify"]["text"] and "negative" in actions["Classify"]["text"]
        if task == "translation":
            assert actions["Translate"]["canvases"] >= 1 and actions["Translate"]["painted"] > 10  # attention
        if task == "captioning":
            assert actions["Caption"]["canvases"] >= 1 and actions["Caption"]["painted"] > 10  # one map per word
        if task == "music":
            assert actions["Compose"]["painted"] > 10 and actions["Compose"]["links"][0].endswith(".mid")
        if task == "forecasting":
            assert actions["Forecast"]["painted"] > 0 and "+1" in actions["Forecast"]["text"]
        if task == "language-model":
            assert "perplexity" in actions["Score"]["text"]


# -- the real server ----------------------------------------------------------------------------------


def test_the_command_serves_on_a_socket_and_finishes_in_flight_requests_on_sigterm(live_server):
    if live_server is None:
        pytest.skip("no sentiment model in the hub to serve")
    process, port, name = live_server["process"], live_server["port"], live_server["name"]
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/v1/models/{name}", timeout=5) as response:
                assert json.load(response)["model_version_status"][0]["state"] == "AVAILABLE"
            break
        except (urllib.error.URLError, ConnectionError):
            assert process.poll() is None, process.communicate()[0][-3000:]
            assert time.time() < deadline, "the server did not start within 120 s"
            time.sleep(0.2)
    answers = {}

    def ask():
        request = urllib.request.Request(f"{base}/v1/models/{name}:predict", method="POST",
                                         data=json.dumps({"instances": ["a gorgeous, witty film"]}).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            answers["status"], answers["body"] = response.status, json.load(response)

    thread = threading.Thread(target=ask)
    thread.start()
    time.sleep(0.4)  # the request now waits in its 1 s batch window
    process.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    assert answers.get("status") == 200, answers
    assert 0 < answers["body"]["predictions"][0] < 1
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[-3000:]
    assert "zoo serve: stopped" in output
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{base}/v1/models/{name}", timeout=5)


# -- a real browser (slow) ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_sentiment_page_works_in_headless_chromium(models):
    """Type two lines on the sentiment page, submit, read the probabilities; on the translation page,
    check the attention map was drawn. Needs selenium and Debian's chromium + chromium-driver."""
    import shutil

    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    driver_path = shutil.which("chromedriver")
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not driver_path or not browser_path:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    import uvicorn
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(list(models.values())), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    screenshots = Path(__file__).resolve().parent.parent / "docs" / "serving"
    try:
        browser.get(f"http://127.0.0.1:{port}/models/{MODELS['sentiment']}")
        box = browser.find_element(By.CSS_SELECTOR, "#try textarea")
        box.clear()
        box.send_keys("a gorgeous, witty film\na tedious, overlong mess")
        browser.find_element(By.XPATH, "//div[@id='try']//button[text()='Classify']").click()
        cells = WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "td.probability"))
        assert cells[0].text.startswith("positive") and cells[1].text.startswith("negative")
        if os.environ.get("ZOO_SCREENSHOTS"):
            screenshots.mkdir(exist_ok=True)
            browser.save_screenshot(str(screenshots / "sentiment.png"))
        if "translation" in MODELS:
            browser.get(f"http://127.0.0.1:{port}/models/{MODELS['translation']}")
            browser.find_element(By.XPATH, "//div[@id='try']//button[text()='Translate']").click()
            canvases = WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#try canvas"))
            drawn = browser.execute_script(
                "const c = arguments[0]; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200) n++; return n;", canvases[0])
            assert drawn > 50  # attention cells and labels were painted
            if os.environ.get("ZOO_SCREENSHOTS"):
                browser.save_screenshot(str(screenshots / "translation.png"))
        # every other page: its first form that needs no uploaded file gives a result
        for task, model in models.items():
            if task in ("sentiment", "translation"):
                continue
            browser.get(f"http://127.0.0.1:{port}/models/{model.name}")
            buttons = [b for b in browser.find_elements(By.CSS_SELECTOR, "#try button")
                       if b.text != "Transcribe"]  # that one needs an uploaded file
            assert buttons, f"{model.name}: no form to try"
            buttons[0].click()
            WebDriverWait(browser, 90).until(
                lambda b: any(r.text.strip() or r.find_elements(By.CSS_SELECTOR, "canvas, svg, img")
                              for r in b.find_elements(By.CSS_SELECTOR, "#try .result")))
            errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#try .error") if e.text.strip()]
            assert not errors, (model.name, errors)
            if os.environ.get("ZOO_SCREENSHOTS"):
                browser.save_screenshot(str(screenshots / f"{task}.png"))
    finally:
        browser.quit()
        server.should_exit = True
        thread.join(timeout=30)
