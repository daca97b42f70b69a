"""
Title: Part-of-speech tagging with a bidirectional zoo LSTM over words and characters
Description: Train a tagger on Brown (English) or Porttinari (Portuguese), beside a most-frequent-tag
baseline, NLTK's averaged perceptron and a CRF trained on the same split, test out of domain, export.

The synchronised many-to-many: one tag per input word. Words go into the model
as strings; it looks them up, reads each word's characters with a
bidirectional zoo LSTM (so unseen words are tagged from their spelling), and
reads the sentence with a bidirectional zoo LSTM, then gives a softmax per
tag set. Brown trains two heads at once: the 12 universal tags of Petrov et
al. (2012) and the corpus's full tags.

Splits are by document (zoo.data.tagging). Epochs are chosen by early stopping
on the validation split (drawn from the training distribution); the test
split and the out-of-domain sets are scored once at the end, beside the
baselines trained on the same training split:

* Brown: the test split (every genre), and a second model trained the same
  way without whole genres (--heldout-genres, default humor and science
  fiction), scored on those genres beside baselines trained without them.
* Porttinari: its test split, and PetroGold (oil-and-gas texts) and
  DANTEStocks (tweets) whole, domains never seen in training.

Checkpoints every epoch (rerun the same command after a kill to resume).
Writes `saved_models/<name>/` (model.keras, serving SavedModel, card.json).

    python recipes/tagging.py                          # Brown, ships tagging-bilstm-brown
    python recipes/tagging.py --data porttinari        # ships tagging-bilstm-porttinari
    python recipes/tagging.py --data porttinari --validation-only --baselines ""   # compare settings
    python recipes/tagging.py --data porttinari --document-folds 3   # model vs baselines on training folds
    python recipes/tagging.py --epochs 1 --max-sentences 300 --output-dir /tmp/hub   # smoke run
"""

import json
import os
import time

from zoo.settings import (Check, at_least, choices, fraction, model_name, non_negative, positive, recipe_command,
                          settings_parser)

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    data="brown",            # brown | porttinari
    cell="lstm",             # sentence reader: lstm | gru | rnn
    char_cell="lstm",        # character reader: lstm | gru | rnn
    units=200,               # sentence reader units per direction
    layers=1,                # stacked bidirectional sentence readers
    char_units=64,           # character reader units per direction
    word_dim=None,           # word embedding size; default by data (PER_DATA)
    char_dim=50,             # character embedding size
    characters=True,         # the character reader (off: words only)
    suffix_length=None,      # embed each word's last 1..N characters (0: off); default by data
    suffix_dim=16,           # embedding size of each ending
    shape=True,              # spelling indicators: capitals, digits, hyphens, punctuation
    lexicon_epochs=0,        # first train the character reader on an external lexicon's word classes
                             # (zoo.data.lexicons: English Brown clusters, Portuguese lemma classes) for N epochs
    lexicon_per_class=20000, # at most this many lexicon words of any one class
    crf=False,               # a linear-chain CRF output on tag sets of at most 50 tags (else a softmax per word)
    min_count=None,          # training words (and endings) seen fewer times share the unknown id; default by data
    dropout=0.5,
    word_dropout=0.15,       # training only: a known word is read as unknown with this probability
    rare_word_alpha=0.0,     # training only, > 0: a word seen n times is also read as unknown with
                             # probability alpha / (alpha + n) (rare words most often)
    lexicon_features=False,  # embed each word's class in the external lexicon (zoo.data.lexicons), so
                             # words missing from the tagged training text still carry one
    lexicon_dim=16,          # embedding size of the lexicon class
    epochs=0,                # maximum epochs, 0: 8 for Brown, 30 for Porttinari (early stopping on val_loss)
    patience=2,
    lr_decay=0.5,            # learning rate x this after an epoch without improvement
    average_epochs=0,        # K > 0: also try the mean of the weights of the last K epochs run; kept
                             # when its validation loss is below the best epoch's
    batch_size=32,           # sentences per batch (batches group sentences of similar length)
    learning_rate=2e-3,
    heldout_genres="humor,science_fiction",  # Brown: genres of the transfer test ("" skips it)
    baselines="most_frequent,perceptron,crf",  # any of these, comma-separated ("" for none)
    perceptron_iterations=5,
    crf_iterations=100,
    validation_only=False,   # method comparison: train, score the validation split (model and baselines), stop
    document_folds=0,        # K > 0: instead, K folds of the training documents (each holds out every K-th
                             # document of a seeded order), model and baselines scored on each; nothing exported
    seed=1337,               # seeds the split, the initialization and the batch order
    max_sentences=None,      # use only the first N sentences of each split (smoke runs)
    name=None,               # model name; default tagging-bi<cell>-<data>
    output_dir=None,         # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,            # checkpoints, logs, curves; default runs/<name>
)


