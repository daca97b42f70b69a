"""Export beyond TensorFlow: LiteRT (`.tflite`) and ONNX files for the hub's models.

The hub's serving SavedModels take raw inputs (sentences, key names) and keep
their string handling and their decoding loops inside the graph. Neither
LiteRT nor ONNX runs those parts: LiteRT has no builtin kernels for the string
ops (the `ai-edge-litert` runtime ships no Select-TF-ops "Flex" delegate, and
`StringNGrams` is not even a Select TF op), tf2onnx has no ONNX op for them
(`StaticRegexReplace`, `StringSplitV2`, `StringNGrams`, `RaggedBincount`),
and the music sampler's `stateless_categorical` draws exist in no other
runtime. What these formats receive is each model's *numeric core*, with the
vocabularies written beside it as text files and the input contract in
`contract.json`:

* sentiment: signature `classify`: `word_ids` int64 `[batch, 64]` and
  `ngram_counts` float32 `[batch, n-gram vocabulary]` → `probability`
  `[batch]`. `sentiment_features` computes both inputs from raw strings with
  the shipped vocabularies (plain Python, no TensorFlow), exactly as the
  model's own `TextVectorization` layers do.
* music: signatures `start` (`key_ids` int32 `[batch]` → initial state) and
  `step` (one event: previous `tokens` int32 `[batch]`, `key_vector` and
  state → next-event `log_probs` and the new state). The caller runs the
  generation loop; `greedy_melodies` is that loop for temperature 0, which
  reproduces the SavedModel's `generate` with `temperature=0`.

`SUPPORT` is the table of what each task exports in each format and why the
rest stays in TensorFlow; `zoo export NAME DIR --format tflite|onnx` writes
the files (`export`) and then runs them with their own runtime against the
SavedModel on the task's examples (`compare_with_savedmodel`), recording the
largest difference in `contract.json`.

The converters and runtimes are the optional extra `export`
(`pip install -e ".[export]"`: `ai-edge-litert`, `tf2onnx`, `onnx`,
`onnxruntime`); the LiteRT converter itself comes with TensorFlow.
"""

from zoo import _backend  # noqa: F401

import contextlib
import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

#: Formats of `zoo export --format`; "savedmodel" copies the verified model directory.
FORMATS = ("savedmodel", "tflite", "onnx")

#: Python modules each format needs (converter and runtime) and the pip package providing each.
RUNTIME_MODULES = {
    "tflite": {"ai_edge_litert.interpreter": "ai-edge-litert"},
    "onnx": {"tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime"},
}

CONTRACT_FILE = "contract.json"
TFLITE_FILE = "model.tflite"
ONNX_OPSET = 17

#: Largest |exported - SavedModel| accepted by `compare_with_savedmodel` (probabilities, log-probs).
TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class FormatSupport:
    """What one format holds for one task.

    Attributes:
        supported: Whether `zoo export --format` writes this format.
        exports: What the exported graph computes (its inputs and outputs).
        why: Why the whole model is not exported (or, when unsupported, why
            nothing is).
    """

    supported: bool
    exports: str
    why: str

    def as_dict(self):
        return dataclasses.asdict(self)


_WHOLE_MODEL = FormatSupport(
    True, "the whole model, raw inputs in (a copy of the verified model directory)", "")

_SENTIMENT_CORE = ("signature 'classify'{where}: word_ids int64 [batch, 64] + ngram_counts float32 "
                   "[batch, n-gram vocabulary] -> probability [batch]; word_vocabulary.txt and "
                   "ngram_vocabulary.txt beside it, zoo.export_formats.sentiment_features computes "
                   "the inputs from raw strings")
_SENTIMENT_WHERE = {"tflite": " (in a .tflite file, its only signature, named 'serving_default')",
                    "onnx": " (classify.onnx, one ONNX graph)"}
_SENTIMENT_WHY = {
    "tflite": "the TextVectorization layers (StringLower, StaticRegexReplace, StringSplitV2, StringNGrams, "
              "string hash tables, RaggedBincount) have no LiteRT builtin kernels; StringNGrams is not a "
              "Select TF op either, and the ai-edge-litert runtime has no Flex delegate",
    "onnx": "tf2onnx converts none of StaticRegexReplace, StringSplitV2, StringNGrams, RaggedBincount to "
            "ONNX (onnxruntime-extensions would be needed) and cannot convert the Keras string lookup "
            "tables",
}
_MUSIC_CORE = ("signatures 'start' (key_ids int32 [batch] -> key_vector and initial state) and 'step' "
               "(previous tokens int32 [batch], key_vector, state_h[, state_c] -> next-event "
               "log_probs [batch, 267], next_state_h[, next_state_c]); keys.txt lists the 24 key "
               "names by id; the caller runs the loop (zoo.export_formats.greedy_melodies for "
               "temperature 0)")
