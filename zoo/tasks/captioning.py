"""CNN + RNN image captioning with visual attention: an emoji drawing in, its CLDR name out.

The Keras model (`build_model`) takes raw images and, for teacher forcing, the
caption's word ids:

    images uint8 [batch, H, W, 3] → ImagePreprocess (resize to 64x64, scale to [0, 1])
    → augmentation while training (small shifts, zoom, rotation, brightness, contrast)
    → a convolutional encoder trained from scratch → grid [batch, 8 * 8 cells, features]
        ├→ mean over the grid → Dense(tanh) → decoder initial state   (Show and Tell)
        └→ attention memory                                            (Show, Attend and Tell)
    caption word ids (BOS w_1 ... w_n) → Embedding → AttentionDecoder (zoo cell + attention
    over the grid at every step) → Dropout → WordLogits (one logit per caption word)

Colour is never jittered and images are never flipped: "blue heart" and "left
arrow" depend on both. Captions are tokenized by white space with the CLDR
separators ``:`` and ``,`` as tokens of their own, so a generated caption is
written back exactly in the label's own form ("kiss: woman, woman").

`Captioner` is the `tf.Module` the serving SavedModel saves; decoding runs on
`zoo.generation.decode`:

* ``serving_default``: ``images`` uint8 ``[batch, height, width, 3]`` (any
  size; resized inside) → ``captions`` string ``[batch]``, ``scores`` float32;
* ``caption``: ``images``, ``beam_width`` int32, ``max_length`` int32 → also
  ``attention`` float32 ``[batch, steps, grid cells]`` and ``tokens`` (strings);
* ``caption_bytes``: ``image_bytes`` string ``[batch]`` (PNG, JPEG, GIF or BMP
  files as bytes; greyscale and RGBA are converted, transparency composited on
  white) → the outputs of ``serving_default``.

An image of any size is resized to 64x64 inside the graph (area averaging
when shrinking), so a 10,000 x 10,000 image works but costs its own size in
memory (300 MB as uint8); the command line (`caption_cli`) shrinks large files
before they reach the model.
"""

from zoo import _backend  # noqa: F401

import collections
import time

import keras
import numpy as np
import tensorflow as tf

from zoo.tasks.word_decoding import (  # noqa: F401  (re-exported: the task's public names)
    ATTENTIONS, BOS, CELLS, EOS, MAX_BEAM_WIDTH, PAD, SPECIAL_TOKENS, STATE_NAMES, UNK, WordLogits,
    check_decoder_choice, check_whole_number, checked_bounds, compile_model, decode_words, fresh_copy,
    hold_model, restorable_variables, word_head)

TASK = "captioning"
IO_TYPE = "one-to-many"
IMAGE_SIZE = 64
MAX_CAPTION_TOKENS = 40
DEFAULT_BEAM_WIDTH = 3
DEFAULT_MAX_LENGTH = 24


# --------------------------------------------------------------------------
# Caption tokens
# --------------------------------------------------------------------------


def split_caption(texts):
    """Caption strings `[batch]` → ragged tokens: words split at white space; ':' and ',' stand alone."""
    texts = tf.convert_to_tensor(texts, tf.string)
    spaced = tf.strings.regex_replace(texts, r"([:,])(\s|$)", r" \1\2")
    return tf.strings.split(spaced)


def join_caption(words):
    """Word strings `[batch, time]` ("" = none) → captions in the CLDR label form ("flag: Japan")."""
    text = tf.strings.reduce_join(words, axis=-1, separator=" ")
    text = tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))
    return tf.strings.regex_replace(text, r" ([:,])", r"\1")


def caption_tokens(captions):
    """`split_caption` for a Python list: a list of token lists."""
    if not captions:
        return []
    return [[t.decode("utf-8") for t in row] for row in split_caption(tf.constant(list(captions))).to_list()]


def build_vocabulary(train_captions, min_count=1):
    """Caption words of the training split (PAD, UNK, BOS, EOS first; by frequency, then alphabetically)."""
    counts = collections.Counter(tok for tokens in caption_tokens(list(train_captions)) for tok in tokens)
    words = [w for w, c in counts.items() if c >= min_count]
    words.sort(key=lambda w: (-counts[w], w))
    return SPECIAL_TOKENS + words


def encode_captions(captions, vocabulary):
    """`(decoder input ids, target ids, weights)` `[n, time]` for captions, with the model's vocabulary."""
    index = {w: i for i, w in enumerate(vocabulary)}
    rows = [[index.get(t, UNK) for t in tokens][: MAX_CAPTION_TOKENS - 1]
            for tokens in caption_tokens(list(captions))]
    width = max((len(r) for r in rows), default=0) + 1
    inputs = np.zeros((len(rows), width), np.int32)
    targets = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        inputs[i, : len(row) + 1] = [BOS] + row
        targets[i, : len(row) + 1] = row + [EOS]
    return inputs, targets, (targets != PAD).astype(np.float32)


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------


def resize_images(images, size=IMAGE_SIZE):
    """uint8 `[batch, H, W, 3]` → float32 `[batch, size, size, 3]` in [0, 1] (area averaging when shrinking)."""
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    shrinking = tf.logical_or(shape[1] > size, shape[2] > size)
    resized = tf.cond(
        shrinking,
        lambda: tf.image.resize(images, [size, size], method="area"),
        lambda: tf.image.resize(images, [size, size], method="bilinear"),
    )
    return tf.reshape(resized, [-1, size, size, 3]) / 255.0


@keras.saving.register_keras_serializable(package="zoo.captioning", name="ImagePreprocess")
class ImagePreprocess(keras.layers.Layer):
    """uint8 images of any size → float32 `[batch, size, size, 3]` in [0, 1]."""

    def __init__(self, size=IMAGE_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, images):
        return resize_images(images, self.size)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, 3)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def to_rgb_on_white(image):
    """A decoded image `[H, W, C]` with C in 1..4 → uint8 RGB; transparency composited on white."""
    image = tf.cast(image, tf.float32)
    channels = tf.shape(image)[-1]

    def grey():
        return tf.image.grayscale_to_rgb(image[..., :1])

    def grey_alpha():
        alpha = image[..., 1:2] / 255.0
        return tf.image.grayscale_to_rgb(image[..., :1] * alpha + 255.0 * (1.0 - alpha))

    def rgb():
        return image[..., :3]

    def rgba():
        alpha = image[..., 3:4] / 255.0
        return image[..., :3] * alpha + 255.0 * (1.0 - alpha)

    rgb_image = tf.switch_case(channels - 1, [grey, grey_alpha, rgb, rgba])
    return tf.cast(tf.clip_by_value(tf.round(rgb_image), 0.0, 255.0), tf.uint8)