#: Settings that differ by data set (a `None` in DEFAULTS takes these). Chosen on Porttinari's validation
#: split; Brown's vocabulary is larger, so its model uses smaller word vectors, words and endings seen at
#: least 3 times and endings of up to 3 characters to keep its directory under 20 MB.
PER_DATA = {
    "brown": dict(word_dim=64, min_count=3, suffix_length=3),
    "porttinari": dict(word_dim=100, min_count=2, suffix_length=4),
}


def _names(allowed):
    return Check(f"must be a comma-separated list of {', '.join(allowed)}",
                 lambda value: all(v in allowed for v in value.split(",") if v))


CHECKS = dict(
    data=choices("brown", "porttinari"), cell=choices("lstm", "gru", "rnn"),
    char_cell=choices("lstm", "gru", "rnn"), units=positive, layers=positive, char_units=positive,
    word_dim=positive, char_dim=positive, suffix_length=non_negative, suffix_dim=positive, min_count=positive,
    dropout=fraction, word_dropout=fraction, rare_word_alpha=Check("must be >= 0", lambda value: value >= 0),
    lexicon_dim=positive, average_epochs=non_negative, lexicon_epochs=non_negative, lexicon_per_class=positive,
    epochs=non_negative, patience=non_negative, lr_decay=Check("must be in (0, 1]", lambda value: 0 < value <= 1),
    batch_size=positive, learning_rate=positive, baselines=_names(("most_frequent", "perceptron", "crf")),
    perceptron_iterations=positive, crf_iterations=positive, seed=non_negative,
    max_sentences=at_least(10), name=model_name, document_folds=non_negative,
)


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, checks=CHECKS, optional_types={
        "max_sentences": int, "word_dim": int, "min_count": int, "suffix_length": int})
    args = parser.parse_args(argv)
    for key, value in PER_DATA[args.data].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.heldout = tuple(g for g in args.heldout_genres.split(",") if g) if args.data == "brown" else ()
    args.baseline_kinds = tuple(b for b in args.baselines.split(",") if b)
    args.max_epochs = args.epochs or {"brown": 8, "porttinari": 30}[args.data]
    args.name = args.name or f"tagging-bi{args.cell}-{args.data}"
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def load_splits(args, heldout=()):
    from zoo.tasks import tagging

    return tagging.load_splits(args.data, args.seed, heldout, args.max_sentences)


def _lexicon_classes(args):
    """The external lexicon's `{word: class}` when `--lexicon-features` asks for it, else None."""
    if not args.lexicon_features:
        return None
    from zoo.data import lexicons

    return lexicons.word_classes(lexicons.DATA_LANGUAGE[args.data])