_MUSIC_WHY = {
    "tflite": "the in-graph generation loop's TensorList ops with a dynamic batch have no LiteRT builtin "
              "lowering, the key-string lookup is a string hash table, and stateless_categorical "
              "(the sampler's Philox draws) has no LiteRT kernel: sampling at temperature > 0 cannot "
              "reproduce the SavedModel's melodies",
    "onnx": "the key-string lookup is a string hash table with a regex normalisation (no ONNX op), and "
            "stateless_categorical (the sampler's Philox draws) has no ONNX equivalent: sampling at "
            "temperature > 0 cannot reproduce the SavedModel's melodies",
}
_LANGUAGE_MODEL_CORE = ("signature 'step' (previous tokens int32 [batch], states float32 [batch, states, "
                        "units] -> next-token log_probs [batch, vocabulary], next_states); contract.json lists "
                        "the tokens by id; the caller tokenises (the word rules need regexes: "
                        "zoo.tasks.language_model.TextCodec) and runs the loop "
                        "(zoo.export_formats.greedy_continuation for temperature 0)")
_LANGUAGE_MODEL_WHY = {
    "tflite": "the tokeniser (regex replacements, string split, a string hash table) has no LiteRT builtin "
              "kernels, the in-graph generation loop's TensorLists with a dynamic batch have no builtin "
              "lowering, and stateless_categorical (the sampler's Philox draws) has no LiteRT kernel: "
              "sampling at temperature > 0 cannot reproduce the SavedModel's texts",
    "onnx": "the tokeniser (StaticRegexReplace, StringSplitV2, a string hash table) has no ONNX op, and "
            "stateless_categorical (the sampler's Philox draws) has no ONNX equivalent: sampling at "
            "temperature > 0 cannot reproduce the SavedModel's texts",
}
_TRANSLATION_WHY = ("the source tokenizer (regex split, string hash tables) and the in-graph beam search "
                    "have no {runtime} equivalent; a numeric encoder/decoder-step export is not written "
                    "or measured yet")

#: What each task exports in each format, and why.
SUPPORT = {
    "sentiment": {
        "savedmodel": _WHOLE_MODEL,
        "tflite": FormatSupport(True, _SENTIMENT_CORE.format(where=_SENTIMENT_WHERE["tflite"]),
                                _SENTIMENT_WHY["tflite"]),
        "onnx": FormatSupport(True, _SENTIMENT_CORE.format(where=_SENTIMENT_WHERE["onnx"]),
                              _SENTIMENT_WHY["onnx"]),
    },
    "music": {
        "savedmodel": _WHOLE_MODEL,
        "tflite": FormatSupport(True, _MUSIC_CORE, _MUSIC_WHY["tflite"]),
        "onnx": FormatSupport(True, _MUSIC_CORE, _MUSIC_WHY["onnx"]),
    },
    "language-model": {
        "savedmodel": _WHOLE_MODEL,
        "tflite": FormatSupport(True, _LANGUAGE_MODEL_CORE, _LANGUAGE_MODEL_WHY["tflite"]),
        "onnx": FormatSupport(True, _LANGUAGE_MODEL_CORE, _LANGUAGE_MODEL_WHY["onnx"]),
    },
    "translation": {
        "savedmodel": _WHOLE_MODEL,
        "tflite": FormatSupport(False, "", _TRANSLATION_WHY.format(runtime="LiteRT builtin")),
        "onnx": FormatSupport(False, "", _TRANSLATION_WHY.format(runtime="ONNX")),
    },
}


class RuntimeMissingError(ImportError):
    """The converter or runtime of an export format is not installed."""


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------


def _check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, received {fmt!r}")


def format_support(task, fmt):
    """The `FormatSupport` of `fmt` for `task` (a card's `task` field); a task missing from
    `SUPPORT` has the SavedModel only."""
    _check_format(fmt)
    if task not in SUPPORT:
        if fmt == "savedmodel":
            return _WHOLE_MODEL
        return FormatSupport(False, "", f"no {fmt} export has been written or measured for task {task!r}")
    return SUPPORT[task][fmt]


def supported_formats(task):
    """The formats `zoo export` writes for `task`, in `FORMATS` order."""
    return [fmt for fmt in FORMATS if format_support(task, fmt).supported]


def card_entry(task):
    """`{format: {"supported", "exports", "why"}}` for a model card (what recipes record)."""
    return {fmt: format_support(task, fmt).as_dict() for fmt in FORMATS}


