"""
Title: Time-series classification with a bidirectional zoo GRU beside a small FCN
Description: Train several seeds per UCR/UEA set, compare with 1-NN ED/DTW and published anchors, export.

Reads a set of the UCR/UEA time-series classification archive in its `.ts`
format (one of the six shipped in the aeon 1.6.0 wheel, or any
`<Name>_TRAIN.ts` path) with the archive's own train/test split. Raw series
go into the model, which scales them itself (z-normalisation of each series
for univariate sets, the training set's per-channel mean/sd for multivariate
ones) and masks padding, so variable-length sets (JapaneseVowels: 7-29 steps
of 12 LPC cepstra) need no preprocessing. Two branches read the series: a
three-layer FCN (Conv1D → BatchNorm → ReLU, LSTM-FCN style, Karim et al.
2017) and a masked bidirectional zoo GRU over mean-pooled steps; their
masked means over time feed a softmax.

Training may augment the series (window slicing, magnitude scaling, jitter;
inside the model, off at inference). For each seed a stratified validation
split is cut from the TRAINING set; early stopping (on validation loss) uses
it alone, never the archive's TEST split. The model of a set is the ensemble
of its seeds (one Keras model averaging their probabilities; each seed saw a
different 80% of TRAIN), or with --no-ensemble the seed with the lowest
validation loss. The TEST split is scored once at the end,
beside 1-NN Euclidean and 1-NN DTW (full window) and the published
accuracies of FCN, ResNet, TWIESN (Fawaz et al. 2019) and InceptionTime
(Fawaz et al. 2020). Checkpoints every epoch (rerun the same command after a
kill to resume). Writes `saved_models/<name>/` (model.keras, serving
SavedModel, card.json with the table, results.md).

    python recipes/timeseries_classification.py                      # JapaneseVowels alone
    python recipes/timeseries_classification.py --dataset all        # the six sets + table; ships JapaneseVowels
    python recipes/timeseries_classification.py --dataset GunPoint --cell lstm
    python recipes/timeseries_classification.py --dataset data/Foo_TRAIN.ts   # any set in the .ts format
    python recipes/timeseries_classification.py --epochs 1 --seeds 1 --output-dir /tmp/hub   # smoke run
"""

import os
import re
import shlex
import time

import numpy as np

from zoo.settings import (Check, at_least, choices, fraction, model_name, non_negative, positive,
                          recipe_command, settings_parser)

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    dataset="JapaneseVowels",  # a shipped UCR/UEA set, a path to <Name>_TRAIN.ts, or "all" (the six sets)
    ship="JapaneseVowels",     # with --dataset all: the set whose model is exported
    cell="gru",                # recurrent cell: gru | lstm | rnn
    units=32,                  # hidden units per direction
    filters=32,                # FCN branch filters: (f, 2f, f) with kernels (8, 5, 3)
    pool=0,                    # steps averaged per recurrent step (0: auto, about 64 recurrent steps)
    scaling="auto",            # series | global | both | auto (series if univariate, else global)
    recurrent=True,            # the bidirectional recurrent branch
    convolutional=True,        # the FCN branch
    dropout=0.2,               # dropout before the classifier
    augment=True,              # training-only augmentation: window slicing, magnitude scaling, jitter
    crop=0.1,                  # augmentation: at most this fraction of each series cut (window slicing)
    magnitude=0.1,             # augmentation: sd of the per-feature scale factor around 1
    jitter=0.05,               # augmentation: sd of the noise added to the scaled series
    ensemble=True,             # the exported model averages every seed's probabilities (else: the best seed)
    epochs=150,                # maximum epochs (early stopping usually ends sooner)
    min_batches=16,            # batches per epoch at least (small sets are passed over several times)
    patience=25,               # epochs without val_loss improvement before stopping
    lr_decay=0.97,             # learning rate x this after each epoch without improvement
    batch_size=16,
    learning_rate=2e-3,
    validation_fraction=0.2,   # of each class of the TRAINING split, held out for early stopping
    seeds=3,                   # runs per set (seed, seed+1, ...): the card reports mean ± sd
    seed=1337,                 # seeds the validation split, the initialization and the shuffling
    baselines=True,            # score 1-NN Euclidean and 1-NN DTW on the same split
    dtw_jobs=1,                # threads of the DTW baseline
    max_examples=None,         # use only the first N series of each split (smoke runs)
    name=None,                 # model name; default timeseries-classification-<set>
    output_dir=None,           # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,              # checkpoints, logs, curves; default runs/<name>
)
# What each setting must be (checked before anything runs; float settings must also be finite).
CHECKS = dict(
    dataset=Check("must be a set name, a path or 'all'", lambda value: bool(value.strip())),
    cell=choices("gru", "lstm", "rnn"), units=positive, filters=positive, pool=non_negative,
    scaling=choices("auto", "series", "global", "both"), dropout=fraction, epochs=positive,
    crop=Check("must be in [0, 1)", lambda value: 0 <= value < 1), magnitude=non_negative,
    jitter=non_negative,
    patience=non_negative, lr_decay=Check("must be in (0, 1]", lambda value: 0 < value <= 1),
    batch_size=positive, min_batches=positive, learning_rate=positive,
    validation_fraction=Check("must be in (0, 1)", lambda value: 0 < value < 1),
    seeds=positive, seed=non_negative, dtw_jobs=at_least(1), max_examples=at_least(4),
    name=model_name,
)
KERNELS = (8, 5, 3)


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_examples": int}, checks=CHECKS)
    args = parser.parse_args(argv)
    if args.dataset == "all":
        args.datasets = list(DATASETS())
        if args.ship not in args.datasets:
            parser.error(f"--ship must be one of {', '.join(args.datasets)}, received {args.ship!r}")
    else:
        args.datasets = [args.dataset]
        args.ship = args.dataset
    if not (args.recurrent or args.convolutional):
        parser.error("--no-recurrent and --no-convolutional leave no model")
    args.name = args.name or f"timeseries-classification-{slug(args.ship)}"
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def DATASETS():
    from zoo.tasks import timeseries_classification

    return timeseries_classification.DATASETS