def train_tagger(splits, args, run_dir):
    """Build and train one tagger on `splits["train"]`, early-stopped on `splits["validation"]`."""
    from zoo import training
    from zoo.data.cache import atomic_write_text
    from zoo.tasks import tagging

    training.seed_everything(args.seed)
    tag_sets = tagging.tag_vocabularies(splits["train"])
    model = tagging.build_model(
        splits["train"].words, tag_sets, cell=args.cell, char_cell=args.char_cell, units=args.units,
        layers=args.layers, char_units=args.char_units, word_dim=args.word_dim, char_dim=args.char_dim,
        min_count=args.min_count, dropout=args.dropout, word_dropout=args.word_dropout, seed=args.seed,
        characters=args.characters, suffix_length=args.suffix_length, suffix_dim=args.suffix_dim, shape=args.shape,
        crf=args.crf, rare_word_alpha=args.rare_word_alpha, lexicon=_lexicon_classes(args), lexicon_dim=args.lexicon_dim)
    lexicon = None
    lexicon_record = os.path.join(run_dir, "lexicon_pretraining.json")
    if args.lexicon_epochs and training.has_resume_checkpoint(run_dir) and os.path.exists(lexicon_record):
        with open(lexicon_record, encoding="utf-8") as handle:  # it ran before the interruption
            lexicon = json.load(handle)
    elif args.lexicon_epochs:
        from zoo.data import lexicons

        language = lexicons.DATA_LANGUAGE[args.data]
        lexicon = tagging.pretrain_character_reader(
            model, lexicons.word_classes(language), epochs=args.lexicon_epochs,
            per_class=args.lexicon_per_class, seed=args.seed)
        lexicon.update(source=lexicons.LEXICONS[language][1], license=lexicons.LICENSE)
        print(f"[zoo] character reader pretrained on {lexicon['words']} lexicon words ({lexicon['classes']} "
              f"classes, {lexicon['epochs']} epochs, {lexicon['seconds']:.0f} s): accuracy {lexicon['accuracy']:.3f}")
        os.makedirs(run_dir, exist_ok=True)
        atomic_write_text(lexicon_record, json.dumps(lexicon))
    tagging.compile_model(model, args.learning_rate)
    train_data = tagging.as_dataset(splits["train"], tag_sets, args.batch_size, shuffle=True, seed=args.seed)
    validation_data = tagging.as_dataset(splits["validation"], tag_sets, 128)
    saved = training.EpochWeights(os.path.join(run_dir, "epochs")) if args.average_epochs else None
    if saved and not training.has_resume_checkpoint(run_dir):
        saved.clear()
    run = training.fit(model, train_data, validation_data, epochs=args.max_epochs, run_dir=run_dir,
                       monitor="val_loss", patience=args.patience, verbose=2, tensorboard=False,
                       lr_decay=args.lr_decay if args.lr_decay < 1 else None, extra_callbacks=[saved] if saved else ())
    if saved:
        run["weight_average"] = average_if_better(model, saved, run, args.average_epochs, validation_data)
    tokens = splits["train"].tokens()
    run["tokens_per_second"] = round(tokens * run["epochs_run"] / max(run["seconds"], 1e-9), 1)
    run["lexicon_pretraining"] = lexicon
    if lexicon:
        run["seconds"] = round(run["seconds"] + lexicon["seconds"], 1)
    print(f"[zoo] trained {run['epochs_run']} epochs (best {run['best_epoch']}) in {run['seconds']:.0f} s, "
          f"{run['tokens_per_second']:.0f} tokens/s")
    return model, run


def average_if_better(model, saved, run, count, validation_data):
    """Replace `model`'s weights (the best epoch's, whose validation loss `run` records) by the mean of
    the last `count` epochs' when that has the lower validation loss; returns what was compared and kept."""
    from zoo import training

    best_weights = model.get_weights()
    best_loss = float(run["best_value"])
    epochs = list(range(max(1, run["epochs_run"] - count + 1), run["epochs_run"] + 1))
    training.average_epoch_weights(model, saved, epochs)
    average_loss = float(model.evaluate(validation_data, verbose=0, return_dict=True)["loss"])
    kept = average_loss < best_loss
    if not kept:
        model.set_weights(best_weights)
    print(f"[zoo] weights averaged over epochs {epochs[0]}-{epochs[-1]}: validation loss {average_loss:.4f} "
          f"against {best_loss:.4f} for the best epoch alone; {'kept' if kept else 'not kept'}")
    return {"epochs": epochs, "validation_loss": round(average_loss, 6), "best_epoch_validation_loss": round(best_loss, 6),
            "kept": kept}


def fold_splits(splits, folds, seed):
    """`folds` splits of the training documents: fold k holds out every `folds`-th document of a
    seeded order (as "fold") and trains on the rest; validation stays for early stopping."""
    import numpy as np

    train = splits["train"]
    documents = sorted(set(train.documents))
    if folds > len(documents):
        raise ValueError(f"cannot cut {folds} folds of {len(documents)} training documents")
    np.random.default_rng(seed).shuffle(documents)
    for k in range(folds):
        held = set(documents[k::folds])
        yield {"train": train.select([i for i, d in enumerate(train.documents) if d not in held], "train"),
               "validation": splits["validation"],
               "fold": train.select([i for i, d in enumerate(train.documents) if d in held], "fold")}