def check_exportable(task, fmt, name=None):
    """Raise `ValueError` saying why `task` (model `name`) has no `fmt` export; else return its support."""
    support = format_support(task, fmt)
    if not support.supported:
        subject = f"{name} ({task})" if name else f"task {task!r}"
        raise ValueError(f"{subject} cannot be exported as {fmt}: {support.why}; supported formats: "
                         f"{', '.join(supported_formats(task))}")
    return support


def missing_runtime(fmt):
    """None when `fmt`'s converter and runtime import, else a sentence naming the pip packages."""
    missing = []
    for module, package in RUNTIME_MODULES.get(fmt, {}).items():
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if not missing:
        return None
    return (f"exporting to {fmt} needs {', '.join(missing)} (pip install -e \".[export]\", or "
            f"pip install {' '.join(missing)})")


def _require_runtime(fmt):
    problem = missing_runtime(fmt)
    if problem:
        raise RuntimeMissingError(problem)


# --------------------------------------------------------------------------
# Sentiment: the numeric core and its input contract
# --------------------------------------------------------------------------

#: What `TextVectorization(standardize="lower_and_strip_punctuation")` removes after lower-casing.
_PUNCTUATION = re.compile(r"""[!"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']""")
#: What `StringSplitV2` with no separator splits on (ASCII white space), runs of it count once.
_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def sentiment_words(text):
    """The words the sentiment model reads in `text`: ASCII lower-case, punctuation removed, split
    on ASCII white space (what its `TextVectorization` layers do)."""
    standardized = _PUNCTUATION.sub("", text.translate(_ASCII_LOWER))
    return [word for word in _WHITESPACE.split(standardized) if word]


def sentiment_features(texts, word_vocabulary, ngram_vocabulary, sequence_length=64):
    """The inputs of the exported sentiment core for raw `texts`, without TensorFlow.

    Args:
        texts: Sentences (str).
        word_vocabulary: Lines of `word_vocabulary.txt`: id `i` is line `i`;
            0 is padding, 1 the out-of-vocabulary id.
        ngram_vocabulary: Lines of `ngram_vocabulary.txt`: column `i` of the
            counts is line `i`; column 0 counts the out-of-vocabulary n-grams.
        sequence_length: Word ids per sentence (the first ones kept, 0-padded).

    Returns:
        `{"word_ids": int64 [batch, sequence_length], "ngram_counts": float32
        [batch, len(ngram_vocabulary)]}`: word ids, and the counts of the
        sentence's words and adjacent word pairs (joined by one space).
    """
    word_index = {word: i for i, word in enumerate(word_vocabulary) if i >= 2}
    ngram_index = {ngram: i for i, ngram in enumerate(ngram_vocabulary) if i >= 1}
    word_ids = np.zeros((len(texts), sequence_length), np.int64)
    counts = np.zeros((len(texts), len(ngram_vocabulary)), np.float32)
    for row, text in enumerate(texts):
        words = sentiment_words(text)
        ids = [word_index.get(word, 1) for word in words[:sequence_length]]
        word_ids[row, : len(ids)] = ids
        for ngram in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
            counts[row, ngram_index.get(ngram, 0)] += 1.0
    return {"word_ids": word_ids, "ngram_counts": counts}