#: Most pixels an encoded image may declare before `caption_bytes` decodes it (its header is read
#: first): 20 megapixels decode to at most 80 MB; the model sees 64x64 anyway.
MAX_SIGNATURE_PIXELS = 20_000_000
#: Most images one call of a captioning signature takes (its work and memory stay bounded).
MAX_SIGNATURE_BATCH = 256


def _header_integer(data, start, length, big_endian):
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8), tf.int64)
    weights = tf.constant([256 ** i for i in (range(length - 1, -1, -1) if big_endian else range(length))],
                          tf.int64)
    return tf.reduce_sum(raw * weights)


def declared_pixels(data):
    """Width × height an encoded PNG, GIF, BMP or JPEG file declares in its header, without
    decoding it (0 for a file too short or of another format: the decoder then says what is wrong)."""
    length = tf.strings.length(data)

    def png():
        return _header_integer(data, 16, 4, True) * _header_integer(data, 20, 4, True)

    def gif():
        return _header_integer(data, 6, 2, False) * _header_integer(data, 8, 2, False)

    def bmp():
        height = _header_integer(data, 22, 4, False)
        height = tf.where(height >= 2 ** 31, 2 ** 32 - height, height)  # top-down BMPs store -height
        return _header_integer(data, 18, 4, False) * height

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0] * shape[1]

    def unknown():
        return tf.constant(0, tf.int64)

    long_enough = length >= 26

    def starts(prefix):
        return tf.equal(tf.strings.substr(data, 0, tf.minimum(length, len(prefix))), prefix)

    kind = tf.where(long_enough & starts(b"\x89PNG\r\n\x1a\n"), 0,
           tf.where(long_enough & starts(b"GIF8"), 1,
           tf.where(long_enough & starts(b"BM"), 2,
           tf.where(starts(b"\xff\xd8"), 3, 4))))
    return tf.switch_case(kind, [png, gif, bmp, jpeg, unknown])


