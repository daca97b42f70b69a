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

import numpy as np

TASK = "sentiment"
IO_TYPE = "many-to-one"


def recurrent_layer(cell, units, **kwargs):
    """The zoo sequence layer for `cell` ("lstm", "gru" or "rnn")."""
    from zoo import layers

    return layers.sequence_layer_class(cell)(units, **kwargs)


def build_model(train_texts, cell="lstm", max_tokens=20000, sequence_length=64,
                embedding_dim=128, units=64, dropout=0.5, wide=True, wide_l2=1e-4,
                char_ngrams=False, pooling="last"):
    """The sentiment model, with vocabularies adapted on `train_texts`."""
    import keras

    texts = keras.Input(shape=(), dtype="string", name="text")
    word_ids = keras.layers.TextVectorization(
        max_tokens=max_tokens, output_sequence_length=sequence_length, name="word_ids"
    )
    word_ids.adapt(train_texts)
    embedded = keras.layers.Embedding(
        word_ids.vocabulary_size(), embedding_dim, mask_zero=True, name="embedding"
    )(word_ids(texts))
    embedded = keras.layers.SpatialDropout1D(dropout * 0.6, name="embedding_dropout")(embedded)
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
        ngrams = keras.layers.TextVectorization(
            max_tokens=4 * max_tokens, ngrams=2, output_mode="tf_idf", name="ngram_tfidf"
        )
        ngrams.adapt(train_texts)
        wide_logit = keras.layers.Dense(
            1, kernel_regularizer=keras.regularizers.l2(wide_l2), name="ngram_logit"
        )(ngrams(texts))
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


register_custom_objects = accuracy_metric


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


def as_dataset(texts, labels, batch_size, shuffle=False, seed=None):
    from zoo.data import as_dataset as make

    return make(texts, labels, batch_size=batch_size, shuffle=shuffle, seed=seed)


def predict_probabilities(model, texts, batch_size=256):
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


def tfidf_logistic_baseline(train, test, seed=0):
    """TF-IDF (word 1-2 grams) + logistic regression on the same split: the bar to beat."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    features = vectorizer.fit_transform(train[0])
    classifier = LogisticRegression(C=4.0, max_iter=2000, random_state=seed)
    classifier.fit(features, train[1])
    predicted = classifier.predict(vectorizer.transform(test[0]))
    return {
        "name": "tfidf-1-2gram-logistic-regression",
        "accuracy": round(float(np.mean(predicted == np.asarray(test[1]))), 6),
        "description": "scikit-learn TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) + "
                       "LogisticRegression(C=4), fitted on the same train split, scored on test",
    }


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


def load_splits(card_dataset):
    """The splits a card's dataset entry describes."""
    from zoo import data

    name = card_dataset["name"]
    if name == "movie-review-snippets":
        return data.movie_review_splits(seed=card_dataset["split_seed"])
    if name == "imdb_reviews":
        return data.load_imdb_splits(seed=card_dataset.get("split_seed"))
    raise ValueError(f"unknown data set in card: {name!r}")


def remeasure(model, card):
    """Re-measure the card's test metrics from scratch (used by `zoo verify`)."""
    splits = load_splits(card["dataset"])
    limit = card["dataset"].get("max_examples_per_split")
    texts, labels = splits["test"]
    if limit:
        texts, labels = texts[:limit], labels[:limit]
    measured = {"test": evaluate(model, texts, labels)}
    if _ngram_layer_names(model) and "test_ngram_path_only" in card.get("metrics", {}):
        measured["test_ngram_path_only"] = evaluate(ngram_path_model(model), texts, labels)
    return measured


def format_prediction(text, probability):
    label = "positive" if probability > 0.5 else "negative"
    return f"{label}\t{probability:.4f}\t{text}"


def serve_predictions(serving, texts):
    import tensorflow as tf

    result = serving.signatures["serving_default"](texts=tf.constant(list(texts)))
    return np.asarray(result["probability"]).reshape(-1)