def _sentiment_graphs(model):
    """`{"classify": tf.function}`: word ids + n-gram counts → P(positive), with the model's weights."""
    import tensorflow as tf

    names = [layer.name for layer in model.layers]
    expected = ["word_ids", "embedding", "recurrent_logit", "ngram_tfidf", "ngram_logit"]
    if any(name not in names for name in expected) or "char_ngram_logit" in names:
        raise ValueError(f"the sentiment export needs a model with layers {', '.join(expected)} and no "
                         f"character n-gram path; model {model.name!r} has {', '.join(names)}")
    import keras

    readers = [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
    if len(readers) != 1 or readers[0].return_sequences:
        raise ValueError("the sentiment export supports pooling='last' models only")
    reader = readers[0]
    embedding = model.get_layer("embedding")
    recurrent_logit = model.get_layer("recurrent_logit")
    ngram_logit = model.get_layer("ngram_logit")
    ngrams = model.get_layer("ngram_tfidf")
    # TF-IDF = counts * idf; Keras keeps the adapted idf weights on the layer's inner StringLookup.
    idf = np.asarray(ngrams._lookup_layer.idf_weights_const, np.float32)
    length = model.get_layer("word_ids").get_config()["output_sequence_length"]

    @tf.function(input_signature=[tf.TensorSpec([None, length], tf.int64, name="word_ids"),
                                  tf.TensorSpec([None, ngrams.vocabulary_size()], tf.float32,
                                                name="ngram_counts")])
    def classify(word_ids, ngram_counts):
        embedded = embedding(word_ids)
        summary = reader(embedded, mask=tf.not_equal(word_ids, 0), training=False)
        logit = recurrent_logit(summary) + ngram_logit(ngram_counts * tf.constant(idf))
        return {"probability": tf.reshape(tf.sigmoid(logit), [-1])}

    return {"classify": classify}


def _sentiment_side_files(model, card=None):
    words = [str(w) for w in model.get_layer("word_ids").get_vocabulary()]
    ngrams = [str(w) for w in model.get_layer("ngram_tfidf").get_vocabulary()]
    length = model.get_layer("word_ids").get_config()["output_sequence_length"]
    contract = {
        "signatures": {"classify": {
            "inputs": {"word_ids": f"int64 [batch, {length}]",
                       "ngram_counts": f"float32 [batch, {len(ngrams)}]"},
            "outputs": {"probability": "float32 [batch], P(positive)"},
        }},
        "preprocessing": (
            "words: lower-case A-Z only, delete the characters !\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~', split on "
            f"ASCII white space. word_ids: line number in word_vocabulary.txt of each of the first {length} words "
            "(1 if absent), 0-padded. ngram_counts: for every word and every pair of adjacent words joined "
            "by one space, add 1 at its line number in ngram_vocabulary.txt (column 0 if absent). "
            "zoo.export_formats.sentiment_features implements this."),
    }
    return {"word_vocabulary.txt": "\n".join(words) + "\n",
            "ngram_vocabulary.txt": "\n".join(ngrams) + "\n"}, contract


def read_vocabulary(path):
    """The lines of a vocabulary file written by `export` (one entry per line, no trailing blank)."""
    text = Path(path).read_text(encoding="utf-8")
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


def _sentiment_examples(task):
    texts = list(task.serving_examples()["serving_default"]["texts"])
    return texts + ["Not bad at all -- a well-made, moving film!", "I didn't like it. Not one bit.",
                    "The plot is thin but the acting is superb", "ÉLAN, naïveté and a total bore",
                    " ".join(["long"] * 80)]


def _compare_sentiment(directory, runner, serving, task):
    import tensorflow as tf

    texts = _sentiment_examples(task)
    features = sentiment_features(texts, read_vocabulary(directory / "word_vocabulary.txt"),
                                  read_vocabulary(directory / "ngram_vocabulary.txt"))
    exported = runner.run("classify", **features)["probability"]
    expected = serving.signatures["serving_default"](texts=tf.constant(texts))["probability"].numpy()
    return {"examples": len(texts), "max_abs_difference_probability":
            float(np.max(np.abs(np.asarray(exported).reshape(-1) - expected)))}


# --------------------------------------------------------------------------
# Music: start + step, the loop in the caller
# --------------------------------------------------------------------------


def _music_graphs(model):
    import tensorflow as tf

    from zoo.tasks import music as music_task

    settings = music_task.model_settings(model)
    cell_states = music_task._STATE_NAMES[settings["cell"]]
    # `step` takes "state_h" ("state_c") and returns "next_state_h" ...: tf2onnx loses a graph input
    # whose name is also an output name ("graph input 'h' not exist").
    state_names = [f"state_{name}" for name in cell_states]
    units = settings["units"]
    key_embedding = model.get_layer("key_embedding")
    token_embedding = model.get_layer("token_embedding")
    cell = model.get_layer("decoder").cell
    head = model.get_layer("next_token")
    key_every_step = settings["key_every_step"]
    key_width = key_embedding.output_dim

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="key_ids")])
    def start(key_ids):
        key_vector = key_embedding(key_ids)
        states = {f"state_{name}": model.get_layer(f"initial_{name}")(key_vector) for name in cell_states}
        return {"key_vector": key_vector, **states}

    def one_event(tokens, key_vector, states):
        inputs = token_embedding(tokens)
        if key_every_step:
            inputs = tf.concat([inputs, key_vector], axis=-1)
        output, new_states = cell(inputs, list(states), training=False)
        log_probs = tf.nn.log_softmax(head(output), axis=-1)
        return {"log_probs": log_probs, **{f"next_{n}": s for n, s in zip(state_names, new_states)}}

    # Named arguments, one per state: converters name the graph inputs after them.
    specs = [tf.TensorSpec([None], tf.int32, name="tokens"),
             tf.TensorSpec([None, key_width], tf.float32, name="key_vector")]
    state_spec = [tf.TensorSpec([None, units], tf.float32, name=name) for name in state_names]
    if len(state_names) == 2:
        @tf.function(input_signature=specs + state_spec)
        def step(tokens, key_vector, state_h, state_c):
            return one_event(tokens, key_vector, [state_h, state_c])
    else:
        @tf.function(input_signature=specs + state_spec)
        def step(tokens, key_vector, state_h):
            return one_event(tokens, key_vector, [state_h])

    return {"start": start, "step": step}