def decode_image_bytes(image_bytes, size=IMAGE_SIZE):
    """Encoded image files `[batch]` → uint8 `[batch, size, size, 3]` (each resized on its own).

    An image whose header declares more than `MAX_SIGNATURE_PIXELS` pixels is
    refused before it is decoded (InvalidArgumentError naming the limit).
    """

    def one(data):
        pixels = declared_pixels(data)
        check = tf.debugging.assert_less_equal(
            pixels, tf.constant(MAX_SIGNATURE_PIXELS, tf.int64),
            message=f"caption_bytes: an image declares more than {MAX_SIGNATURE_PIXELS:,} pixels; "
                    f"shrink it first")
        with tf.control_dependencies([check]):
            data = tf.identity(data)
        image = tf.io.decode_image(data, channels=0, expand_animations=False)
        image = to_rgb_on_white(image)
        return tf.cast(tf.round(resize_images(image[None], size)[0] * 255.0), tf.uint8)

    return tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def conv_block(x, filters, name, pool=True, strides=1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_norm")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    if pool:
        x = keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return x


def build_model(train_captions, cell="gru", attention="additive", units=256, embedding_dim=128,
                filters=(32, 64, 128, 192), dropout=0.3, augment=True):
    """The CNN encoder + attention decoder, with the caption vocabulary of `train_captions`.

    Args:
        train_captions: Training captions (the vocabulary only).
        cell: "gru", "lstm" or "rnn": the zoo cell of the decoder.
        attention: "additive", "dot", "general" (attention over the 8x8 grid
            at every step, Show-Attend-and-Tell) or "none" (the image vector
            sets the initial state only, Show-and-Tell).
        units: Decoder state size.
        embedding_dim: Word embedding size.
        filters: Channels of the four convolution stages (64→32→16→8→8 pixels).
        dropout: Dropout on the grid features, word embeddings and the
            attentional vector.
        augment: Random shifts, zoom, rotation, brightness and contrast while training.

    Returns:
        A `keras.Model` with inputs `{"images": uint8 (batch, H, W, 3),
        "tokens": int32 (batch, time)}` and next-word logits. Layers are
        named (`grid`, `bridge_h`/`bridge_c`, `word_embedding`, `decoder`,
        `next_word`) so `Captioner` can step them.
    """
    from zoo import layers

    check_decoder_choice(cell, attention)
    if len(filters) != 4 or any(int(f) < 1 for f in filters):
        raise ValueError(f"filters must be four positive channel counts, received {filters!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), received {dropout!r}")
    vocabulary = build_vocabulary(train_captions)

    images = keras.Input(shape=(None, None, 3), dtype="uint8", name="images")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = ImagePreprocess(IMAGE_SIZE, name="preprocess")(images)
    if augment:
        x = keras.layers.RandomTranslation(0.06, 0.06, fill_mode="constant", fill_value=1.0,
                                           name="augment_shift")(x)
        x = keras.layers.RandomZoom(0.12, fill_mode="constant", fill_value=1.0, name="augment_zoom")(x)
        x = keras.layers.RandomRotation(0.03, fill_mode="constant", fill_value=1.0,
                                        name="augment_rotation")(x)
        x = keras.layers.RandomBrightness(0.15, value_range=(0.0, 1.0), name="augment_brightness")(x)
        x = keras.layers.RandomContrast(0.25, name="augment_contrast")(x)
    x = conv_block(x, filters[0], "stage1", pool=False, strides=2)      # 32 x 32
    x = conv_block(x, filters[1], "stage2")                              # 16 x 16
    x = conv_block(x, filters[2], "stage3")                              # 8 x 8
    x = conv_block(x, filters[3], "stage4", pool=False)                  # 8 x 8
    grid = keras.layers.Reshape((-1, filters[3]), name="grid")(x)
    pooled = keras.layers.GlobalAveragePooling1D(name="image_vector")(grid)
    memory = keras.layers.Dropout(dropout, name="grid_dropout")(grid)
    initial_state = [keras.layers.Dense(units, activation="tanh", name=f"bridge_{s}")(pooled)
                     for s in STATE_NAMES[cell]]

    embedded = keras.layers.Embedding(len(vocabulary), embedding_dim, name="word_embedding")(tokens)
    embedded = keras.layers.Dropout(dropout, name="word_dropout")(embedded)
    decoder = layers.AttentionDecoder(cell=cell, units=units,
                                      attention=None if attention == "none" else attention,
                                      dropout=dropout, name="decoder")
    outputs, _ = decoder(embedded, memory, initial_state=initial_state)
    outputs = keras.layers.Dropout(dropout, name="output_dropout")(outputs)
    logits = WordLogits(vocabulary, name="next_word")(outputs)
    return keras.Model({"images": images, "tokens": tokens}, logits, name=f"captioning_{cell}_{attention}")


def register_custom_objects():
    import zoo.layers  # noqa: F401

    return ImagePreprocess, WordLogits


def model_vocabulary(model):
    return list(model.get_layer("next_word").vocabulary)


def make_dataset(model, images, captions, batch_size=64, shuffle=False, seed=0):
    """`({"images", "tokens"}, targets, weights)` batches for `model`'s vocabulary (fine-tuning data too)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [n, height, width, 3], received {images.dtype} "
                         f"{images.shape}")
    captions = list(captions)
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions: expected one caption each")
    inputs, targets, weights = encode_captions(captions, model_vocabulary(model))
    data = tf.data.Dataset.from_tensor_slices(({"images": images, "tokens": inputs}, targets, weights))
    if shuffle:
        data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# Retrieval prior: the captions of the most similar training drawings
# --------------------------------------------------------------------------

#: Side of the images the retrieval memory compares (as the 1-NN baseline does).
RETRIEVAL_SIZE = 32
#: Scale of the int8 codes of the memory's unit vectors.
_CODE_SCALE = 127.0
#: Retrieval weights tried on validation; the best is kept (0 = the decoder alone).
RETRIEVAL_WEIGHTS = (0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0)


def retrieval_pixels(images):
    """float `[batch, 64, 64, 3]` in [0, 1] → unit vectors `[batch, 32 * 32 * 3]`.

    The images are shrunk to 32x32 by 2x2 block means, flattened, mean-centred
    and L2-normalised: the features of the 1-NN baseline (`pixel_features`).
    """
    small = tf.image.resize(images, [RETRIEVAL_SIZE, RETRIEVAL_SIZE], method="area")
    flat = tf.reshape(small, [-1, RETRIEVAL_SIZE * RETRIEVAL_SIZE * 3])
    flat = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
    return tf.math.divide_no_nan(flat, tf.norm(flat, axis=1, keepdims=True))


@keras.saving.register_keras_serializable(package="zoo.captioning", name="RetrievalMemory")
class RetrievalMemory(keras.layers.Layer):
    """The training drawings and captions a captioner's decoding consults (an identity on its input).

    Holds, as non-trainable weights: a projection of `retrieval_pixels` to
    `dims` dimensions (the top principal directions of the training drawings),
    each training drawing as an int8 unit vector in that space, its caption (an
    index into the caption table) and style, and the caption table as word ids
    (each caption followed by EOS, PAD after). `Captioner` re-ranks the beam's
    caption and the captions of the `candidates` most similar drawings by
    `log p(caption | image) + weight * similarity` (`weight` chosen on
    validation). It sits in the model's graph between the raw images and
    `preprocess` so that `model.keras` carries it; training does not touch it.
    """

    def __init__(self, entries, captions, caption_length, dims, weight=0.0, candidates=5, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.entries, self.captions, self.caption_length = int(entries), int(captions), int(caption_length)
        self.dims, self.weight, self.candidates = int(dims), float(weight), int(candidates)
        features = RETRIEVAL_SIZE * RETRIEVAL_SIZE * 3
        self.projection = self.add_weight(shape=(features, self.dims), dtype="float16", initializer="zeros",
                                          trainable=False, name="projection")
        self.codes = self.add_weight(shape=(self.entries, self.dims), dtype="int8", initializer="zeros",
                                     trainable=False, name="codes")
        self.entry_caption = self.add_weight(shape=(self.entries,), dtype="int32", initializer="zeros",
                                             trainable=False, name="entry_caption")
        self.entry_style = self.add_weight(shape=(self.entries,), dtype="int32", initializer="zeros",
                                           trainable=False, name="entry_style")
        self.caption_ids = self.add_weight(shape=(self.captions, self.caption_length), dtype="int32",
                                           initializer="zeros", trainable=False, name="caption_ids")

    def call(self, images):
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "entries": self.entries, "captions": self.captions,
                "caption_length": self.caption_length, "dims": self.dims, "weight": self.weight,
                "candidates": self.candidates}

    def caption_similarities(self, images, excluded_styles=None):
        """float `[batch, 64, 64, 3]` → `[batch, captions]`: each caption's best cosine over its drawings.

        `excluded_styles` (int32 `[batch]`, -1 = none) leaves out the drawings of
        one style per image, so that validation drawings of a training style are
        compared, as test drawings are, only with the other styles' drawings.
        """
        vectors = tf.matmul(retrieval_pixels(images), tf.cast(self.projection, tf.float32))
        vectors = tf.math.divide_no_nan(vectors, tf.norm(vectors, axis=1, keepdims=True))
        similarity = tf.matmul(vectors, tf.cast(self.codes, tf.float32), transpose_b=True) / _CODE_SCALE
        if excluded_styles is not None:
            excluded_styles = tf.cast(excluded_styles, tf.int32)
            same = tf.equal(excluded_styles[:, None], tf.cast(self.entry_style, tf.int32)[None, :])
            similarity = tf.where(same, -2.0, similarity)
        best = tf.math.unsorted_segment_max(tf.transpose(similarity), tf.cast(self.entry_caption, tf.int32),
                                            self.captions)
        return tf.maximum(tf.transpose(best), -1.0)  # a caption with no drawing left: the lowest cosine


def principal_directions(vectors, dims):
    """The `dims` leading principal directions of the rows of `vectors` (uncentred: x ≈ P Pᵀ x), as
    the columns of a [features, dims] float32 matrix.

    With fewer rows than features the eigenvectors of the rows' gram matrix give the same
    directions (uᵢ → Vᵀuᵢ / √λᵢ) at a fraction of the cost; directions beyond the rows' rank are
    zero (they would carry nothing of the training drawings either way). Asked for every direction
    (`dims` ≥ features), it returns a full orthonormal basis, so that cosines are those of the pixels.
    """
    vectors = np.asarray(vectors, np.float64)
    rows, features = vectors.shape
    if rows >= features or dims >= features:
        values, directions = np.linalg.eigh(vectors.T @ vectors)
        return directions[:, np.argsort(values)[::-1][:dims]].astype(np.float32)
    values, coefficients = np.linalg.eigh(vectors @ vectors.T)
    order = np.argsort(values)[::-1][:dims]
    values, coefficients = values[order], coefficients[:, order]
    kept = np.flatnonzero(values > values.max(initial=0.0) * 1e-10)
    directions = np.zeros((features, dims), np.float32)
    directions[:, kept] = vectors.T @ coefficients[:, kept] / np.sqrt(values[kept])
    return directions


def build_retrieval_memory(model, split, dims=128):
    """The arrays of a `RetrievalMemory` for `split` (the training drawings) in `model`'s vocabulary.

    Returns `{"projection", "codes", "entry_caption", "entry_style", "caption_ids", "captions"}`.
    """
    from zoo.data import emoji

    images = np.asarray(split["images"])
    vectors = np.concatenate([retrieval_pixels(resize_images(images[i : i + 512])).numpy()
                              for i in range(0, len(images), 512)])
    dims = min(int(dims), vectors.shape[1])
    projection = principal_directions(vectors, dims).astype(np.float16)
    projected = vectors @ projection.astype(np.float32)
    projected /= np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)
    captions = sorted(set(split["captions"]))
    index = {caption: i for i, caption in enumerate(captions)}
    _, targets, _ = encode_captions(captions, model_vocabulary(model))
    return {
        "projection": projection,
        "codes": np.round(projected * _CODE_SCALE).astype(np.int8),
        "entry_caption": np.array([index[c] for c in split["captions"]], np.int32),
        "entry_style": np.array([emoji.STYLES.index(s) for s in split["styles"]], np.int32),
        "caption_ids": targets.astype(np.int32),
        "captions": captions,
    }


def with_retrieval_memory(model, memory, weight=0.0, candidates=5):
    """A copy of `model` (same weights) with a `RetrievalMemory` holding `memory` between images and preprocess."""
    import copy

    held = RetrievalMemory(entries=len(memory["codes"]), captions=len(memory["caption_ids"]),
                           caption_length=memory["caption_ids"].shape[1], dims=memory["codes"].shape[1],
                           weight=weight, candidates=candidates, name="retrieval_memory")
    config = copy.deepcopy(model.get_config())
    layers = [layer for layer in config["layers"] if layer["name"] != "retrieval_memory"]
    position = next(i for i, layer in enumerate(layers) if layer["name"] == "preprocess")
    preprocess = layers[position]
    image_input = copy.deepcopy(preprocess["inbound_nodes"][0]["args"][0])  # the raw images tensor
    if image_input["config"]["keras_history"][0] == "retrieval_memory":  # replacing an older memory
        image_input["config"]["keras_history"] = ["images", 0, 0]
    rewired = copy.deepcopy(image_input)
    rewired["config"]["keras_history"] = ["retrieval_memory", 0, 0]
    preprocess["inbound_nodes"] = [{"args": [rewired], "kwargs": {}}]
    layers.insert(position, {**keras.saving.serialize_keras_object(held), "name": "retrieval_memory",
                             "inbound_nodes": [{"args": [image_input], "kwargs": {}}]})
    config["layers"] = layers
    copied = keras.Model.from_config(config)
    for layer in model.layers:
        if layer.name != "retrieval_memory" and layer.weights:
            copied.get_layer(layer.name).set_weights(layer.get_weights())
    held = copied.get_layer("retrieval_memory")
    for name in ("projection", "codes", "entry_caption", "entry_style", "caption_ids"):
        getattr(held, name).assign(memory[name])
    return copied


def retrieval_memory(model):
    """The model's `RetrievalMemory` layer, or None."""
    names = {layer.name for layer in model.layers}
    return model.get_layer("retrieval_memory") if "retrieval_memory" in names else None


def network_parameters(model):
    """The model's weights (trainable and BatchNorm statistics) less its retrieval memory's arrays."""
    memory = retrieval_memory(model)
    return int(model.count_params() - (memory.count_params() if memory is not None else 0))


def set_retrieval_weight(model, weight):
    """`model` with its memory's weight set (in place: the weight is a config value)."""
    retrieval_memory(model).weight = float(weight)
    return model


# --------------------------------------------------------------------------
# Decoding inside the graph
# --------------------------------------------------------------------------


class Captioner(tf.Module):
    """Caption images with a model built by `build_model`, entirely in TensorFlow."""

    def __init__(self, model, beam_width=DEFAULT_BEAM_WIDTH, length_penalty=0.0):
        super().__init__(name="captioner")
        decoder = model.get_layer("decoder")
        self._cell = decoder.get_config()["cell"]
        encoder = keras.Model(
            model.input["images"],
            [model.get_layer("grid").output]
            + [model.get_layer(f"bridge_{s}").output for s in STATE_NAMES[self._cell]])
        hold_model(self, model, encoder=encoder)  # every weight saved once, restorable by TF1 loaders too
        self.beam_width = int(beam_width)
        self.length_penalty = float(length_penalty)
        memory = retrieval_memory(model)
        object.__setattr__(self, "memory", memory)  # its variables are among restorable_variables
        if memory is not None:
            vocabulary = np.array(model_vocabulary(model), dtype=object)
            ids = np.asarray(memory.caption_ids.numpy())
            words = np.where(np.isin(ids, (PAD, EOS)), "", vocabulary[ids])
            captions = join_caption(tf.constant(words.astype(str))).numpy()
            self.caption_words = tf.constant(words.astype(str))
            self.caption_strings = tf.constant(captions)
            self.caption_index = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(self.caption_strings, tf.range(len(captions), dtype=tf.int32)),
                default_value=-1)

    def _decode(self, images, method, beam_width, max_length):
        """`_decode_batch`, or for an empty batch a defined, empty result."""
        images = tf.convert_to_tensor(images)
        shape = tf.shape(images)
        checks = [
            tf.debugging.assert_less_equal(shape[0], MAX_SIGNATURE_BATCH,
                                           message=f"at most {MAX_SIGNATURE_BATCH} images per call"),
            tf.debugging.assert_less_equal(tf.cast(shape[1], tf.int64) * tf.cast(shape[2], tf.int64),
                                           tf.constant(MAX_SIGNATURE_PIXELS, tf.int64),
                                           message=f"images of at most {MAX_SIGNATURE_PIXELS:,} pixels"),
        ]
        with tf.control_dependencies(checks):
            images = tf.identity(images)

        def empty():
            return {"captions": tf.zeros([0], tf.string), "scores": tf.zeros([0], tf.float32),
                    "attention": tf.zeros([0, 0, 0], tf.float32), "tokens": tf.zeros([0, 0], tf.string)}

        return tf.cond(tf.shape(images)[0] > 0,
                       lambda: self._decode_batch(images, method, beam_width, max_length), empty)

    def _decoder_captions(self, encoded, method, beam_width, max_length):
        """The decoder's own captions of encoded images: `{"captions", "scores", "attention", "tokens"}`."""
        result = decode_words(self.model, encoded[0], None, list(encoded[1:]), embedding="word_embedding",
                              method=method, beam_width=beam_width, max_length=max_length,
                              length_penalty=self.length_penalty, forbidden_tokens=(PAD, BOS, UNK))
        return {"captions": join_caption(result["words"]), "scores": result["scores"],
                "attention": result["attention"], "tokens": result["words"]}

    def _decode_batch(self, images, method, beam_width, max_length):
        images = tf.convert_to_tensor(images)
        encoded = self.encoder(images, training=False)
        decoded = self._decoder_captions(encoded, method, beam_width, max_length)
        if self.memory is None or self.memory.weight <= 0 or self.memory.candidates < 1:
            return decoded
        candidates = self._candidates(images, encoded, decoded, excluded_styles=None)
        total = candidates["log_probs"] + self.memory.weight * candidates["similarities"]
        chosen = tf.argmax(total, axis=1, output_type=tf.int32)  # ties: the decoder's own caption

        def pick(values):
            return tf.gather(values, chosen, axis=1, batch_dims=1)

        return {"captions": pick(candidates["captions"]), "scores": pick(total),
                "attention": pick(candidates["attention"]), "tokens": pick(candidates["tokens"])}

    def _candidates(self, images, encoded, decoded, excluded_styles):
        """The decoder's caption and the captions of the most similar training drawings, each scored.

        Returns `{"captions" [batch, 1 + k], "log_probs", "similarities", "tokens" [batch, 1 + k, steps],
        "attention" [batch, 1 + k, steps, cells]}`, the decoder's own caption first. `log_probs` is
        `log p(caption | image)` under the model (for the decoder's caption: its decoding score);
        `similarities` the caption's best cosine over the memory's drawings, or for a caption the
        memory does not hold, the lowest similarity among the retrieved candidates.
        """
        memory = self.memory
        k = min(memory.candidates, memory.captions)
        batch = tf.shape(images)[0]
        similarities = memory.caption_similarities(resize_images(images), excluded_styles)
        top_similarities, top = tf.math.top_k(similarities, k)
        targets = tf.reshape(tf.gather(tf.cast(memory.caption_ids, tf.int32), top), [-1, memory.caption_length])
        inputs = tf.concat([tf.fill([tf.shape(targets)[0], 1], BOS), targets[:, :-1]], axis=1)
        grid = tf.repeat(encoded[0], k, axis=0)
        states = [tf.repeat(state, k, axis=0) for state in encoded[1:]]
        decoder = self.model.get_layer("decoder")
        embed = self.model.get_layer("word_embedding")
        head = word_head(self.model)
        context = decoder.prepare(grid, None)
        state = decoder.initial_step_state(states, context)
        rows, cells = tf.shape(targets)[0], tf.shape(grid)[1]
        inputs_by_step, targets_by_step = tf.transpose(inputs), tf.transpose(targets)

        def teacher_forced_step(t, state, log_probs, attention):
            output, state, weights = decoder.step(embed(inputs_by_step[t]), state, context, training=False)
            step = tf.nn.log_softmax(tf.cast(head(output), tf.float32), axis=-1)
            chosen = tf.gather(step, targets_by_step[t], axis=1, batch_dims=1)
            log_probs += tf.where(tf.equal(targets_by_step[t], PAD), 0.0, chosen)
            weights = weights if weights is not None else tf.zeros([rows, cells], tf.float32)
            return t + 1, state, log_probs, attention.write(t, weights)

        _, _, log_probs, attention = tf.while_loop(  # one step in the graph, not one per word
            lambda t, *_: t < memory.caption_length, teacher_forced_step,
            (tf.constant(0), state, tf.zeros([rows], tf.float32),
             tf.TensorArray(tf.float32, size=memory.caption_length)))
        retrieved_attention = tf.reshape(tf.transpose(attention.stack(), [1, 0, 2]),
                                         [batch, k, memory.caption_length, cells])
        retrieved_log_probs = tf.reshape(log_probs, [batch, k])

        own_index = self.caption_index.lookup(decoded["captions"])
        own_similarity = tf.where(
            own_index >= 0,
            tf.gather(similarities, tf.maximum(own_index, 0), axis=1, batch_dims=1),
            tf.reduce_min(top_similarities, axis=1))
        steps = tf.maximum(tf.shape(decoded["tokens"])[1], memory.caption_length)

        def padded(values, length_axis):
            paddings = [[0, 0]] * len(values.shape)
            paddings[length_axis] = [0, steps - tf.shape(values)[length_axis]]
            return tf.pad(values, paddings)

        return {
            "captions": tf.concat([decoded["captions"][:, None], tf.gather(self.caption_strings, top)], axis=1),
            "log_probs": tf.concat([decoded["scores"][:, None], retrieved_log_probs], axis=1),
            "similarities": tf.concat([own_similarity[:, None], top_similarities], axis=1),
            "tokens": tf.concat([padded(decoded["tokens"], 1)[:, None],
                                 padded(tf.gather(self.caption_words, top), 2)], axis=1),
            "attention": tf.concat([padded(decoded["attention"], 1)[:, None],
                                    padded(retrieved_attention, 2)], axis=1),
        }

    @tf.function(autograph=False)
    def scored_candidates(self, images, excluded_styles, beam_width):
        """`_candidates` after beam search (for choosing the retrieval weight; not a signature)."""
        encoded = self.encoder(images, training=False)
        decoded = self._decoder_captions(encoded, "beam", beam_width, DEFAULT_MAX_LENGTH)
        found = self._candidates(images, encoded, decoded, excluded_styles)
        return {name: found[name] for name in ("captions", "log_probs", "similarities")}

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(self, images):
        result = self._decode(images, "beam", self.beam_width, DEFAULT_MAX_LENGTH)
        return {"captions": result["captions"], "scores": result["scores"]}

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8, name="images"),
        tf.TensorSpec([], tf.int32, name="beam_width"),
        tf.TensorSpec([], tf.int32, name="max_length"),
    ])
    def caption(self, images, beam_width, max_length):
        beam_width, max_length = checked_bounds(beam_width, max_length, MAX_BEAM_WIDTH, MAX_CAPTION_TOKENS)
        return self._decode(images, "beam", beam_width, max_length)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def caption_bytes(self, image_bytes):
        return self.serve(decode_image_bytes(image_bytes))

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8, name="images"),
        tf.TensorSpec([], tf.int32, name="max_length"),
    ])
    def caption_greedy(self, images, max_length):
        result = self._decode(images, "greedy", 1, max_length)
        return {"captions": result["captions"], "scores": result["scores"]}