def document_folds(splits, args):
    """The model and the baselines on `--document-folds` folds of the training documents: how far apart
    they are on text like the training text, split after split, with the test sets unread. Writes
    `runs/<name>/folds.json`; exports nothing."""
    import keras

    from zoo.data.cache import atomic_write_text

    label_sets = splits["train"].label_sets
    folds = []
    for k, fold in enumerate(fold_splits(splits, args.document_folds, args.seed)):
        print(f"[zoo] fold {k + 1} of {args.document_folds}: train {len(fold['train'])} sentences, "
              f"held out {len(fold['fold'])} sentences of {len(set(fold['fold'].documents))} documents")
        model, run = train_tagger(fold, args, os.path.join(args.run_dir, f"fold-{k + 1}"))
        rows = comparison(measured(model, fold, ["fold"]), baselines_for(fold, ["fold"], label_sets, args), ["fold"])
        folds.append({"fold": k + 1, "rows": rows, "best_epoch": run["best_epoch"]})
        del model
        keras.backend.clear_session()
    summary = {}
    for label_set in label_sets:
        per_fold = [next(r for r in f["rows"] if r["tag_set"] == label_set) for f in folds]
        for kind in args.baseline_kinds:
            if kind in per_fold[0]:
                margins = [r["model_unseen"] - r[f"{kind}_unseen"] for r in per_fold]
                overall = [r["model"] - r[kind] for r in per_fold]
                summary[f"{label_set} vs {kind}"] = {
                    "unseen_word_margins": [round(m, 4) for m in margins],
                    "accuracy_margins": [round(m, 4) for m in overall],
                    "mean_unseen_word_margin": round(sum(margins) / len(margins), 4)}
                print(f"[zoo] {label_set}: model minus {kind} on held-out training documents, unseen words "
                      + ", ".join(f"{m:+.4f}" for m in margins) + "; all words " + ", ".join(f"{m:+.4f}" for m in overall))
    atomic_write_text(os.path.join(args.run_dir, "folds.json"), json.dumps(
        {"settings": settings_record(args), "folds": folds, "summary": summary},
        indent=1, default=str))
    return {"folds": folds, "summary": summary}


def settings_record(args):
    """The settings a run records beside its results (runs/<name>/validation.json, folds.json)."""
    return {k: v for k, v in vars(args).items() if k != "heldout"}


def measured(model, splits, names):
    from zoo.tasks import tagging

    results = tagging.evaluate(model, {n: splits[n] for n in names}, splits["train"].word_forms())
    for name in names:
        print(f"[zoo]   model on {name}: " + ", ".join(
            f"{s} {r['accuracy']:.4f} (unseen {r['unseen_word_accuracy']:.4f})" for s, r in results[name].items()))
    return results


#: The CRF and perceptron baselines run on tag sets of at most this many tags: the 12 universal tags
#: and the 17 UPOS, not Brown's ~450 full tags (the CRF's training time grows with the square of the
#: tag count; NLTK's perceptron scores every tag of every token in Python, and on the full Brown
#: tags did not finish 5 iterations in 15 minutes).
COSTLY_BASELINES_MAX_TAGS = 50


def baselines_for(splits, names, label_sets, args):
    from zoo.tasks import tagging
    from zoo.tasks.tagging_baselines import run_baselines

    results = {}
    tag_counts = {n: len(t) for n, t in tagging.tag_vocabularies(splits["train"]).items()}
    for label_set in label_sets:
        kinds = [k for k in args.baseline_kinds
                 if k == "most_frequent" or tag_counts[label_set] <= COSTLY_BASELINES_MAX_TAGS]
        if kinds:
            results[label_set] = run_baselines(splits["train"], {n: splits[n] for n in names}, label_set, kinds,
                                               args.perceptron_iterations, args.crf_iterations)
    return results