def _music_side_files(model, card=None):
    from zoo import music

    from zoo.tasks import music as music_task

    state_names = [f"state_{n}" for n in music_task._STATE_NAMES[music_task.model_settings(model)["cell"]]]
    contract = {
        "signatures": {
            "start": {"inputs": {"key_ids": "int32 [batch], ids of keys.txt"},
                      "outputs": {"key_vector": "float32 [batch, key width]",
                                  **{n: "float32 [batch, units]" for n in state_names}}},
            "step": {"inputs": {"tokens": "int32 [batch], the previous event (BOS first)",
                                "key_vector": "from start",
                                **{n: "from start, then next_* of the last step" for n in state_names}},
                     "outputs": {"log_probs": f"float32 [batch, {music.VOCAB_SIZE}]",
                                 **{f"next_{n}": "float32 [batch, units]" for n in state_names}}},
        },
        "tokens": {"PAD": music.PAD, "BOS": music.BOS, "EOS": music.EOS, "first_event": music.NUM_SPECIAL,
                   "event": "NUM_SPECIAL + pitch_index * len(durations) + duration_index; pitch_index 0 is "
                            "a rest, 1 + (pitch - pitch_min) a pitch",
                   "durations": list(music.DURATIONS), "pitch_min": music.PITCH_MIN,
                   "pitch_max": music.PITCH_MAX},
        "generation": "never pick PAD or BOS; no EOS before min_events; after EOS a melody holds PAD. "
                      "zoo.export_formats.greedy_melodies is the loop at temperature 0 (the SavedModel's "
                      "sampler at temperature > 0 uses TensorFlow's stateless Philox draws, which these "
                      "runtimes do not reproduce).",
        "state_names": list(state_names),
    }
    return {"keys.txt": "\n".join(music.ALL_KEYS) + "\n"}, contract


def greedy_melodies(runner, key_ids, num_events, min_events=None, state_names=("state_h", "state_c")):
    """Token rows `[batch, num_events]` chosen greedily by an exported music core.

    The same rule as the SavedModel's `generate` at `temperature=0`: PAD and
    BOS are never chosen, EOS not before `min_events` events (default
    `num_events`), and a row holds PAD after its EOS.

    Args:
        runner: From `load_runner(directory, fmt)`.
        key_ids: Key ids (lines of `keys.txt`), one melody each.
        num_events: Events per melody.
        min_events: See above.
        state_names: The `state_names` of the export's `contract.json`.
    """
    from zoo import music

    if isinstance(num_events, bool) or not isinstance(num_events, (int, np.integer)) or num_events < 1:
        raise ValueError(f"num_events must be a positive integer, received {num_events!r}")
    min_events = num_events if min_events is None else min(int(min_events), num_events)
    key_ids = np.asarray(key_ids, np.int32)
    begun = runner.run("start", key_ids=key_ids)
    key_vector = begun["key_vector"]
    states = {name: begun[name] for name in state_names}
    tokens = np.full(len(key_ids), music.BOS, np.int32)
    ended = np.zeros(len(key_ids), bool)
    rows = []
    for t in range(num_events):
        out = runner.run("step", tokens=tokens, key_vector=key_vector, **states)
        log_probs = np.array(out["log_probs"], np.float32)
        log_probs[:, [music.PAD, music.BOS]] = -np.inf
        if t < min_events:
            log_probs[:, music.EOS] = -np.inf
        chosen = np.argmax(log_probs, axis=-1).astype(np.int32)
        chosen = np.where(ended, music.PAD, chosen)
        ended |= chosen == music.EOS
        rows.append(chosen)
        tokens = chosen
        states = {name: out[f"next_{name}"] for name in state_names}
    return np.stack(rows, axis=1)