def choose_retrieval_weight(model, validation, weights=RETRIEVAL_WEIGHTS, beam_width=DEFAULT_BEAM_WIDTH,
                            batch_size=64):
    """The retrieval weight with the best validation exact match (ties: the smaller weight).

    Each validation drawing is compared only with the training drawings of the
    other styles, as a drawing of the unseen test style is. Returns
    `{"weight", "validation_exact_match": {weight: score}, "rule"}`.
    """
    from zoo.data import emoji

    captioner = Captioner(model, beam_width=beam_width)
    found = {"captions": [], "log_probs": [], "similarities": []}
    images = np.asarray(validation["images"])
    excluded = np.array([emoji.STYLES.index(style) for style in validation["styles"]], np.int32)
    for start in range(0, len(images), batch_size):
        batch = captioner.scored_candidates(tf.constant(images[start : start + batch_size]),
                                            tf.constant(excluded[start : start + batch_size]),
                                            tf.constant(beam_width, tf.int32))
        for name in found:
            found[name].append(batch[name].numpy())
    captions = np.array([[c.decode("utf-8") for c in row] for row in np.concatenate(found["captions"])])
    log_probs, similarities = np.concatenate(found["log_probs"]), np.concatenate(found["similarities"])
    references = np.array(validation["captions"], dtype=str)
    scores = {}
    for weight in weights:
        chosen = np.argmax(log_probs + weight * similarities, axis=1)
        scores[float(weight)] = round(float(np.mean(captions[np.arange(len(chosen)), chosen] == references)), 6)
    best = max(scores, key=lambda weight: (scores[weight], -weight))
    return {"weight": best, "validation_exact_match": {str(k): v for k, v in scores.items()},
            "rule": "highest validation exact match of beam search re-ranked by log p + weight * similarity; "
                    "each validation drawing compared only with training drawings of the other styles"}


