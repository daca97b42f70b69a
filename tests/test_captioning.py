"""Captioning task: caption tokens, image decoding, the model, in-graph decoding, recipe, serving, CLI."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from recipe_helpers import ROOT, train_smoke_model

tf = pytest.importorskip("tensorflow")

from zoo.tasks import captioning as task  # noqa: E402

# The shipped path: four leave-one-style-out rotations, then a model on every style, with the
# retrieval prior switched on (a weight set by hand: these tiny models get nothing right on validation).
SMOKE = ["--max-examples", "64", "--epochs", "1", "--units", "16", "--embedding-dim", "8",
         "--filters", "4,4,4,8", "--batch-size", "32", "--retrieval-weight", "20",
         "--rotation-styles", "fluent"]  # one rotation (Fluent: no flags, so no flag floors); the mean and
                                           # the floors over several rotations: test_style_floors_and_rotations_summary

LABELS = ["face with tears of joy", "kiss: woman, woman", "flag: Japan",
          "woman walking: medium-dark skin tone", "A button (blood type)", "keycap: *",
          "flag: Côte d’Ivoire", "family: man, woman, girl, boy"]


# -- caption tokens ------------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
def test_caption_tokens_round_trip_exactly(label):
    tokens = task.split_caption(tf.constant([label])).to_tensor("")
    assert task.join_caption(tokens).numpy()[0].decode("utf-8") == label


def test_caption_tokens_split_cldr_separators():
    assert task.caption_tokens(["kiss: woman, woman"]) == [["kiss", ":", "woman", ",", "woman"]]


def test_vocabulary_and_encoding():
    vocabulary = task.build_vocabulary(["flag: Japan", "flag: France"])
    assert vocabulary[:4] == ["", "[UNK]", "<s>", "</s>"] and vocabulary[4:6] == [":", "flag"]
    inputs, targets, weights = task.encode_captions(["flag: Peru"], vocabulary)
    index = {w: i for i, w in enumerate(vocabulary)}
    assert list(inputs[0]) == [task.BOS, index["flag"], index[":"], task.UNK]
    assert list(targets[0]) == [index["flag"], index[":"], task.UNK, task.EOS]
    assert weights.sum() == 4


# -- images ---------------------------------------------------------------------------


def _png(array):
    return tf.io.encode_png(tf.constant(array)).numpy()


def test_decode_image_bytes_converts_grey_and_composites_alpha_on_white():
    grey = np.full((10, 12, 1), 100, np.uint8)
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255          # red, fully transparent: must come out white
    rgba[:10, :, 3] = 255       # top half opaque red
    jpeg = tf.io.encode_jpeg(tf.constant(np.full((30, 40, 3), 200, np.uint8))).numpy()
    out = task.decode_image_bytes(tf.constant([_png(grey), _png(rgba), jpeg])).numpy()
    assert out.shape == (3, 64, 64, 3) and out.dtype == np.uint8
    assert np.all(out[0] == 100)
    assert np.all(out[1][5] == [255, 0, 0]) and np.all(out[1][60] == [255, 255, 255])
    assert np.abs(out[2].astype(int) - 200).max() <= 2


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_pngs_read_the_same_on_the_command_line_and_in_the_signature(tmp_path, channels):
    import tensorflow as tf

    values = np.array([[0, 255, 256, 128 * 257, 25900, 65535, 383, 40000]], np.uint16)
    pixels = np.stack([values, values // 2, values // 3], -1) if channels == 3 else values[..., None]
    png = tf.io.encode_png(pixels).numpy()
    path = tmp_path / "wide.png"
    path.write_bytes(png)
    from_file = task.read_image_file(path)
    in_graph = task.to_rgb_on_white(tf.io.decode_image(png, channels=0, expand_animations=False)).numpy()
    np.testing.assert_array_equal(from_file, in_graph)
    assert from_file[0, 3, 0] == 128  # 128·257 is mid-grey, not white


def test_resize_shrinks_by_area_averaging():
    image = np.zeros((1, 128, 128, 3), np.uint8)
    image[:, ::2] = 255  # alternate rows: the 64x64 average is mid grey, not aliased stripes
    out = task.resize_images(tf.constant(image)).numpy()
    np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_read_image_file_handles_modes_and_rejects_bad_files(tmp_path):
    from PIL import Image

    Image.new("L", (30, 20), 50).save(tmp_path / "grey.png")
    Image.new("RGBA", (16, 16), (0, 0, 255, 0)).save(tmp_path / "clear.png")
    Image.new("P", (16, 16)).save(tmp_path / "palette.gif")
    assert task.read_image_file(tmp_path / "grey.png").shape == (20, 30, 3)
    assert np.all(task.read_image_file(tmp_path / "clear.png") == 255)
    assert task.read_image_file(tmp_path / "palette.gif").shape == (16, 16, 3)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not an image file"):
        task.read_image_file(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="no such file"):
        task.read_image_file(tmp_path / "missing.png")
    Image.new("RGB", (3000, 2000), (10, 200, 30)).save(tmp_path / "big.png")
    big = task.read_image_file(tmp_path / "big.png")
    assert max(big.shape[:2]) <= 4 * task.IMAGE_SIZE and np.all(big[5, 5] == [10, 200, 30])


# -- model and decoding ----------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_model():
    """Four coloured squares named by colour: the model must look at the picture."""
    import keras

    keras.utils.set_random_seed(5)
    colours = {"red heart": (220, 30, 30), "blue square": (30, 30, 220), "green circle": (30, 200, 30),
               "flag: Japan": (250, 250, 250)}
    images, captions = [], []
    rng = np.random.default_rng(0)
    for _ in range(24):
        for caption, colour in colours.items():
            image = np.full((64, 64, 3), 255, np.uint8)
            x, y = rng.integers(8, 24, size=2)
            image[y : y + 32, x : x + 32] = colour
            if caption == "flag: Japan":
                image[y + 12 : y + 20, x + 12 : x + 20] = (200, 0, 0)
            images.append(image)
            captions.append(caption)
    images = np.stack(images)
    model = task.build_model(captions, units=32, embedding_dim=16, filters=(8, 8, 16, 16),
                             dropout=0.0, augment=False)
    task.compile_model(model, learning_rate=5e-3)
    model.fit(task.make_dataset(model, images, captions, batch_size=32, shuffle=True), epochs=15, verbose=0)
    return model, images, captions


def test_toy_model_names_the_pictures(toy_model):
    model, images, captions = toy_model
    predicted = task.caption_images(model, images[:8], beam_width=1)
    assert predicted == captions[:8]


def test_attention_weights_sum_to_one_over_the_grid(toy_model):
    model, images, _ = toy_model
    results = task.caption(model, list(images[:3]), beam_width=2)
    for result in results:
        assert result["attention"].shape == (len(result["tokens"]), 64)
        np.testing.assert_allclose(result["attention"].sum(axis=1), 1.0, atol=1e-5)


def test_beam_one_equals_greedy(toy_model):
    model, images, _ = toy_model
    assert task.caption_images(model, images[:8], beam_width=1) == [
        r["caption"] for r in task.caption(model, list(images[:8]), beam_width=1)]


def test_bad_inputs(toy_model):
    model, images, _ = toy_model
    with pytest.raises(ValueError, match="beam_width"):
        task.caption(model, [images[0]], beam_width=0)
    with pytest.raises(ValueError, match="max_length"):
        task.caption(model, [images[0]], max_length=1000)
    captioner = task.Captioner(model)
    with pytest.raises(tf.errors.InvalidArgumentError, match="beam_width must be >= 1"):
        captioner.caption(tf.constant(images[:1]), tf.constant(0), tf.constant(5))
    # any size works: the graph resizes (tiny and large images alike)
    odd = [np.full((3, 5, 3), 255, np.uint8), np.full((300, 200, 3), 0, np.uint8)]
    assert len(task.caption(model, odd, beam_width=1)) == 2
    with pytest.raises(ValueError, match="one caption each"):
        task.make_dataset(model, images[:2], ["red heart"])


def _encoded(fmt, width, height):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def _png_declaring(width, height):
    """A 60-byte PNG whose header declares `width` x `height` pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "JPEG"])
