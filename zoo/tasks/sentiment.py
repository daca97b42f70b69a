"""Many-to-one sentiment classification: raw text in, P(positive) out.

The model carries its own text vectorization, so both the Keras model and the
serving SavedModel take raw strings:

    strings → TextVectorization (word ids) → Embedding(mask_zero) →
    Bidirectional(zoo LSTM | GRU | SimpleRNN) → Dropout → Dense(1) ─┐
    strings → TextVectorization (TF-IDF of word uni+bigrams) → Dense(1) ─┴→ + → sigmoid

The second, linear path (on by default, `wide=True`) is a logistic regression
on word 1-2-gram TF-IDF features. The recipe trains it first, alone
(`ngram_path_model`), then freezes it and trains the recurrent path on top, so
the recurrent reader learns what the bag of n-grams gets wrong (word order,
negation scope, contrast) instead of re-learning the lexical cues that 8k
sentences are enough to pin down. `ngram_path_model` also measures the
linear path alone, so every card shows what the recurrent path adds.
"""

from zoo import _backend  # noqa: F401

import re

import numpy as np

TASK = "sentiment"
IO_TYPE = "many-to-one"


def recurrent_layer(cell, units, **kwargs):
    """The zoo sequence layer for `cell` ("lstm", "gru" or "rnn")."""
    from zoo import layers

    return layers.sequence_layer_class(cell)(units, **kwargs)