def write_serving(model, path, beam_width=DEFAULT_BEAM_WIDTH):
    """Save the captioning graph: `serving_default`, `caption`, `caption_bytes` and `caption_greedy`."""
    captioner = Captioner(fresh_copy(model), beam_width=beam_width)
    tf.saved_model.save(
        captioner, str(path),
        signatures={"serving_default": captioner.serve.get_concrete_function(),
                    "caption": captioner.caption.get_concrete_function(),
                    "caption_bytes": captioner.caption_bytes.get_concrete_function(),
                    "caption_greedy": captioner.caption_greedy.get_concrete_function()},
    )


def serving_examples():
    """Small valid inputs for every signature of the serving SavedModel, as plain Python values.

    Encoded images are given as "base64:<text>" strings (JSON carries no bytes).
    """
    import base64

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    encoded = ["base64:" + base64.b64encode(tf.io.encode_png(tf.constant(image)).numpy()).decode("ascii")
               for image in (images[0], images[1][:40, :50])]
    return {
        "serving_default": {"images": images.tolist()},
        "caption": {"images": images.tolist(), "beam_width": 2, "max_length": 8},
        "caption_bytes": {"image_bytes": encoded},
        "caption_greedy": {"images": images.tolist(), "max_length": 8},
    }


# --------------------------------------------------------------------------
# Evaluation, throughput, the card
# --------------------------------------------------------------------------