def _compare_music(directory, runner, serving, task):
    import tensorflow as tf

    from zoo import music

    contract = json.loads((directory / CONTRACT_FILE).read_text(encoding="utf-8"))
    state_names = tuple(contract["state_names"])
    keys = ["D major", "F# minor", "Bb major", "C minor"]
    key_ids = [music.key_index(k) for k in keys]
    num_events = 24
    expected = serving.signatures["generate"](
        keys=tf.constant(keys), num_events=tf.constant(num_events, tf.int32),
        temperature=tf.constant(0.0), seed=tf.constant(0, tf.int64),
        min_events=tf.constant(num_events, tf.int32))["tokens"].numpy()
    greedy = greedy_melodies(runner, key_ids, num_events, state_names=state_names)
    # Teacher-forced log-probabilities of the SavedModel's own melodies, step by step.
    inputs = np.concatenate([np.full((len(keys), 1), music.BOS, np.int32), expected[:, :-1]], axis=1)
    scored = serving.signatures["score"](keys=tf.constant(keys), tokens=tf.constant(inputs))
    scored = scored["log_probs"].numpy()
    begun = runner.run("start", key_ids=np.asarray(key_ids, np.int32))
    states = {name: begun[name] for name in state_names}
    worst = 0.0
    for t in range(num_events):
        out = runner.run("step", tokens=inputs[:, t], key_vector=begun["key_vector"], **states)
        worst = max(worst, float(np.max(np.abs(out["log_probs"] - scored[:, t]))))
        states = {name: out[f"next_{name}"] for name in state_names}
    return {"examples": len(keys), "events": num_events,
            "max_abs_difference_log_probs": worst,
            "greedy_tokens_equal": bool(np.array_equal(greedy, expected))}


def _language_model_graphs(model):
    import tensorflow as tf

    from zoo.tasks import language_model as lm

    settings = lm.architecture(model)
    names = lm.state_names(settings["cell"], settings["num_layers"])
    per_layer = len(names) // settings["num_layers"]
    embedding = model.get_layer("embedding")
    bias = model.get_layer("logit_bias")
    cells = [model.get_layer(f"rnn_{i}").cell for i in range(settings["num_layers"])]

    # One stacked state input: the number of state tensors depends on the cell and the depth.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="tokens"),
                                  tf.TensorSpec([None, len(names), settings["units"]], tf.float32,
                                                name="states")])
    def step(tokens, states):
        x = embedding(tokens)
        new_states = []
        for i, cell in enumerate(cells):
            mine = [states[:, i * per_layer + k] for k in range(per_layer)]
            x, after = cell(x, mine, training=False)
            new_states += list(after)
        log_probs = tf.nn.log_softmax(bias(embedding(x, reverse=True)), axis=-1)
        return {"log_probs": log_probs, "next_states": tf.stack(new_states, axis=1)}

    return {"step": step}


def _language_model_side_files(model, card):
    from zoo.tasks import language_model as lm

    codec = lm.TextCodec.from_config(card["codec"])
    settings = lm.architecture(model)
    names = lm.state_names(settings["cell"], settings["num_layers"])
    contract = {
        "signatures": {"step": {
            "inputs": {"tokens": "int32 [batch], the previous token (start_token's id first)",
                       "states": f"float32 [batch, {len(names)}, {settings['units']}], zeros first, then "
                                 "next_states of the last step"},
            "outputs": {"log_probs": f"float32 [batch, {len(codec.vocabulary)}]",
                        "next_states": "float32 [batch, states, units]"}}},
        "state_names": names,
        "units": settings["units"],
        "vocabulary": codec.vocabulary,
        "tokens": {"level": codec.level, "start_token": codec.start_token, "start_id": codec.start_id,
                   "pad_id": lm.PAD, "unk_id": codec.unk_id},
        "generation": "never pick id 0 (<pad>). zoo.export_formats.greedy_continuation is the loop at "
                      "temperature 0 (the SavedModel's sampler at temperature > 0 uses TensorFlow's "
                      "stateless Philox draws, which these runtimes do not reproduce).",
    }
    return {}, contract


def greedy_continuation(runner, prompt_ids, num_tokens, num_states, units):
    """Token rows `[batch, num_tokens]` chosen greedily by an exported language-model core after the
    prompts `prompt_ids` (one list of ids per row, each starting with the start token's id)."""
    rows = len(prompt_ids)
    states = np.zeros((rows, num_states, units), np.float32)
    chosen = np.zeros((rows, num_tokens), np.int32)
    for r, prompt in enumerate(prompt_ids):  # rows of different lengths: primed one by one
        state = states[r:r + 1]
        for token in prompt[:-1]:
            state = runner.run("step", tokens=np.asarray([token], np.int32), states=state)["next_states"]
        states[r] = state[0]
    tokens = np.asarray([p[-1] for p in prompt_ids], np.int32)
    for t in range(num_tokens):
        out = runner.run("step", tokens=tokens, states=states)
        log_probs = np.array(out["log_probs"])
        log_probs[:, 0] = -np.inf
        tokens = np.argmax(log_probs, axis=-1).astype(np.int32)
        chosen[:, t] = tokens
        states = out["next_states"]
    return chosen