def slug(dataset):
    """A directory-safe lower-case name of a set (its file name for a path)."""
    base = os.path.basename(str(dataset).rstrip("/\\"))
    base = re.sub(r"_(TRAIN|TEST)\.ts$", "", base)
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "set"


def subset(split, indices):
    return type(split)([split.series[i] for i in indices], [split.labels[i] for i in indices],
                       split.class_names, split.name)


def load_splits(dataset, max_examples):
    from zoo.data.timeseries import load_ucr

    splits = load_ucr(dataset)
    if max_examples:
        splits = {k: subset(s, range(min(max_examples, len(s)))) for k, s in splits.items()}
    return splits


def dataset_card(dataset, splits, max_examples):
    from zoo.data.timeseries import AEON_WHEEL, UCR_NAMES

    train, test = splits["train"], splits["test"]
    lengths = [len(s) for s in train.series + test.series]
    shipped = dataset in UCR_NAMES or not ("/" in dataset or dataset.endswith(".ts") or os.path.isdir(dataset))
    card = {
        "name": dataset if shipped else (train.name or slug(dataset)),
        "source": (f"UCR/UEA archive .ts files in the {AEON_WHEEL[0]} {AEON_WHEEL[1]} wheel "
                   f"(zoo.data.timeseries.load_ucr({dataset!r}))") if shipped else
                  f"{dataset} (zoo.data.timeseries.load_ucr)",
        "train_series": len(train),
        "test_series": len(test),
        "features": train.dims,
        "lengths": [int(min(lengths)), int(max(lengths))],
        "class_names": list(train.class_names),
    }
    if not shipped:
        card["path"] = os.path.abspath(dataset)
    if max_examples:
        card["max_examples_per_split"] = max_examples
    return card