def caption_images(source, images, beam_width=1, batch_size=128, max_length=DEFAULT_MAX_LENGTH):
    """Captions of many images (greedy for `beam_width` 1)."""
    captioner = source if isinstance(source, Captioner) else Captioner(source)
    out = []
    for start in range(0, len(images), batch_size):
        batch = tf.constant(images[start : start + batch_size])
        if beam_width == 1:
            result = captioner.caption_greedy(batch, tf.constant(max_length))
        else:
            result = captioner.caption(batch, tf.constant(beam_width), tf.constant(max_length))
        out.extend(c.decode("utf-8") for c in result["captions"].numpy())
    return out


def groups_of(split):
    from zoo.data import emoji

    return [emoji.caption_group(c, caption) for c, caption in zip(split["codepoints"], split["captions"])]


def evaluate(source, split, beam_widths=(1, DEFAULT_BEAM_WIDTH), with_groups=True):
    """Exact match, CIDEr-D and BLEU-4 (overall and per group) for greedy and beam decoding."""
    from zoo.tasks import captioning_metrics

    captioner = source if isinstance(source, Captioner) else Captioner(source)
    scores = {}
    for width in beam_widths:
        hypotheses = caption_images(captioner, split["images"], beam_width=width)
        measured = captioning_metrics.caption_scores(hypotheses, list(split["captions"]),
                                                     groups_of(split) if with_groups else None)
        scores["greedy" if width == 1 else f"beam{width}"] = _rounded(measured)
    return scores


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 6)
    return value


def measure(model, splits):
    """The card's deterministic model metrics (what `zoo verify` re-measures); empty splits are left out."""
    captioner = Captioner(model)
    metrics = {split: evaluate(captioner, splits[split]) for split in ("validation", "test")
               if len(splits[split]["captions"])}
    if len(splits["heldout_emoji"]["captions"]):
        heldout = evaluate(captioner, splits["heldout_emoji"], with_groups=False)
        for scores in heldout.values():  # exact words can be new: BLEU and CIDEr only
            scores["overall"].pop("exact_match", None)
        metrics["heldout_emoji"] = heldout
    return metrics


#: The leave-one-style-out floors: the model above 1-NN on pixels in each of these (group, metric).
STYLE_FLOORS = (("overall", "exact_match"), ("overall", "cider_d"), ("base", "exact_match"),
                ("flag", "exact_match"))