#: Characters TextVectorization's default standardization strips (after lower-casing).
_STRIPPED = re.compile(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']")


def lexicon_vocabulary(lexicon):
    """(words, valences): a valence lexicon's entries as the word vectorizer sees them.

    Keys are lower-cased and stripped of punctuation as `TextVectorization`
    standardizes text (so "can't" is "cant"); entries that become empty or
    hold a space are dropped, and where several become one word their
    valences are averaged. Sorted, so the vocabulary is the same on every run.
    """
    merged = {}
    for key, valence in lexicon.items():
        word = _STRIPPED.sub("", key.lower())
        if word and not any(c.isspace() for c in word):
            merged.setdefault(word, []).append(float(valence))
    words = sorted(merged)
    return words, np.asarray([np.mean(merged[w]) for w in words], np.float32)


def lexicon_features(texts, lexicon, sequence_length):
    """Per word, its lexicon valence / 4 (0 for words not in it): a fixed lookup, never trained.

    Aligned with the model's word ids (same standardization, same split, same
    length), so the recurrent reader sees each word's id and its human valence
    rating side by side, for any word, including words never seen in training.
    """
    import keras

    words, valences = lexicon_vocabulary(lexicon)
    lookup = keras.layers.TextVectorization(
        vocabulary=words, output_sequence_length=sequence_length, name="lexicon_ids"
    )
    table = np.concatenate([[0.0, 0.0], valences / 4.0]).astype(np.float32)[:, None]
    return keras.layers.Embedding(
        len(table), 1, embeddings_initializer=keras.initializers.Constant(table),
        trainable=False, name="lexicon_valence",
    )(lookup(texts))


def build_model(train_texts, cell="lstm", max_tokens=20000, sequence_length=64,
                embedding_dim=128, units=64, dropout=0.5, wide=True, wide_l2=1e-4,
                char_ngrams=False, pooling="last", lexicon=None, word_dropout=0.0, subword_dim=0):
    """The sentiment model, with vocabularies adapted on `train_texts`.

    `lexicon` ({word: valence on -4..+4}, e.g. the VADER lexicon) adds each
    word's valence as a fixed input feature of the recurrent reader.
    `word_dropout` turns that share of the words into the unknown word while
    training (their valence stays): text from another domain is full of words
    the vocabulary never saw, and the reader learns to read those too.
    `subword_dim` > 0 adds, per word, the mean of its hashed character n-gram vectors
    (`zoo.layers.HashedSubwordEmbedding`, that many dimensions), kept when the word is dropped.
    """
    import keras

    texts = keras.Input(shape=(), dtype="string", name="text")
    word_ids = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_sequence_length=sequence_length, name="word_ids"
    )
    word_ids.adapt(train_texts)
    embedding = keras.layers.Embedding(
        word_ids.vocabulary_size(), embedding_dim, mask_zero=True, name="embedding"
    )
    ids = word_ids(texts)
    if word_dropout:
        from zoo.layers import WordDropout

        ids = WordDropout(rate=word_dropout, name="word_dropout")(ids)
    embedded = embedding(ids)
    embedded = keras.layers.SpatialDropout1D(dropout * 0.6, name="embedding_dropout")(embedded)
    if subword_dim:
        from zoo.layers import HashedSubwordEmbedding

        pieces = HashedSubwordEmbedding(dim=subword_dim, sequence_length=sequence_length, name="subwords")(texts)
        pieces = keras.layers.SpatialDropout1D(dropout * 0.6, name="subword_dropout")(pieces)
        embedded = keras.layers.Concatenate(name="word_and_subwords")([embedded, pieces])
    if lexicon:
        valence = lexicon_features(texts, lexicon, sequence_length)
        embedded = keras.layers.Concatenate(name="word_and_valence")([embedded, valence])
    if pooling not in ("last", "last+mean"):
        raise ValueError(f"pooling must be 'last' or 'last+mean', received {pooling!r}")
    reader = keras.layers.Bidirectional(
        recurrent_layer(cell, units, return_sequences=pooling != "last", return_state=pooling != "last"),
        name=f"bi{cell}",
    )
    if pooling == "last":
        summary = reader(embedded)
    else:
        # Final states of both directions plus the masked mean of all step outputs.
        sequence, *states = reader(embedded)
        finals = [states[0], states[len(states) // 2]]
        mean = keras.layers.GlobalAveragePooling1D(name="mean_over_time")(sequence)
        summary = keras.layers.Concatenate(name="summary")(finals + [mean])
    summary = keras.layers.Dropout(dropout, name="dropout")(summary)
    logit = keras.layers.Dense(1, name="recurrent_logit")(summary)
    if wide:
        wide_logit = ngram_logit(texts, train_texts, max_tokens, wide_l2)
        logits = [logit, wide_logit]
        if char_ngrams:
            chars = keras.layers.TextVectorization(
                max_tokens=5 * max_tokens, split="character", ngrams=(2, 3, 4, 5),
                standardize="lower", output_mode="tf_idf", name="char_ngram_tfidf",
            )
            chars.adapt(train_texts)
            logits.append(keras.layers.Dense(
                1, kernel_regularizer=keras.regularizers.l2(wide_l2), name="char_ngram_logit"
            )(chars(texts)))
        logit = keras.layers.Add(name="logit")(logits)
    probability = keras.layers.Activation("sigmoid", name="probability")(logit)
    return keras.Model(texts, probability, name=f"sentiment_bi{cell}")


def ngram_logit(texts, train_texts, max_tokens, wide_l2):
    """The n-gram path's logit of the string input `texts`: word 1-2-gram TF-IDF (4 x
    `max_tokens` features, adapted on `train_texts`) -> Dense(1) with L2 penalty `wide_l2`."""
    import keras

    ngrams = keras.layers.TextVectorization(
        max_tokens=4 * max_tokens, ngrams=2, output_mode="tf_idf", name="ngram_tfidf"
    )
    ngrams.adapt(train_texts)
    return keras.layers.Dense(
        1, kernel_regularizer=keras.regularizers.l2(wide_l2), name="ngram_logit"
    )(ngrams(texts))


def build_ngram_model(train_texts, max_tokens=20000, wide_l2=1e-4):
    """The n-gram path on its own, as `build_model(wide=True)` builds it, -> sigmoid."""
    import keras

    texts = keras.Input(shape=(), dtype="string", name="text")
    logit = ngram_logit(texts, train_texts, max_tokens, wide_l2)
    return keras.Model(texts, keras.layers.Activation("sigmoid", name="probability")(logit),
                       name="sentiment_ngram")


def _register_metric():
    import keras

    @keras.saving.register_keras_serializable(package="zoo", name="thresholded_accuracy")
    def thresholded_accuracy(y_true, y_pred):
        """Accuracy of P(positive) > 0.5 against targets > 0.5 (works for soft targets too)."""
        y_true = keras.ops.reshape(keras.ops.cast(y_true, "float32"), (-1,)) > 0.5
        y_pred = keras.ops.reshape(keras.ops.cast(y_pred, "float32"), (-1,)) > 0.5
        return keras.ops.mean(keras.ops.cast(keras.ops.equal(y_true, y_pred), "float32"))

    return thresholded_accuracy


def accuracy_metric():
    """The training/validation accuracy metric (registered so saved models load anywhere zoo is)."""
    import keras

    return keras.saving.get_registered_object("zoo>thresholded_accuracy") or _register_metric()


def register_custom_objects():
    import zoo.layers  # noqa: F401  (registers WordDropout)

    accuracy_metric()


def soft_targets(ratings, scale):
    """Training targets sigmoid(scale * rating) from mean ratings on -4..+4 (label = rating > 0)."""
    ratings = np.asarray(ratings, np.float64)
    return (1.0 / (1.0 + np.exp(-scale * ratings))).astype(np.float32)


NGRAM_LOGIT_LAYERS = ("ngram_logit", "char_ngram_logit")


def _ngram_layer_names(model):
    return [layer.name for layer in model.layers if layer.name in NGRAM_LOGIT_LAYERS]


def ngram_path_model(model):
    """The linear n-gram path of `model` as a model of its own (shares its layers and weights)."""
    import keras

    names = _ngram_layer_names(model)
    if not names:
        raise ValueError(f"model {model.name!r} has no n-gram path (built with wide=False)")
    logits = [model.get_layer(name).output for name in names]
    logit = logits[0] if len(logits) == 1 else keras.layers.Add()(logits)
    probability = keras.layers.Activation("sigmoid")(logit)
    return keras.Model(model.inputs, probability, name=f"{model.name}_ngram_path")


def freeze_ngram_path(model):
    for name in _ngram_layer_names(model):
        model.get_layer(name).trainable = False


def path_logits(model, path, texts, batch_size=512):
    """The logits of `model`'s "ngram" or "recurrent" path for `texts` (inference mode), float32 (n,)."""
    import keras

    logits = keras.Model(model.inputs, model.get_layer(f"{path}_logit").output)
    return predict_probabilities(logits, texts, batch_size)


def out_of_fold_ngram_logits(model, texts, targets, *, folds, epochs, batch_size, seed, l2,
                             learning_rate=3e-3):
    """For each training text, the logit of an n-gram path trained without it (cross-fitting).

    The n-gram path nearly memorises its training set (train accuracy ~0.99),
    so against its own training logits the recurrent path would see almost no
    error left to learn. Here the texts are cut into `folds` seeded folds; for
    each, a fresh n-gram logistic path (the model's own TF-IDF vectorizer, a
    new Dense(1)) trains `epochs` epochs on the other folds and scores the
    held-out fold. The recurrent path then learns what an n-gram model gets
    wrong on text it has not seen, as at test time.
    """
    import keras
    import tensorflow as tf

    texts, targets = list(texts), np.asarray(targets, np.float32)
    order = np.random.default_rng(seed).permutation(len(texts))
    logits = np.zeros(len(texts), np.float32)
    vectorizer = model.get_layer("ngram_tfidf")
    for fold, held in enumerate(np.array_split(order, folds)):
        keep = np.setdiff1d(order, held)
        keras.utils.set_random_seed(seed + fold)
        text_in = keras.Input(shape=(), dtype="string")
        dense = keras.layers.Dense(1, kernel_regularizer=keras.regularizers.l2(l2))
        logit = dense(vectorizer(text_in))
        linear = keras.Model(text_in, keras.layers.Activation("sigmoid")(logit))
        linear.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
        data = tf.data.Dataset.from_tensor_slices(
            (tf.constant([texts[i] for i in keep]), targets[keep][:, None])
        ).shuffle(len(keep), seed=seed + fold).batch(batch_size)
        linear.fit(data, epochs=epochs, verbose=0)
        logits[held] = predict_probabilities(keras.Model(text_in, logit), [texts[i] for i in held],
                                             batch_size=512)
    return logits


def residual_model(model, learner="recurrent"):
    """A training view of `model`: (text, other logit) -> sigmoid(learner's logit + other logit).

    `learner` is "recurrent" or "ngram": the path that trains, against the
    other path's logits given as data (`out_of_fold_ngram_logits`,
    `path_logits`) instead of computed. Shares the learner's layers with
    `model`, so training this view trains `model`.
    """
    import keras

    if learner not in ("recurrent", "ngram"):
        raise ValueError(f"learner must be 'recurrent' or 'ngram', received {learner!r}")
    path = keras.Model(model.inputs, model.get_layer(f"{learner}_logit").output,
                       name=f"{model.name}_{learner}_logit")
    text = keras.Input(shape=(), dtype="string", name="text")
    offset = keras.Input(shape=(1,), dtype="float32", name="other_logit")
    logit = keras.layers.Add(name="logit")([path(text), offset])
    probability = keras.layers.Activation("sigmoid", name="probability")(logit)
    return keras.Model({"text": text, "other_logit": offset}, probability,
                       name=f"{model.name}_residual")


def residual_dataset(texts, offsets, targets, batch_size, shuffle=False, seed=None):
    """Batches of ({"text", "other_logit"}, target) for `residual_model`."""
    import tensorflow as tf

    inputs = {"text": tf.constant(list(texts), dtype=tf.string),
              "other_logit": np.asarray(offsets, np.float32)[:, None]}
    data = tf.data.Dataset.from_tensor_slices((inputs, np.asarray(targets, np.float32)))
    if shuffle and len(texts) > 1:
        data = data.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def recurrent_path_model(model):
    """sigmoid(recurrent logit) of `model` alone (shares its layers): what the reader says on its own."""
    import keras

    logit = model.get_layer("recurrent_logit").output
    return keras.Model(model.inputs, keras.layers.Activation("sigmoid")(logit),
                       name=f"{model.name}_recurrent_path")


def as_dataset(texts, labels, batch_size, shuffle=False, seed=None):
    from zoo.data import as_dataset as make

    return make(texts, labels, batch_size=batch_size, shuffle=shuffle, seed=seed)


def predict_probabilities(model, texts, batch_size=256):
    """`model`'s one output per text, flattened to (n,), computed `batch_size` texts at a time."""
    import tensorflow as tf

    texts = list(texts)
    if not texts:
        return np.zeros((0,), np.float32)
    outputs = []
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(texts[start : start + batch_size])
        outputs.append(np.asarray(model(batch, training=False)).reshape(-1))
    return np.concatenate(outputs)


def metrics_from_probabilities(probabilities, labels):
    """Accuracy, mean log loss and confusion counts (float64, deterministic)."""
    labels = np.asarray(labels).astype(np.int64)
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
    predicted = (p > 0.5).astype(np.int64)
    return {
        "accuracy": round(float(np.mean(predicted == labels)), 6),
        "log_loss": round(float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))), 6),
        "examples": int(len(labels)),
        "true_positive": int(np.sum((predicted == 1) & (labels == 1))),
        "true_negative": int(np.sum((predicted == 0) & (labels == 0))),
        "false_positive": int(np.sum((predicted == 1) & (labels == 0))),
        "false_negative": int(np.sum((predicted == 0) & (labels == 1))),
    }