def test_declared_pixels_are_read_from_the_header(fmt):
    assert int(task.declared_pixels(tf.constant(_encoded(fmt, 37, 21)))) == 37 * 21


def test_caption_bytes_refuses_an_image_declaring_too_many_pixels_before_decoding():
    with pytest.raises(tf.errors.InvalidArgumentError, match="declares more than 20,000,000 pixels"):
        task.decode_image_bytes(tf.constant([_encoded("PNG", 8, 8), _png_declaring(20000, 20000)]))
    assert task.decode_image_bytes(tf.constant([_encoded("GIF", 300, 200)])).shape == (1, 64, 64, 3)


def test_empty_batches_give_empty_results(toy_model):
    model, _, _ = toy_model
    captioner = task.Captioner(model)
    empty = tf.zeros([0, 64, 64, 3], tf.uint8)
    assert captioner.serve(empty)["captions"].shape == (0,)
    assert captioner.caption(empty, tf.constant(2), tf.constant(5))["attention"].shape[0] == 0
    assert captioner.caption_greedy(empty, tf.constant(5))["captions"].shape == (0,)
    assert captioner.caption_bytes(tf.constant([], tf.string))["captions"].shape == (0,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 20,000,000 pixels"):
        captioner.caption_greedy(tf.zeros([1, 5000, 4001, 3], tf.uint8), tf.constant(3))
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"at most {task.MAX_SIGNATURE_BATCH} images"):
        captioner.caption_greedy(tf.zeros([task.MAX_SIGNATURE_BATCH + 1, 8, 8, 3], tf.uint8), tf.constant(3))