def rotation_scores(model, splits, beam_width=DEFAULT_BEAM_WIDTH):
    """One leave-one-style-out rotation: the model (with and without its retrieval prior) beside 1-NN.

    `model` was trained on `splits["train"]` (three styles) with its memory and retrieval weight set;
    scored on `splits["test"]` (the fourth style) per group, and on the emoji never seen in any style
    (`heldout_emoji`, CIDEr-D and BLEU only). Returns a JSON-ready dict with the floors checked.
    """
    from zoo.tasks import captioning_metrics as cm

    label = f"beam{beam_width}"
    references = {name: list(splits[name]["captions"]) for name in ("test", "heldout_emoji")}
    groups = groups_of(splits["test"])
    out = {"test_style": sorted(set(splits["test"]["styles"])),
           "training_styles": sorted(set(splits["train"]["styles"]))}
    memory = retrieval_memory(model)
    weight = memory.weight if memory is not None else 0.0
    systems = {"model": weight, "decoder_alone": 0.0} if weight > 0 else {"model": 0.0}
    for system, system_weight in systems.items():
        if memory is not None:
            set_retrieval_weight(model, system_weight)
        captioner = Captioner(model, beam_width=beam_width)
        out[system] = {
            "test": _rounded(cm.caption_scores(caption_images(captioner, splits["test"]["images"], beam_width),
                                               references["test"], groups)),
            "heldout_emoji": _rounded(cm.caption_scores(
                caption_images(captioner, splits["heldout_emoji"]["images"], beam_width),
                references["heldout_emoji"])["overall"]),
        }
        out[system]["heldout_emoji"].pop("exact_match", None)
    if memory is not None:
        set_retrieval_weight(model, weight)
    train = splits["train"]
    out["nearest_neighbour_pixels"] = {
        "test": _rounded(cm.caption_scores(cm.nearest_neighbour_pixels(
            train["images"], list(train["captions"]), splits["test"]["images"]), references["test"], groups)),
        "heldout_emoji": _rounded(cm.caption_scores(cm.nearest_neighbour_pixels(
            train["images"], list(train["captions"]), splits["heldout_emoji"]["images"]),
            references["heldout_emoji"])["overall"]),
    }
    out["nearest_neighbour_pixels"]["heldout_emoji"].pop("exact_match", None)
    out["decoding"] = f"{label}, retrieval weight {weight}"

    out.update(style_floors(out["model"]["test"], out["nearest_neighbour_pixels"]["test"]))
    return out


def style_floors(model_scores, neighbour_scores):
    """`STYLE_FLOORS` checked on two `caption_scores` results of one held-out style.

    Returns `{"floors": {"group metric": {"model", "nearest_neighbour", "above"}},
    "floors_not_applicable": [...], "meets_floors"}`; a group the style does not draw
    (Fluent has no flags) has no floor.
    """
    def value(scores, group, metric):
        return (scores["overall"] if group == "overall" else scores["groups"].get(group, {})).get(metric)

    floors, not_applicable = {}, []
    for group, metric in STYLE_FLOORS:
        ours, theirs = value(model_scores, group, metric), value(neighbour_scores, group, metric)
        if ours is None:
            not_applicable.append(f"{group} {metric}: the held-out style draws no {group} emoji")
            continue
        floors[f"{group} {metric}"] = {"model": ours, "nearest_neighbour": theirs, "above": ours > theirs}
    return {"floors": floors, "floors_not_applicable": not_applicable,
            "meets_floors": all(row["above"] for row in floors.values())}


def rotations_summary(rotations):
    """Mean over the rotations of every test score (overall and per group) and of the never-seen emoji."""
    systems = [name for name in ("model", "decoder_alone", "nearest_neighbour_pixels")
               if all(name in rotation for rotation in rotations.values())]
    summary = {}
    for system in systems:
        tests = [rotation[system]["test"] for rotation in rotations.values()]
        heldout = [rotation[system]["heldout_emoji"] for rotation in rotations.values()]
        mean = {"overall": {m: float(np.mean([t["overall"][m] for t in tests])) for m in ("exact_match", "cider_d")},
                "groups": {g: {m: float(np.mean([t["groups"][g][m] for t in tests if g in t["groups"]]))
                               for m in ("exact_match", "cider_d")}
                           for g in sorted({g for t in tests for g in t["groups"]})},
                "heldout_emoji_cider_d": float(np.mean([h["cider_d"] for h in heldout]))}
        summary[system] = _rounded(mean)
    summary["rotations_meeting_floors"] = sum(bool(r["meets_floors"]) for r in rotations.values())
    summary["rotations"] = len(rotations)
    return summary


def baselines(splits):
    """1-nearest-neighbour on pixels and the best constant caption, scored like the model."""
    from zoo.tasks import captioning_metrics as cm

    train = splits["train"]
    out = {}
    neighbour = {}
    for split in ("validation", "test", "heldout_emoji"):
        if not len(splits[split]["captions"]):
            continue
        hypotheses = cm.nearest_neighbour_pixels(train["images"], list(train["captions"]),
                                                 splits[split]["images"])
        scores = cm.caption_scores(hypotheses, list(splits[split]["captions"]),
                                   groups_of(splits[split]) if split != "heldout_emoji" else None)
        neighbour[split] = _rounded(scores)
    out["nearest_neighbour_pixels"] = {
        "description": "caption of the most similar training image: 32x32 pixels, per-image "
                       "mean-centred and L2-normalised, cosine similarity", **neighbour}
    constant, chosen_score = cm.best_constant_caption(list(train["captions"]),
                                                      list(splits["validation"]["captions"]))
    out["best_constant_caption"] = {
        "caption": constant, "chosen_on": "validation CIDEr-D", "validation_cider_d": round(chosen_score, 6)}
    if len(splits["test"]["captions"]):
        out["best_constant_caption"]["test"] = _rounded(cm.caption_scores(
            [constant] * len(splits["test"]["captions"]), list(splits["test"]["captions"]),
            groups_of(splits["test"])))
    return out


def load_card_splits(card_dataset):
    from zoo.data import emoji

    splits = emoji.load_captioning_splits(test_style=card_dataset["test_style"],
                                          seed=card_dataset["split_seed"])
    limit = card_dataset.get("max_examples_per_split")
    if limit:
        splits = {name: {key: value[:limit] for key, value in split.items()} for name, split in splits.items()}
    return splits


def remeasure(model, card):
    return measure(model, load_card_splits(card["dataset"]))


def measure_throughput(serving, images, batch_sizes=(1, 64), repeats=3):
    """Images per second of the SavedModel, greedy and beam, best of `repeats` timed calls."""
    results = {}
    for batch in batch_sizes:
        chosen = tf.constant(np.asarray([images[i % len(images)] for i in range(batch)]))
        calls = {
            "greedy": lambda: serving.signatures["caption_greedy"](
                images=chosen, max_length=tf.constant(DEFAULT_MAX_LENGTH)),
            f"beam{DEFAULT_BEAM_WIDTH}": lambda: serving.signatures["serving_default"](images=chosen),
        }
        for label, call in calls.items():
            call()
            best = float("inf")
            for _ in range(repeats):
                started = time.perf_counter()
                call()["captions"].numpy()
                best = min(best, time.perf_counter() - started)
            results[f"batch_{batch}_{label}_images_per_second"] = round(batch / best, 2)
    results["method"] = (f"SavedModel signatures caption_greedy / serving_default (beam "
                         f"{DEFAULT_BEAM_WIDTH}), test images, best of {repeats} timed calls after a warm-up")
    return results


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