def _compare_language_model(directory, runner, serving, task):
    import tensorflow as tf

    contract = json.loads((directory / CONTRACT_FILE).read_text(encoding="utf-8"))
    codec = task.TextCodec(contract["tokens"]["level"], contract["vocabulary"], contract["tokens"]["start_token"])
    num_states = len(contract["state_names"])
    prompts = ["the company said", "ROMEO.\nO", ""]
    table = codec.lookup_table()
    prompt_ids = task.prompt_token_ids(codec, table, prompts).to_list()
    expected = serving.signatures["generate"](
        prompts=tf.constant(prompts), max_length=tf.constant(12), temperature=tf.constant(0.0),
        top_k=tf.constant(0), top_p=tf.constant(1.0), seed=tf.constant(0, tf.int64))["texts"].numpy()
    units = contract["units"]
    greedy = greedy_continuation(runner, prompt_ids, 12, num_states, units)
    texts = [codec.join(codec.vocabulary[i] for i in row) for row in greedy]
    # Teacher-forced log-probabilities of a text, step by step, against the SavedModel's score.
    text = "the company said it expects sales to rise" if codec.level == "word" else "ROMEO.\nWhat light"
    ids = task.text_token_ids(codec, table, [text]).to_list()[0]
    state = np.zeros((1, num_states, units), np.float32)
    total, previous = 0.0, codec.start_id
    for token in ids:
        out = runner.run("step", tokens=np.asarray([previous], np.int32), states=state)
        total += float(out["log_probs"][0, token])
        state, previous = out["next_states"], token
    scored = float(serving.signatures["score"](texts=tf.constant([text]))["log_prob"].numpy()[0])
    return {"examples": len(prompts), "tokens": 12, "max_abs_difference_log_prob": abs(total - scored),
            "greedy_texts_equal": texts == [e.decode("utf-8") for e in expected]}


_TASKS = {
    "sentiment": (_sentiment_graphs, _sentiment_side_files, _compare_sentiment),
    "language-model": (_language_model_graphs, _language_model_side_files, _compare_language_model),
    "music": (_music_graphs, _music_side_files, _compare_music),
}


# --------------------------------------------------------------------------
# Converters and runners
# --------------------------------------------------------------------------


def _frozen(signature, fn):
    """`fn` with its weights as constants, as a tf.function named `signature`.

    The LiteRT converter leaves variables read inside a `while` body (the recurrent layers' loop)
    as resource variables that its interpreter never initialises, so they are frozen first.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = fn.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    # The frozen function returns its outputs flat, in the order tf.nest flattens the dict.
    keys = sorted(concrete.structured_outputs)

    def call(*inputs):
        return dict(zip(keys, tf.nest.flatten(frozen(*inputs))))

    call.__name__ = signature  # the converter names each signature after its function
    return tf.function(call, input_signature=fn.input_signature)


def _to_tflite(graphs):
    """One `.tflite` flatbuffer holding every graph as a signature named after it (builtin ops only)."""
    import tensorflow as tf

    holder = tf.Module()
    holder.graphs = {signature: _frozen(signature, fn) for signature, fn in graphs.items()}
    functions = [fn.get_concrete_function() for fn in holder.graphs.values()]
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _to_onnx(fn):
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=ONNX_OPSET)
    return proto.SerializeToString()


class _LiteRtRunner:
    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path))
        self._runners = {}

    def signatures(self):
        return self._interpreter.get_signature_list()

    def run(self, signature, **inputs):
        if signature not in self._runners:
            available = self.signatures()
            # The converter names the signature of a one-function model "serving_default".
            key = next(iter(available)) if signature not in available and len(available) == 1 else signature
            self._runners[signature] = self._interpreter.get_signature_runner(key)
        return self._runners[signature](**inputs)


class _OnnxRunner:
    def __init__(self, directory):
        self._directory = Path(directory)
        self._sessions = {}

    def run(self, signature, **inputs):
        import onnxruntime

        if signature not in self._sessions:
            self._sessions[signature] = onnxruntime.InferenceSession(
                str(self._directory / f"{signature}.onnx"), providers=["CPUExecutionProvider"])
        session = self._sessions[signature]
        fed = {spec.name: inputs[_plain_name(spec.name)] for spec in session.get_inputs()}
        names = [spec.name for spec in session.get_outputs()]
        return dict(zip((_plain_name(n) for n in names), session.run(names, fed)))


def _plain_name(tensor_name):
    return tensor_name.split(":")[0]


def load_runner(directory, fmt):
    """A runner for an export in `directory`: `runner.run(signature, **numpy inputs) -> dict`."""
    _check_format(fmt)
    if fmt == "savedmodel":
        raise ValueError("format 'savedmodel' is run with tf.saved_model.load, not load_runner")
    _require_runtime(fmt)
    directory = Path(directory)
    return _LiteRtRunner(directory / TFLITE_FILE) if fmt == "tflite" else _OnnxRunner(directory)


# --------------------------------------------------------------------------
# export / compare
# --------------------------------------------------------------------------


def compare_with_savedmodel(name, directory, fmt):
    """Run the export in `directory` with its own runtime and the hub SavedModel of `name` on the
    task's examples; returns the measured differences (see `TOLERANCE`)."""
    from zoo import hub

    task_name = hub.info(name)["task"]
    check_exportable(task_name, fmt, name)
    from zoo.tasks import get_task

    serving = hub.load_serving(name, verify=False)
    compare = _TASKS[task_name][2]
    return compare(Path(directory), load_runner(directory, fmt), serving, get_task(task_name))