def compile_for_training(model, args):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def train_one_seed(splits, seed, args, run_dir):
    """Train one seed on its stratified split of the training set; returns what was measured."""
    from zoo import training
    from zoo.tasks import timeseries_classification as tsc

    train = splits["train"]
    training.seed_everything(seed)
    fit_ids, validation_ids = tsc.stratified_split(train.label_ids(), args.validation_fraction, seed)
    fit_split, validation_split = subset(train, fit_ids), subset(train, validation_ids)
    fit_series = tsc.check_series(fit_split.series, min_length=1)
    model = tsc.build_model(
        fit_series, train.class_names, cell=args.cell, units=args.units,
        filters=(args.filters, 2 * args.filters, args.filters), kernels=KERNELS,
        pool=args.pool or None, scaling=args.scaling, dropout=args.dropout,
        recurrent=args.recurrent, convolutional=args.convolutional, augment=augmentation(args, seed),
        name=f"tsc_seed_{seed}")
    compile_for_training(model, args)
    train_ds = tsc.as_dataset(fit_series, fit_split.label_ids(), args.batch_size, shuffle=True, seed=seed,
                              min_batches=args.min_batches)
    validation_ds = tsc.as_dataset(tsc.check_series(validation_split.series, min_length=1),
                                   validation_split.label_ids(), 256)
    run = training.fit(model, train_ds, validation_ds, epochs=args.epochs, run_dir=run_dir,
                       monitor="val_loss", patience=args.patience, verbose=0, tensorboard=False,
                       lr_decay=args.lr_decay if args.lr_decay < 1 else None)
    validation = tsc.evaluate(model, validation_split)
    test = tsc.evaluate(model, splits["test"])
    print(f"[zoo]   seed {seed}: {run['epochs_run']} epochs (best {run['best_epoch']}), "
          f"{run['seconds']:.0f} s | validation accuracy {validation['accuracy']:.3f} "
          f"loss {validation['log_loss']:.3f} | test accuracy {test['accuracy']:.4f}")
    return {"seed": seed, "model": model, "run": run, "validation": validation, "test": test,
            "validation_indices": [int(i) for i in validation_ids]}


def augmentation(args, seed):
    """The `SeriesAugmentation` arguments of the settings (None: no augmentation)."""
    if not args.augment:
        return None
    return {"crop": args.crop, "scale": args.magnitude, "noise": args.jitter, "seed": seed}


def mean_sd(values):
    values = np.asarray(values, np.float64)
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return round(float(np.mean(values)), 6), round(sd, 6)


def run_dataset(dataset, args, run_root):
    """Every seed of one set, plus the baselines: the set's row of the table and its best model."""
    from zoo.tasks import timeseries_classification as tsc

    splits = load_splits(dataset, args.max_examples)
    train, test = splits["train"], splits["test"]
    label = dataset_card(dataset, splits, args.max_examples)["name"]
    print(f"[zoo] {label}: train {len(train)}, test {len(test)}, {train.dims} feature(s), "
          f"{len(train.class_names)} classes")
    runs = [train_one_seed(splits, args.seed + i, args, os.path.join(run_root, slug(dataset), f"seed-{args.seed + i}"))
            for i in range(args.seeds)]
    best = min(runs, key=lambda r: (r["validation"]["log_loss"], -r["validation"]["accuracy"]))
    accuracy, sd = mean_sd([r["test"]["accuracy"] for r in runs])
    if args.ensemble and len(runs) > 1:
        model = tsc.ensemble_model([r["model"] for r in runs], train.class_names)
        test_metrics = tsc.evaluate(model, splits["test"])
        kind = f"ensemble: the mean of the {len(runs)} seeds' probabilities"
    else:
        model, test_metrics = best["model"], best["test"]
        kind = f"seed {best['seed']} (the lowest validation loss of {len(runs)})"
    exported = {"model": model, "test": test_metrics, "kind": kind, "best": best, "runs": runs}
    row = {
        "dataset": label,
        "test_accuracy": test_metrics["accuracy"],
        "model": kind,
        "test_accuracy_mean": accuracy,
        "test_accuracy_sd": sd,
        "test_accuracy_per_seed": [r["test"]["accuracy"] for r in runs],
        "validation_accuracy_mean": mean_sd([r["validation"]["accuracy"] for r in runs])[0],
        "validation_accuracy_per_seed": [r["validation"]["accuracy"] for r in runs],
        "lowest_validation_loss_seed": best["seed"],
        "epochs_run": [r["run"]["epochs_run"] for r in runs],
        "best_epochs": [r["run"]["best_epoch"] for r in runs],
        "training_seconds": round(sum(r["run"]["seconds"] for r in runs), 1),
        "parameters": int(model.count_params()),
    }
    if args.baselines:
        started = time.time()
        euclidean = tsc.one_nn_euclidean(train, test)
        dtw = tsc.one_nn_dtw(train, test, n_jobs=args.dtw_jobs)
        row["one_nn_euclidean"] = euclidean["accuracy"]
        row["one_nn_dtw"] = dtw["accuracy"]
        row["baseline_seconds"] = round(time.time() - started, 1)
        row["baseline_length_handling"] = {"euclidean": euclidean["length_handling"],
                                           "dtw": dtw["length_handling"]}
        published = tsc.PUBLISHED_1NN_ERRORS.get(label)
        if published and not args.max_examples:
            row["published_1nn_errors"] = published
        print(f"[zoo]   1-NN Euclidean {euclidean['accuracy']:.4f}, 1-NN DTW {dtw['accuracy']:.4f}")
    if label in tsc.ANCHORS:
        row["anchors"] = tsc.ANCHORS[label]
    command = ["python recipes/timeseries_classification.py", "--dataset", shlex.quote(dataset)]
    command += changed_settings(args)
    row["command"] = " ".join(command)
    print(f"[zoo] {label}: test accuracy {test_metrics['accuracy']:.4f} ({kind}); seeds {accuracy:.4f} "
          f"± {sd:.4f} over {args.seeds} seed(s)")
    return row, exported, splits