#: Largest image file (pixels) the command line reads; bigger ones are refused with a message.
MAX_CLI_PIXELS = 100_000_000


#: Pillow's modes for 16-bit (and 32-bit integer) greyscale: `convert` would clip them at 255.
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _eight_bit(image):
    """16-bit greyscale as 8 bits the way the serving signature's decoder does it (the high byte).

    Pillow already reads 16-bit RGB(A) PNGs as 8-bit high bytes; its 16-bit
    greyscale modes would otherwise be clipped to 255 (white) by `convert`.
    """
    from PIL import Image

    if image.mode not in _WIDE_GREY_MODES:
        return image
    values = np.clip(np.asarray(image, np.int64), 0, 65535) >> 8
    return Image.fromarray(values.astype(np.uint8), "L")


def read_image_file(path):
    """An image file → uint8 RGB `[H, W, 3]` (greyscale, palette and RGBA converted; alpha on white)."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    Image.MAX_IMAGE_PIXELS = MAX_CLI_PIXELS
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            if width == 0 or height == 0:
                raise ValueError(f"{path}: the image is empty ({width}x{height} pixels)")
            image = _eight_bit(opened)
            image.draft("RGB", (4 * IMAGE_SIZE, 4 * IMAGE_SIZE))  # JPEG: decode at a reduced size
            if max(image.size) > 4 * IMAGE_SIZE:
                image.thumbnail((4 * IMAGE_SIZE, 4 * IMAGE_SIZE))  # the model sees 64x64 anyway
            rgba = image.convert("RGBA")
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file PIL can read (expected PNG, JPEG, GIF, BMP, ...)") from None
    except Image.DecompressionBombError:
        raise ValueError(f"{path}: more than {MAX_CLI_PIXELS:,} pixels; shrink it first") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot read the image ({error})") from None
    pixels = np.asarray(rgba, np.float32)
    alpha = pixels[..., 3:4] / 255.0
    return np.round(pixels[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def attention_overlay_png(image, result, path, title=None):
    """The image with each word's attention over the 8x8 grid, one panel per word."""
    from zoo.figures import new_figure, write_png

    words = [w for w in result["tokens"] if w] or ["(empty)"]
    attention = result["attention"]
    side = int(round(np.sqrt(attention.shape[-1]))) if attention.size else 1
    small = np.asarray(tf.image.resize(image[None].astype(np.float32), [IMAGE_SIZE, IMAGE_SIZE])[0]) / 255.0
    columns = min(len(words) + 1, 6)
    rows = int(np.ceil((len(words) + 1) / columns))
    fig = new_figure(2.0 * columns, 2.2 * rows)
    ax = fig.add_subplot(rows, columns, 1)
    ax.imshow(np.clip(small, 0, 1))
    ax.set_title(title or result["caption"], fontsize=7)
    ax.axis("off")
    for i, word in enumerate(words):
        ax = fig.add_subplot(rows, columns, i + 2)
        ax.imshow(np.clip(small, 0, 1))
        if i < len(attention) and attention.size:
            weights = attention[i].reshape(side, side)
            ax.imshow(weights, cmap="magma", alpha=0.6, extent=(0, IMAGE_SIZE, IMAGE_SIZE, 0),
                      interpolation="bilinear", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
        ax.set_title(word, fontsize=9)
        ax.axis("off")
    return write_png(fig, path)


def caption(source, images, beam_width=DEFAULT_BEAM_WIDTH, max_length=DEFAULT_MAX_LENGTH):
    """Caption uint8 RGB images (a list of `[H, W, 3]` arrays of any size); returns result dicts."""
    beam_width = check_whole_number("beam_width", beam_width, 1, MAX_BEAM_WIDTH)
    max_length = check_whole_number("max_length", max_length, 1, MAX_CAPTION_TOKENS)
    images = list(images)
    if len(images) > MAX_SIGNATURE_BATCH:  # the signatures take at most that many per call
        return [result for start in range(0, len(images), MAX_SIGNATURE_BATCH)
                for result in caption(source, images[start : start + MAX_SIGNATURE_BATCH], beam_width, max_length)]
    batch = np.stack([np.asarray(tf.cast(tf.round(resize_images(np.asarray(img)[None])[0] * 255.0),
                                         tf.uint8)) for img in images])
    arguments = (tf.constant(batch), tf.constant(beam_width, tf.int32), tf.constant(max_length, tf.int32))
    if hasattr(source, "signatures"):
        out = source.signatures["caption"](images=arguments[0], beam_width=arguments[1],
                                           max_length=arguments[2])
    else:
        captioner = source if isinstance(source, Captioner) else Captioner(source)
        out = captioner.caption(*arguments)
    results = []
    for i in range(len(images)):
        tokens = [t.decode("utf-8") for t in out["tokens"][i].numpy()]
        count = sum(1 for t in tokens if t)
        results.append({"caption": out["captions"][i].numpy().decode("utf-8"),
                        "score": float(out["scores"][i]), "tokens": tokens[:count],
                        "attention": out["attention"][i].numpy()[:count]})
    return results


#: Images `zoo caption` decodes and captions at once (memory stays bounded; captions appear as they are ready).
CLI_BATCH_SIZE = 16


def caption_cli(name, paths, beam_width=DEFAULT_BEAM_WIDTH, attention_map=None, batch_size=CLI_BATCH_SIZE):
    """`zoo caption NAME image.png ... [--beam N] [--attention-map out.png]`: one caption per line.

    Every file is checked first (a bad one stops the command before any
    output); then the images are read and captioned `batch_size` at a time.
    """
    import sys
    from pathlib import Path

    from zoo import hub

    if attention_map and Path(attention_map).suffix.lower() != ".png":
        raise ValueError(f"the attention map must be a .png file, received {str(attention_map)!r}")
    for path in paths:  # cheap checks of every file before any output (no decoding kept)
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such file")
    serving = hub.load_serving(name)
    written = []
    for start in range(0, len(paths), batch_size):
        batch = list(paths[start : start + batch_size])
        images = [read_image_file(p) for p in batch]
        results = caption(serving, images, beam_width=beam_width)
        for path, result in zip(batch, results):
            print(f"{result['caption']}\t{path}", flush=True)
        if attention_map:
            target = Path(attention_map)
            for offset, (image, result) in enumerate(zip(images, results)):
                number = start + offset + 1
                out = target if len(paths) == 1 else target.with_name(f"{target.stem}-{number}{target.suffix}")
                written.append(attention_overlay_png(image, result, out))
    if written:
        print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