def within_tolerance(measured, tolerance=TOLERANCE):
    """Whether every `max_abs_difference_*` of `measured` is <= `tolerance` and every `*_equal` holds."""
    for key, value in measured.items():
        if key.startswith("max_abs_difference") and not value <= tolerance:
            return False
        if key.endswith("_equal") and value is not True:
            return False
    return True


@contextlib.contextmanager
def _quiet_tensorflow_logs():
    """Silence TensorFlow's Python warnings while converting (e.g. "Issue encountered when
    serializing table_initializer ... 'NoneType' object has no attribute 'name'", which says
    nothing about the export and reached the user's terminal)."""
    import tensorflow as tf

    logger = tf.get_logger()
    previous = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(previous)


def export(name, directory, fmt):
    """Write the `fmt` export of hub model `name` to `directory` (which must be absent or empty).

    The graphs are traced with the layers' portable kernels, converted,
    written beside their vocabulary files and `contract.json` in a staging
    directory, run with their runtime against the SavedModel
    (`compare_with_savedmodel`), and the directory is published only if
    the outputs agree within `TOLERANCE`.

    Returns:
        `(directory, measured)`: the written path and the comparison.

    Raises:
        ValueError: `fmt` unknown or not supported for the model's task
            (the message says why), or outputs that differ.
        RuntimeMissingError: the converter or runtime is not installed.
    """
    from zoo import hub
    from zoo.data.cache import atomic_write_bytes, atomic_write_text
    from zoo.layers import native

    _check_format(fmt)
    card = hub.info(name)
    task_name = card.get("task")
    support = check_exportable(task_name, fmt, name)
    if fmt == "savedmodel":
        raise ValueError("format 'savedmodel' is a copy of the model directory (zoo export NAME DIR)")
    _require_runtime(fmt)
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"export target {target} exists and is not an empty directory")
    build_graphs, side_files, _ = _TASKS[task_name]
    model = hub.load(name, compile=False)
    staging = target.with_name(f".staging-{target.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with native.portable(), _quiet_tensorflow_logs():
            graphs = build_graphs(model)
            if fmt == "tflite":
                atomic_write_bytes(staging / TFLITE_FILE, _to_tflite(graphs))
            else:
                for signature, fn in graphs.items():
                    atomic_write_bytes(staging / f"{signature}.onnx", _to_onnx(fn))
        texts, contract = side_files(model, card)
        for file_name, text in texts.items():
            atomic_write_text(staging / file_name, text)
        contract = {"model": name, "task": task_name, "format": fmt, "exports": support.exports,
                    "not_exported": support.why, **contract,
                    "source_files_sha256": {k: v["sha256"] for k, v in card.get("files", {}).items()
                                            if k.startswith(hub.SERVING_DIR + "/") or k == hub.KERAS_FILE}}
        atomic_write_text(staging / CONTRACT_FILE, json.dumps(contract, indent=2) + "\n")
        if fmt == "tflite":
            contract["tflite_signatures"] = load_runner(staging, fmt).signatures()
            atomic_write_text(staging / CONTRACT_FILE, json.dumps(contract, indent=2) + "\n")
        measured = compare_with_savedmodel(name, staging, fmt)
        if not within_tolerance(measured):
            raise ValueError(f"the {fmt} export of {name} disagrees with its SavedModel beyond "
                             f"{TOLERANCE}: {measured}")
        contract["compared_with_savedmodel"] = dict(measured, tolerance=TOLERANCE)
        atomic_write_text(staging / CONTRACT_FILE, json.dumps(contract, indent=2) + "\n")
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target, measured