def changed_settings(args):
    """The command-line flags of every setting that differs from its default (for the table's commands)."""
    from zoo.settings import flag_name

    flags = []
    for key, default in DEFAULTS.items():
        if key in ("dataset", "ship", "name", "output_dir", "run_dir", "dtw_jobs"):
            continue
        value = getattr(args, key)
        if value == default:
            continue
        if isinstance(default, bool):
            flags.append(flag_name(key) if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag_name(key), shlex.quote(str(value))]
    return flags


def summary_of(rows):
    """Means over the sets of the table (only over sets where every column has a value)."""
    from zoo.tasks import timeseries_classification as tsc

    summary = {"sets": len(rows),
               "model_test_accuracy": round(float(np.mean([r["test_accuracy"] for r in rows])), 4),
               "seed_mean_test_accuracy": round(float(np.mean([r["test_accuracy_mean"] for r in rows])), 4),
               "validation_accuracy": round(float(np.mean([r["validation_accuracy_mean"] for r in rows])), 4)}
    for key in ("one_nn_euclidean", "one_nn_dtw"):
        if all(key in r for r in rows):
            summary[key] = round(float(np.mean([r[key] for r in rows])), 4)
    for anchor in ("InceptionTime", "FCN", "ResNet", "TWIESN"):
        values = [tsc.ANCHORS.get(r["dataset"], {}).get(anchor) for r in rows]
        if values and all(v is not None for v in values):
            summary[anchor] = round(float(np.mean(values)), 4)
    twiesn = [r for r in rows if tsc.ANCHORS.get(r["dataset"], {}).get("TWIESN") is not None]
    summary["sets_below_TWIESN"] = [r["dataset"] for r in twiesn
                                    if r["test_accuracy"] <= tsc.ANCHORS[r["dataset"]]["TWIESN"]]
    return summary