def comparison(model_results, baseline_results, split_names):
    """For each split and tag set: the model's accuracy and unseen-word accuracy beside each baseline's,
    and whether the model is above every baseline on both."""
    rows = []
    for split in split_names:
        for label_set, result in model_results[split].items():
            row = {"split": split, "tag_set": label_set, "model": result["accuracy"],
                   "model_unseen": result["unseen_word_accuracy"], "unseen_tokens": result["unseen_tokens"]}
            beats = True
            for kind, per_split in baseline_results.get(label_set, {}).items():
                b = per_split[split]
                row[kind] = b["accuracy"]
                row[f"{kind}_unseen"] = b["unseen_word_accuracy"]
                beats &= result["accuracy"] > b["accuracy"] and result["unseen_word_accuracy"] > b["unseen_word_accuracy"]
            row["above_every_baseline"] = bool(beats)
            rows.append(row)
    return rows


def verdicts(rows, data):
    """Floors and goals, in words, from the measured rows."""
    from zoo.tasks.tagging import PUBLISHED
    from zoo.tasks.tagging_baselines import BASELINE_NAMES as names

    notes = []
    for r in rows:
        where = f"{r.get('by', '')}{r['split']} ({r['tag_set']})"
        for kind in names:
            if kind not in r:
                continue
            for measure, key in (("accuracy", ""), ("unseen-word accuracy", "_unseen")):
                mine, theirs = r["model" + key], r[kind + key]
                if mine <= theirs:
                    notes.append(f"{where}: {measure} {mine:.4f} NOT above the {names[kind]}'s {theirs:.4f}"
                                 + (" (a tie)" if mine == theirs else ""))
        if r["above_every_baseline"] and any(k in r for k in names):
            notes.append(f"{where}: above every baseline on accuracy and unseen-word accuracy")
    if data == "brown":
        test = next((r for r in rows if r["split"] == "test" and r["tag_set"] == "universal"), None)
        if test:
            notes.append(f"goal ≥ 0.975 universal-tag accuracy on the Brown test split: "
                         f"{'met' if test['model'] >= 0.975 else 'missed'} ({test['model']:.4f})")
    else:
        for split, published in PUBLISHED["UDPipe 2"].items():
            r = next((r for r in rows if r["split"] == split), None)
            if r:
                gap = published - 100 * r["model"]
                notes.append(f"{split}: {100 * r['model']:.2f} vs UDPipe 2 {published} (official UD split, not "
                             f"ours): {gap:.2f} points behind" + (" — within 1 point" if gap <= 1 else ""))
    return notes