# -- the retrieval prior ------------------------------------------------------------------


def test_principal_directions_from_few_rows_match_the_full_eigenproblem():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((12, 40))
    values, vectors = np.linalg.eigh(rows.T @ rows)
    full = vectors[:, np.argsort(values)[::-1]]
    few = task.principal_directions(rows, 20)  # from the 12 x 12 gram matrix
    assert few.shape == (40, 20) and not few[:, 12:].any()  # beyond the rank: zero
    np.testing.assert_allclose(np.abs(np.sum(few[:, :12] * full[:, :12], axis=0)), 1.0, atol=1e-5)
    np.testing.assert_allclose(few[:, :12].T @ few[:, :12], np.eye(12), atol=1e-5)
    basis = task.principal_directions(rows, 40)  # every direction: a full orthonormal basis
    np.testing.assert_allclose(basis.T @ basis, np.eye(40), atol=1e-5)


@pytest.fixture(scope="module")
def toy_memory(toy_model):
    """The toy model with a memory of its training pictures (two 'styles'), every direction kept."""
    model, images, captions = toy_model
    split = {"images": images, "captions": captions,
             "styles": ["google" if i // 4 % 2 else "fluent" for i in range(len(captions))]}
    memory = task.build_retrieval_memory(model, split, dims=3072)
    return task.with_retrieval_memory(model, memory, weight=0.0, candidates=3), split


def test_memory_leaves_the_model_unchanged_and_survives_saving(toy_model, toy_memory, tmp_path):
    import keras

    model, images, _ = toy_model
    with_memory, split = toy_memory
    batch = {"images": images[:4], "tokens": np.full((4, 3), task.BOS, np.int32)}
    np.testing.assert_array_equal(model(batch, training=False), with_memory(batch, training=False))
    with_memory.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    memory, again = task.retrieval_memory(with_memory), task.retrieval_memory(loaded)
    for name in ("projection", "codes", "entry_caption", "entry_style", "caption_ids"):
        np.testing.assert_array_equal(getattr(memory, name).numpy(), getattr(again, name).numpy())
    assert task.retrieval_memory(model) is None


def test_memory_similarities_are_the_pixel_cosines_of_the_1nn_baseline(toy_memory):
    from zoo.data import emoji
    from zoo.tasks import captioning_metrics as cm

    with_memory, split = toy_memory
    memory = task.retrieval_memory(with_memory)
    queries = split["images"][:6]
    found = memory.caption_similarities(task.resize_images(queries)).numpy()
    cosine = cm.pixel_features(queries) @ cm.pixel_features(split["images"]).T
    captions = sorted(set(split["captions"]))
    expected = np.stack([[cosine[q, [i for i, c in enumerate(split["captions"]) if c == caption]].max()
                          for caption in captions] for q in range(len(queries))])
    np.testing.assert_allclose(found, expected, atol=0.02)  # int8 codes, float16 projection
    styles = np.array([emoji.STYLES.index(s) for s in split["styles"]])
    excluded = memory.caption_similarities(task.resize_images(queries), tf.constant(styles[:6])).numpy()
    expected = np.stack([[cosine[q, [i for i, c in enumerate(split["captions"])
                                     if c == caption and styles[i] != styles[q]]].max()
                          for caption in captions] for q in range(len(queries))])
    np.testing.assert_allclose(excluded, expected, atol=0.02)


def test_reranking_picks_the_best_of_log_p_plus_weighted_similarity(toy_memory):
    """Oracle: each candidate's log p from the Keras model's own teacher-forced forward pass."""
    with_memory, split = toy_memory
    images = split["images"][:5]
    captioner = task.Captioner(with_memory)
    found = captioner.scored_candidates(tf.constant(images), tf.fill([5], -1), tf.constant(3))
    captions = [[c.decode() for c in row] for row in found["captions"].numpy()]
    log_probs, similarities = found["log_probs"].numpy(), found["similarities"].numpy()
    vocabulary = task.model_vocabulary(with_memory)
    for i, row in enumerate(captions):
        assert len(row) == 4  # the beam's caption, then three retrieved
        inputs, targets, weights = task.encode_captions(row, vocabulary)
        logits = with_memory({"images": np.repeat(images[i : i + 1], len(row), 0), "tokens": inputs},
                             training=False)
        oracle = (np.take_along_axis(tf.nn.log_softmax(logits).numpy(), targets[..., None], -1)[..., 0]
                  * weights).sum(1)
        np.testing.assert_allclose(log_probs[i], oracle, atol=1e-3)
    task.set_retrieval_weight(with_memory, 50.0)
    try:
        chosen = task.caption_images(task.Captioner(with_memory), images, beam_width=3)
    finally:
        task.set_retrieval_weight(with_memory, 0.0)
    expected = [row[int(np.argmax(lp + 50.0 * sim))] for row, lp, sim in zip(captions, log_probs, similarities)]
    assert chosen == expected


def test_memory_signatures_answer_empty_batches(toy_memory):
    with_memory, _ = toy_memory
    task.set_retrieval_weight(with_memory, 10.0)
    try:
        captioner = task.Captioner(with_memory)
        empty = tf.zeros([0, 64, 64, 3], tf.uint8)
        assert captioner.serve(empty)["captions"].shape == (0,)
        assert captioner.caption(empty, tf.constant(2), tf.constant(5))["attention"].shape[0] == 0
        result = captioner.caption(tf.zeros([2, 64, 64, 3], tf.uint8) + 255, tf.constant(2), tf.constant(5))
        assert result["attention"].shape[:2] == result["tokens"].shape[:2]
    finally:
        task.set_retrieval_weight(with_memory, 0.0)


def test_keras_round_trip_and_fine_tuning(toy_model, tmp_path):
    import keras

    model, images, captions = toy_model
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    batch = {"images": tf.constant(images[:2]), "tokens": tf.constant([[task.BOS, 4], [task.BOS, 5]])}
    np.testing.assert_allclose(model(batch), loaded(batch), atol=1e-5)
    new = task.make_dataset(loaded, images[:32], ["green circle"] * 32, batch_size=16)
    task.compile_model(loaded, learning_rate=5e-3)
    before = loaded.evaluate(new, verbose=0)[0]
    loaded.fit(new, epochs=2, verbose=0)
    assert loaded.evaluate(new, verbose=0)[0] < before


def test_attention_overlay_png(toy_model, tmp_path):
    model, images, _ = toy_model
    (result,) = task.caption(model, [images[0]], beam_width=2)
    path = task.attention_overlay_png(images[0], result, tmp_path / "overlay.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- recipe, SavedModel, CLI -----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    try:
        card = train_smoke_model("captioning", SMOKE, "captioning-smoke", root)
    except Exception as error:
        from zoo.data.cache import DataUnavailableError

        if isinstance(error, DataUnavailableError):
            pytest.skip(f"emoji data unavailable: {error}")
        raise
    return root, card


def test_style_floors_and_rotations_summary():
    def scores(exact, cider, flags=True):
        groups = {"base": {"exact_match": exact, "cider_d": cider}}
        if flags:
            groups["flag"] = {"exact_match": exact / 2, "cider_d": cider / 2}
        return {"overall": {"exact_match": exact, "cider_d": cider}, "groups": groups}

    def rotation(model, neighbour):
        return {"model": {"test": model, "heldout_emoji": {"cider_d": model["overall"]["cider_d"]}},
                "nearest_neighbour_pixels": {"test": neighbour, "heldout_emoji": {"cider_d": 0.0}},
                **task.style_floors(model, neighbour)}

    won = rotation(scores(0.6, 3.0), scores(0.5, 2.0))
    assert won["meets_floors"] and not won["floors_not_applicable"]
    assert {"overall exact_match", "overall cider_d", "base exact_match", "flag exact_match"} <= set(won["floors"])
    no_flags = rotation(scores(0.2, 1.0, flags=False), scores(0.4, 2.0, flags=False))
    assert not no_flags["meets_floors"] and not no_flags["floors"]["overall exact_match"]["above"]
    assert any(note.startswith("flag exact_match") for note in no_flags["floors_not_applicable"])
    summary = task.rotations_summary({"google": won, "fluent": no_flags})
    assert summary["rotations"] == 2 and summary["rotations_meeting_floors"] == 1
    assert summary["model"]["overall"]["exact_match"] == pytest.approx(0.4)
    assert summary["model"]["groups"]["flag"]["exact_match"] == pytest.approx(0.3)  # the rotations that draw flags
    assert summary["model"]["heldout_emoji_cider_d"] == pytest.approx(2.0)
    assert "decoder_alone" not in summary  # a system missing from a rotation is not averaged


def test_recipe_smoke_card(smoke_hub):
    root, card = smoke_hub
    assert card["task"] == "captioning"
    for decoding in ("greedy", "beam3"):
        overall = card["metrics"]["validation"][decoding]["overall"]
        assert set(overall) >= {"exact_match", "cider_d", "bleu4"}
    assert "test" not in card["metrics"]  # every style trained
    assert "exact_match" not in card["metrics"]["heldout_emoji"]["greedy"]["overall"]
    assert card["baselines"]["nearest_neighbour_pixels"]["validation"]["overall"]["count"] == 64
    assert card["dataset"]["test_style"] is None
    assert card["decoding"]["retrieval"]["weight"] == 20.0 and card["decoding"]["retrieval"]["drawings"] == 64
    loso = card["leave_one_style_out"]
    assert set(loso["rotations"]) == {"fluent"}
    for style, rotation in loso["rotations"].items():
        assert rotation["test_style"] == [style] and style not in rotation["training_styles"]
        assert set(rotation) >= {"model", "decoder_alone", "nearest_neighbour_pixels", "floors", "meets_floors"}
        assert rotation["model"]["test"]["overall"]["count"] == 64
        for row in rotation["floors"].values():
            assert row["above"] == (row["model"] > row["nearest_neighbour"])
    assert loso["mean"]["rotations"] == 1
    assert loso["rotations"]["fluent"]["floors_not_applicable"]  # Fluent draws no flags
    assert loso["mean"]["model"]["overall"]["exact_match"] == pytest.approx(
        np.mean([r["model"]["test"]["overall"]["exact_match"] for r in loso["rotations"].values()]), abs=1e-6)
    json.loads((root / "captioning-smoke" / "card.json").read_text())


def test_saved_model_runs_in_a_fresh_process_without_zoo(smoke_hub, tmp_path):
    root, _ = smoke_hub
    from PIL import Image

    Image.new("LA", (40, 30), (90, 255)).save(tmp_path / "grey.png")
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        serving = tf.saved_model.load({str(root / 'captioning-smoke' / 'saved_model')!r})
        images = tf.constant(np.full((2, 100, 80, 3), 255, np.uint8))
        out = serving.signatures["serving_default"](images=images)
        assert out["captions"].shape == (2,) and out["scores"].dtype == tf.float32
        full = serving.signatures["caption"](images=images, beam_width=tf.constant(2),
                                             max_length=tf.constant(6))
        assert full["attention"].shape[0] == 2 and full["attention"].shape[2] == 64
        data = open({str(tmp_path / 'grey.png')!r}, "rb").read()
        jpeg = tf.io.encode_jpeg(tf.constant(np.zeros((20, 20, 3), np.uint8))).numpy()
        by_bytes = serving.signatures["caption_bytes"](image_bytes=tf.constant([data, jpeg]))
        assert by_bytes["captions"].shape == (2,)
        assert not any(name.startswith("zoo") for name in sys.modules), "zoo was imported"
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=str(tmp_path), env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_zoo_caption_cli(smoke_hub, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from zoo import cli

    root, _ = smoke_hub
    Image.new("RGBA", (72, 72), (255, 200, 0, 255)).save(tmp_path / "a.png")
    Image.new("L", (20, 20), 0).save(tmp_path / "b.jpg")
    (tmp_path / "c.txt").write_text("hello")
    # In this process (no second TensorFlow start-up): `python -m zoo.cli` itself runs in the sentiment
    # and serving tests.
    monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
    capsys.readouterr()
    assert cli.main(["caption", "captioning-smoke", str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), "--beam", "2",
                     "--attention-map", str(tmp_path / "map.png")]) in (0, None)
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert (tmp_path / "map-1.png").exists() and (tmp_path / "map-2.png").exists()
    assert cli.main(["caption", "captioning-smoke", str(tmp_path / "c.txt")]) == 2
    assert "not an image file" in capsys.readouterr().err
    assert cli.main(["caption", "captioning-smoke", str(tmp_path / "a.png"), "--beam", "0"]) == 2
    assert "--beam" in capsys.readouterr().err


def test_every_signature_runs_under_the_tf1_session_loader(smoke_hub, monkeypatch):
    from serving_helpers import check_session_loader

    root, _ = smoke_hub
    monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
    check_session_loader("captioning-smoke")


def test_saved_model_stores_every_weight_once(smoke_hub):
    from serving_helpers import assert_weights_saved_once

    root, card = smoke_hub
    projection = task.RETRIEVAL_SIZE ** 2 * 3 * card["decoding"]["retrieval"]["dims"]  # the memory's floats
    assert_weights_saved_once(root / "captioning-smoke" / "saved_model", card["parameters"] + projection)


def test_verify_reproduces_the_smoke_card(smoke_hub, monkeypatch, capsys):
    from zoo import cli

    root, _ = smoke_hub
    monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
    code = cli.main(["verify", "captioning-smoke"])
    captured = capsys.readouterr()
    assert code == 0, captured.out[-2000:] + captured.err[-2000:]
    assert "card metrics reproduced" in captured.out
    assert "re-measured validation: greedy.exact_match=" in captured.out  # the nested figures are shown


@pytest.mark.slow
def test_recipe_resumes_after_a_kill(tmp_path):
    options = SMOKE[:2] + ["--epochs", "2", "--units", "8", "--embedding-dim", "4", "--filters",
                           "4,4,4,4", "--no-leave-one-style-out", "--patience", "5", "--name", "captioning-resume",
                           "--output-dir", str(tmp_path), "--run-dir", str(tmp_path / "run")]
    env = {**os.environ, "ZOO_KILL_AFTER_EPOCH": "run:1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(ROOT / "recipes" / "captioning.py"), *options]
    killed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))
    assert killed.returncode == -9, killed.stderr[-2000:]
    env.pop("ZOO_KILL_AFTER_EPOCH")
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from the checkpoint" in resumed.stdout
    card = json.loads((tmp_path / "captioning-resume" / "card.json").read_text())
    assert card["training"]["resumed"] is True and card["training"]["epochs_run"] == 2


def test_demo_captions_drawings_of_the_held_out_style(smoke_hub, monkeypatch, tmp_path, capsys):
    from zoo import demo

    root, _ = smoke_hub
    monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
    path = demo.captioning_demo(out_dir=tmp_path)
    out = capsys.readouterr().out
    assert "CLDR name 'face with tears of joy'" in out and "CLDR name 'flag: Japan'" in out
    assert path is not None and path.stat().st_size > 1000