def results_table(rows, summary):
    """The table as Markdown (written next to the model)."""
    def number(value):
        return "–" if value is None else f"{value:.3f}"

    lines = ["| set | this model | seeds (mean ± sd) | 1-NN ED | 1-NN DTW | FCN | ResNet | TWIESN | "
             "InceptionTime | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r.get("anchors", {})
        lines.append(f"| {r['dataset']} | {r['test_accuracy']:.3f} | "
                     f"{r['test_accuracy_mean']:.3f} ± {r['test_accuracy_sd']:.3f} | "
                     f"{number(r.get('one_nn_euclidean'))} | {number(r.get('one_nn_dtw'))} | "
                     f"{number(a.get('FCN'))} | {number(a.get('ResNet'))} | {number(a.get('TWIESN'))} | "
                     f"{number(a.get('InceptionTime'))} | {r['training_seconds']:.0f} |")
    lines.append(f"| **mean** | {summary['model_test_accuracy']:.3f} | {summary['seed_mean_test_accuracy']:.3f} | "
                 f"{number(summary.get('one_nn_euclidean'))} | "
                 f"{number(summary.get('one_nn_dtw'))} | {number(summary.get('FCN'))} | "
                 f"{number(summary.get('ResNet'))} | {number(summary.get('TWIESN'))} | "
                 f"{number(summary.get('InceptionTime'))} | |")
    lines.append("")
    models = sorted({r["model"].split(":")[0].split(" (")[0] for r in rows})
    what = ("the ensemble (mean of every seed's probabilities)" if models == ["ensemble"] else
            "the exported model (" + "; ".join(sorted({r["model"] for r in rows})) + ")")
    lines.append(f"Test accuracy on the archive's TEST split: \"this model\" is {what}; \"seeds\" is the "
                 "mean ± sample sd of the single seeds' accuracies. Reproduce a row with its command:")
    lines.append("")
    lines += [f"- {r['dataset']}: `{r['command']}`" for r in rows]
    return "\n".join(lines) + "\n"


def honest_comparison(rows, summary):
    """Where the network loses to the baselines and anchors, in words, from the measured table."""
    from zoo.tasks import timeseries_classification as tsc

    notes = []
    for r in rows:
        mine = r["test_accuracy"]
        losses = [f"1-NN {name} ({r[key]:.3f})" for name, key in (("ED", "one_nn_euclidean"), ("DTW", "one_nn_dtw"))
                  if key in r and r[key] > mine]
        losses += [f"{anchor} ({value:.3f})" for anchor, value in tsc.ANCHORS.get(r["dataset"], {}).items()
                   if value is not None and value > mine]
        if losses:
            notes.append(f"{r['dataset']}: {mine:.3f} is below " + ", ".join(losses))
    if "InceptionTime" in summary:
        gap = summary["InceptionTime"] - summary["model_test_accuracy"]
        notes.append(f"mean over the sets: {summary['model_test_accuracy']:.3f} vs InceptionTime "
                     f"{summary['InceptionTime']:.3f} ({100 * gap:.1f} points behind)" if gap > 0 else
                     f"mean over the sets: {summary['model_test_accuracy']:.3f}, at or above InceptionTime "
                     f"{summary['InceptionTime']:.3f}")
    notes.append("the anchors are means of many runs of much larger networks trained for 1500-2000 epochs; "
                 "these models have tens of thousands of parameters and train for minutes on 2 CPU cores")
    return notes


def main(argv=None):
    args = parse_args(argv)
    from zoo import hub, training
    from zoo.data.timeseries import LICENSES
    from zoo.tasks import timeseries_classification as tsc

    started = time.time()
    rows, shipped = [], None
    for dataset in args.datasets:
        row, best, splits = run_dataset(dataset, args, args.run_dir)
        rows.append(row)
        if dataset == args.ship:
            shipped = (row, best, splits)
    summary = summary_of(rows)
    table = results_table(rows, summary)
    print(table)
    total_training = round(sum(r["training_seconds"] for r in rows), 1)
    print(f"[zoo] training time, all sets and seeds: {total_training:.0f} s "
          f"(wall time with baselines and evaluation {time.time() - started:.0f} s)")

    row, exported, splits = shipped
    model, best, runs = exported["model"], exported["best"], exported["runs"]
    ensemble = len(runs) > 1 and args.ensemble
    data = dataset_card(args.ship, splits, args.max_examples)
    if ensemble:
        data["split"] = ("the archive's TRAIN/TEST split; each seed holds out its own stratified "
                         f"{args.validation_fraction:.0%} of each class of TRAIN (numpy seed = the seed) "
                         "for early stopping, so the ensemble has no held-out validation set of its own")
    else:
        data["validation_seed"] = best["seed"]
        data["validation_indices"] = best["validation_indices"]
        data["split"] = ("the archive's TRAIN/TEST split; validation = a stratified "
                         f"{args.validation_fraction:.0%} of each class of TRAIN (numpy seed {best['seed']})")
    baselines = {}
    if args.baselines:
        baselines = {"1-NN Euclidean": {"accuracy": row["one_nn_euclidean"],
                                        "length_handling": row["baseline_length_handling"]["euclidean"]},
                     "1-NN DTW (full window)": {"accuracy": row["one_nn_dtw"],
                                                "length_handling": row["baseline_length_handling"]["dtw"]}}
        if "published_1nn_errors" in row:
            baselines["published_1nn_errors"] = row["published_1nn_errors"]
    scaling = args.scaling if args.scaling != "auto" else tsc.default_scaling(splits["train"].dims)
    member = best["model"]
    pool = member.get_layer("time_pooling").pool if args.recurrent else None
    architecture = tsc.describe_architecture(
        member, args.cell, args.units, (args.filters, 2 * args.filters, args.filters), KERNELS, pool,
        scaling, args.dropout, args.recurrent, args.convolutional)
    if args.augment:
        architecture += (f"; training only: window slicing (≤ {args.crop:.0%} cut), magnitude scaling "
                         f"(sd {args.magnitude}), jitter (sd {args.jitter}) after the scaling")
    if ensemble:
        architecture = f"mean of the class probabilities of {len(runs)} members (one per seed), each: " + architecture
    card = {
        "task": tsc.TASK,
        "io": tsc.IO_TYPE,
        "description": (f"A raw {data['features']}-feature time series (any length ≥ 2, zero-padded in a "
                        f"batch, with its true length) in, probabilities of the "
                        f"{len(data['class_names'])} classes of the UCR/UEA set {data['name']} out."),
        "architecture": architecture,
        "parameters": int(model.count_params()),
        "inputs": "series float32 [batch, time, features] (zero-padded; a not-a-number value marks a missing one) and lengths int32 "
                  "[batch]; scaling and masking happen inside the model",
        "outputs": "probabilities [batch, classes] (serving also returns class_ids and class_names)",
        "dataset": data,
        "metrics": {"test": exported["test"]} if ensemble else
                   {"test": exported["test"], "validation": best["validation"]},
        "exported_model": exported["kind"],
        "seeds": {"test_accuracy_mean": row["test_accuracy_mean"], "test_accuracy_sd": row["test_accuracy_sd"],
                  "test_accuracy_per_seed": row["test_accuracy_per_seed"],
                  "validation_per_seed": [{"seed": r["seed"], **r["validation"]} for r in runs],
                  "sd": "sample standard deviation (ddof=1) over seeds"},
        "baselines": baselines,
        "anchors": {"accuracy": tsc.ANCHORS.get(data["name"]), "source": tsc.ANCHOR_SOURCES},
        "results": {"table": rows, "summary": summary,
                    "note": "Test accuracy on each set's archive TEST split. Hyperparameters were chosen "
                            "on validation splits cut from the training sets; the TEST splits were not used "
                            "to select epochs, seeds or settings. " + (
                                "The model of each row is the ensemble of its seeds (the mean of their "
                                "probabilities); 'seeds' gives the single seeds' mean ± sd." if ensemble else
                                "The exported model is the seed with the lowest validation loss.")},
        "where_it_loses": honest_comparison(rows, summary),
        "training": {
            "seconds": row["training_seconds"],
            "seconds_all_sets": total_training,
            "epochs_run": row["epochs_run"],
            "best_epochs": row["best_epochs"],
            "curves_of_seed": best["seed"],
            "resumed": any(bool(r["run"].get("resumed")) for r in runs),
            "hardware": training.hardware_description(),
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
        },
        "command": recipe_command("recipes/timeseries_classification.py", argv),
        "license": "Model: Apache-2.0 (this project). Data: " + LICENSES["ucr"],
        "created": time.strftime("%Y-%m-%d"),
    }
    results_path = os.path.join(args.run_dir, "results.md")
    os.makedirs(args.run_dir, exist_ok=True)
    with open(results_path, "w", encoding="utf-8") as handle:
        handle.write(table)
    compile_for_training(model, args)  # a fresh optimizer: the exported file carries no Adam moments
    seed_dir = os.path.join(args.run_dir, slug(args.ship), f"seed-{best['seed']}")
    path = hub.export_model(
        args.name, model, card, tsc.write_serving,
        extra_files=training.run_artifacts(seed_dir) + [(results_path, "results.md")],
        root=args.output_dir,
    )
    training.clear_checkpoints(args.run_dir)  # published: a rerun trains afresh
    print(f"[zoo] wrote {path}")
    return card


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