def main(argv=None):
    args = parse_args(argv)
    from zoo import hub, training
    from zoo.data import tagging as tagging_data
    from zoo.tasks import tagging
    from zoo.tasks.tagging_baselines import comparison_table

    started = time.time()
    splits = load_splits(args)
    label_sets = splits["train"].label_sets
    print(f"[zoo] {args.data}: " + ", ".join(f"{k} {len(v)} sentences / {v.tokens()} tokens"
                                             for k, v in splits.items()))
    if args.document_folds:
        return document_folds(splits, args)
    model, run = train_tagger(splits, args, os.path.join(args.run_dir, "main"))
    if args.validation_only:
        # Choosing between settings: the test and out-of-domain sets stay unread, nothing is exported.
        results = measured(model, splits, ["validation"])
        baseline_results = baselines_for(splits, ["validation"], label_sets, args)
        rows = comparison(results, baseline_results, ["validation"])
        from zoo.data.cache import atomic_write_text

        atomic_write_text(os.path.join(args.run_dir, "validation.json"), json.dumps(
            {"settings": settings_record(args), "training": run, "rows": rows},
            indent=1, default=str))
        return {"validation": rows}
    evaluated = ["validation", "test"] + [n for n in splits if n not in ("train", "validation", "test")]
    results = measured(model, splits, evaluated)
    baseline_results = baselines_for(splits, evaluated, label_sets, args)
    rows = comparison(results, baseline_results, [n for n in evaluated if n != "validation"])

    transfer = None
    if args.heldout:
        print(f"[zoo] transfer: the same recipe without the genres {', '.join(args.heldout)}")
        held = load_splits(args, args.heldout)
        transfer_model, transfer_run = train_tagger(held, args, os.path.join(args.run_dir, "transfer"))
        transfer_results = measured(transfer_model, held, ["test", "heldout_genres"])
        transfer_baselines = baselines_for(held, ["test", "heldout_genres"], label_sets, args)
        transfer = {
            "heldout_genres": list(args.heldout),
            "note": "A second model, trained by the same recipe on the split without these genres "
                    "(train/validation/test of the other genres); 'heldout_genres' is every document "
                    "of the held-out genres. Its baselines are trained on the same reduced split.",
            "rows": [dict(r, by="transfer model, ")
                     for r in comparison(transfer_results, transfer_baselines, ["test", "heldout_genres"])],
            "model": transfer_results,
            "baselines": transfer_baselines,
            "training": {k: v for k, v in transfer_run.items() if k != "history"},
        }
        del transfer_model
    print(comparison_table(rows + (transfer["rows"] if transfer else [])))

    train_words = splits["train"].word_forms()
    data = tagging_data.describe(splits, args.data, args.seed, ())
    data["seed"] = args.seed
    data["unseen_word_share"] = {n: round(tagging.unseen_share(splits[n], train_words), 4) for n in evaluated}
    if args.max_sentences:
        data["max_sentences_per_split"] = args.max_sentences
    language = "English" if args.data == "brown" else "Portuguese"
    card = {
        "task": tagging.TASK,
        "io": tagging.IO_TYPE,
        "description": (f"{language} part-of-speech tagger: text (or tokens) in, one tag per word out "
                        f"({', '.join(f'{n}: {len(t)} tags' for n, t in model.tag_sets.items())})."),
        "architecture": tagging.describe_architecture(
            model, args.cell, args.char_cell, args.units, args.layers, args.char_units, args.word_dim,
            args.char_dim, args.dropout, args.word_dropout, args.characters, args.suffix_length, args.suffix_dim,
            args.shape, run.get("lexicon_pretraining")),
        "parameters": int(model.count_params()),
        "inputs": "words string [batch, time] (\"\" pads); the serving signature also takes raw texts "
                  "and tokenises them (zoo.tasks.tagging.tokenize)",
        "outputs": "per tag set, probabilities [batch, time, tags]",
        "tag_sets": model.tag_sets,
        "dataset": data,
        "metrics": results,
        "baselines": baseline_results,
        "comparison": rows,
        "transfer": transfer,
        "published": {"UDPipe 2 UPOS (official UD splits, which differ from ours)":
                      tagging.PUBLISHED["UDPipe 2"]} if args.data == "porttinari" else {},
        "verdicts": verdicts(rows + (transfer["rows"] if transfer else []), args.data),
        "training": {
            "seconds": run["seconds"],  # the character reader's lexicon pretraining included
            "lexicon_pretraining": run.get("lexicon_pretraining"),
            "weight_average": run.get("weight_average"),  # --average-epochs: what was compared and kept
            "seconds_with_transfer_model": round(run["seconds"] + (transfer["training"]["seconds"] if transfer else 0), 1),
            "epochs_run": run["epochs_run"],
            "best_epoch": run["best_epoch"],
            "tokens_per_second": run["tokens_per_second"],
            "resumed": bool(run.get("resumed")),
            "hardware": training.hardware_description(),
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
            "wall_seconds": round(time.time() - started, 1),
        },
        "command": recipe_command("recipes/tagging.py", argv),
        "license": "Model: Apache-2.0 (this project). Data: " + data["license"]
                   + (f"; {run['lexicon_pretraining']['license']}" if run.get("lexicon_pretraining") else ""),
        "created": time.strftime("%Y-%m-%d"),
    }
    results_path = os.path.join(args.run_dir, "results.md")
    with open(results_path, "w", encoding="utf-8") as handle:
        handle.write(comparison_table(rows + (transfer["rows"] if transfer else [])) + "\n")
    tagging.compile_model(model, args.learning_rate)  # a fresh optimizer: the exported file carries no Adam moments
    main_dir = os.path.join(args.run_dir, "main")
    path = hub.export_model(
        args.name, model, card, tagging.write_serving,
        extra_files=training.run_artifacts(main_dir) + [(results_path, "results.md")],
        root=args.output_dir,
    )
    training.clear_checkpoints(main_dir)
    if args.heldout:
        training.clear_checkpoints(os.path.join(args.run_dir, "transfer"))
    print(f"[zoo] wrote {path}")
    return card


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