def evaluate(model, texts, labels):
    return metrics_from_probabilities(predict_probabilities(model, texts), labels)


class TfidfLogistic:
    """TF-IDF (word 1-2 grams) + logistic regression fitted on the same training text: the bar to beat."""

    DESCRIPTION = {
        "name": "tfidf-1-2gram-logistic-regression",
        "description": "scikit-learn TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) + "
                       "LogisticRegression(C=4), fitted on the same train split, scored on test",
    }

    def __init__(self, vectorizer, classifier):
        self.vectorizer, self.classifier = vectorizer, classifier

    @classmethod
    def fit(cls, train, seed=0):
        """Fitted on `train` = (texts, labels); soft labels are thresholded at 0.5."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
        features = vectorizer.fit_transform(train[0])
        classifier = LogisticRegression(C=4.0, max_iter=2000, random_state=seed)
        classifier.fit(features, (np.asarray(train[1]) > 0.5).astype(np.int64))
        return cls(vectorizer, classifier)

    def score(self, texts, labels):
        """Accuracy on (texts, labels), rounded as the cards keep it."""
        if not len(texts):
            return None
        predicted = self.classifier.predict(self.vectorizer.transform(list(texts)))
        return round(float(np.mean(predicted == np.asarray(labels))), 6)


def write_serving(model, path):
    """SavedModel whose `serving_default` takes a batch of raw strings → {"probability": (batch,)}."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(texts):
        return {"probability": tf.reshape(model(texts, training=False), [-1])}

    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec(shape=(None,), dtype=tf.string, name="texts")],
    )
    archive.write_out(str(path), verbose=False)


def serving_examples():
    """Small valid inputs for each signature of the SavedModel, as plain Python values."""
    return {"serving_default": {"texts": ["a gorgeous, witty film", "a tedious mess", ""]}}


def domain_splits(domain, seed):
    """Train/validation/test of a training domain: a review domain of `zoo.data.reviews`, or
    "imdb" (TFDS, needs internet or a prepared data_dir)."""
    from zoo import data
    from zoo.data import reviews

    if domain == "imdb":
        return data.load_imdb_splits(seed=seed)
    return reviews.domain_splits(domain, seed=seed)


def load_splits(card_dataset):
    """The splits a card's dataset entry describes (cards of one data set, before domains)."""
    from zoo import data

    name = card_dataset["name"]
    if name == "movie-review-snippets":
        return data.movie_review_splits(seed=card_dataset["split_seed"])
    if name == "imdb_reviews":
        return data.load_imdb_splits(seed=card_dataset.get("split_seed"))
    raise ValueError(f"unknown data set in card: {name!r}")


def _first(texts, labels, limit):
    return (texts[:limit], labels[:limit]) if limit else (texts, labels)


def remeasure(model, card):
    """Re-measure the card's test metrics from scratch (used by `zoo verify`): the pooled
    in-domain test, and on every domain of the card the model and those of its paths that
    the card scores read out of the model (a path trained apart as an ablation is not shipped)."""
    dataset = card["dataset"]
    limit = dataset.get("max_examples_per_split")
    first = ((card.get("training") or {}).get("settings") or {}).get("first", "ngram")
    in_model = bool(_ngram_layer_names(model))
    paths = {}
    if in_model and first == "ngram" and "test_ngram_path_only" in card.get("metrics", {}):
        paths["ngram_path_only"] = ngram_path_model(model)
    if in_model and first == "reader" and "test_recurrent_path_only" in card.get("metrics", {}):
        paths["recurrent_path_only"] = recurrent_path_model(model)
    if dataset["name"] != "reviews":
        texts, labels = _first(*load_splits(dataset)["test"], limit)
        measured = {"test": evaluate(model, texts, labels)}
        measured.update({f"test_{path}": evaluate(alone, texts, labels) for path, alone in paths.items()})
        return measured
    from zoo.data import reviews

    sets = {d: _first(*domain_splits(d, dataset["split_seed"])["test"], limit)
            for d in dataset["training_domains"]}
    held_out = {d: _first(*reviews.load_domain(d), limit) for d in dataset["held_out_domains"]}
    texts = [t for d in sets for t in sets[d][0]]
    labels = np.concatenate([np.asarray(sets[d][1]) for d in sets])
    measured = {"test": evaluate(model, texts, labels)}
    measured.update({f"test_{path}": evaluate(alone, texts, labels) for path, alone in paths.items()})
    measured["domains"] = {}
    for domain, (texts, labels) in {**sets, **held_out}.items():
        entry = {"model": evaluate(model, texts, labels)}
        entry.update({path: evaluate(alone, texts, labels) for path, alone in paths.items()})
        measured["domains"][domain] = entry
    return measured


def format_prediction(text, probability):
    label = "positive" if probability > 0.5 else "negative"
    return f"{label}\t{probability:.4f}\t{text}"


def serve_predictions(serving, texts):
    import tensorflow as tf

    result = serving.signatures["serving_default"](texts=tf.constant(list(texts)))
    return np.asarray(result["probability"]).reshape(-1)
