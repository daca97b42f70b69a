"""
Title: Language models with a zoo LSTM: Penn Treebank words and Shakespeare characters
Description: Train a stateful recurrent language model with truncated BPTT, score it beside a
Kneser–Ney n-gram of the same run, and export a text generator / scorer.

Two data sets, one recipe (`--data`):

* `ptb` (Mikolov's Penn Treebank: 929k / 74k / 82k words, 10k vocabulary): a
  word model in the configuration of Zaremba et al.'s small model (2 × 200
  LSTM, truncated BPTT over 35 steps, SGD with their learning-rate schedule,
  clipping) with tied input/output embeddings and dropout. Beside it, the
  interpolated modified Kneser–Ney 5-gram of the same tokens and the published
  test perplexities on the same split. `--preset medium` gives Zaremba's
  medium model (2 × 650, dropout 0.5, 39 epochs: a GPU configuration).
* `shakespeare` (the Gutenberg texts of 42 works; whole plays held out for
  validation and test): a character model, in bits per character beside a
  character Kneser–Ney n-gram whose order is chosen on the validation plays.

The training text is one stream cut into `batch_size` rows; consecutive windows
of `steps` tokens are consecutive batches, and the recurrent state runs on from
window to window (reset each epoch). Checkpoints every epoch (rerun the same
command after a kill to resume); the epoch with the best validation loss is
kept. Held-out text is scored exactly, as one stream. Writes
`saved_models/<name>/` (model.keras, a serving SavedModel with `generate` and
`score` signatures on raw text, card.json with seeded samples).

    python recipes/language_model.py                       # PTB, ships lm-lstm-ptb
    python recipes/language_model.py --data shakespeare    # ships lm-lstm-shakespeare
    python recipes/language_model.py --preset medium       # Zaremba's medium model (a GPU run)
    python recipes/language_model.py --max-tokens 20000 --epochs 1 --units 16 --output-dir /tmp/hub   # smoke run
"""

import json
import os
import time

from zoo.settings import Check, choices, fraction, model_name, non_negative, positive, recipe_command, settings_parser

# Settings that depend on the data (a `None` in DEFAULTS takes the preset's value).
PRESETS = {
    # Zaremba et al.'s small model, with tied embeddings and light dropout: fits 30 minutes on 2 cores.
    "small": dict(cell="lstm", units=200, layers=2, dropout=0.2, tie=True, epochs=12, batch_size=20, steps=35,
                  optimizer="sgd", learning_rate=20.0, decay_start=5, decay=0.5, clipnorm=0.25),
    # Zaremba et al.'s medium model (650 units, dropout 0.5, 39 epochs, lr ÷1.2 per epoch after 6).
    "medium": dict(cell="lstm", units=650, layers=2, dropout=0.5, tie=True, epochs=39, batch_size=20, steps=35,
                   optimizer="sgd", learning_rate=20.0, decay_start=6, decay=1 / 1.2, clipnorm=0.25),
    # A character model: one 512-unit LSTM over windows of 100 characters.
    "char": dict(cell="lstm", units=512, layers=1, dropout=0.2, tie=False, embedding_dim=64, epochs=9,
                 batch_size=64, steps=100, optimizer="adam", learning_rate=3e-3, decay_start=5, decay=0.5,
                 clipnorm=1.0),
}
DEFAULT_PRESET = {"ptb": "small", "shakespeare": "char"}

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    data="ptb",              # ptb | shakespeare
    preset=None,             # small | medium | char; default small for ptb, char for shakespeare
    cell=None,               # lstm | gru | rnn
    units=None,              # units per layer
    embedding_dim=None,      # embedding size; default (and when tied) the units
    layers=None,             # stacked recurrent layers
    dropout=None,            # on the embeddings and after every recurrent layer
    tie=None,                # output layer = the input embedding transposed (Press & Wolf 2017)
    epochs=None,             # epochs (the best by validation loss is kept)
    batch_size=None,         # parallel rows of the training stream
    steps=None,              # truncated BPTT window
    optimizer=None,          # sgd | adam
    learning_rate=None,
    decay_start=None,        # the learning rate is constant for this many epochs...
    decay=None,              # ...then multiplied by this every epoch
    clipnorm=None,           # global gradient-norm clipping
    min_char_count=20,       # characters rarer than this in training are read as <unk>
    ngram_orders="",         # Kneser–Ney orders to choose from on validation; "" = 5 for words, 3..9 for characters
    samples_length=0,        # tokens per sample in the card; 0 = 40 words / 300 characters
    seed=1337,               # seeds the initialization and dropout
    split_seed=1337,         # Shakespeare: which plays are held out
    max_tokens=None,         # use only the first N tokens of each split (smoke runs)
    name=None,               # model name; default lm-<cell>-<data>
    output_dir=None,         # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,            # checkpoints, logs, curves; default runs/<name>
)
CHECKS = dict(
    data=choices("ptb", "shakespeare"), preset=choices(*PRESETS), cell=choices("lstm", "gru", "rnn"),
    units=positive, embedding_dim=positive, layers=positive, dropout=fraction, epochs=positive,
    batch_size=positive, steps=positive,
    optimizer=choices("sgd", "adam"), learning_rate=positive, decay_start=non_negative,
    decay=Check("must be in (0, 1]", lambda value: 0 < value <= 1), clipnorm=positive,
    min_char_count=positive, samples_length=non_negative, seed=non_negative, split_seed=non_negative,
    ngram_orders=Check("must be comma-separated orders >= 1",
                       lambda value: all(v.isdigit() and int(v) >= 1 for v in value.split(",") if v)),
    max_tokens=positive, name=model_name,
)
OPTIONAL_TYPES = dict(preset=str, cell=str, units=int, embedding_dim=int, layers=int, dropout=float, tie=bool,
                      epochs=int,
                      batch_size=int, steps=int, optimizer=str, learning_rate=float, decay_start=int,
                      decay=float, clipnorm=float, max_tokens=int)
SAMPLE_PROMPTS = {"ptb": ["the company said", "in new york"], "shakespeare": ["ROMEO.\n", "First Witch.\n"]}


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, optional_types=OPTIONAL_TYPES, checks=CHECKS)
    args = parser.parse_args(argv)
    args.preset = args.preset or DEFAULT_PRESET[args.data]
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.embedding_dim = args.embedding_dim or args.units
    if args.tie and args.embedding_dim != args.units:
        parser.error(f"--embedding-dim {args.embedding_dim} must equal --units {args.units} with a tied output "
                     f"layer (or pass --no-tie)")
    args.name = args.name or f"lm-{args.cell}-{args.data}" + ("-medium" if args.preset == "medium" else "")
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    from zoo import hub, training
    from zoo.data import language
    from zoo.data.cache import atomic_write_text
    from zoo.tasks import language_model as task
    from zoo.tasks.ngram import KneserNey

    training.seed_everything(args.seed)
    started = time.time()

    # -- prepare the data ---------------------------------------------------
    tokens, split = task.load_tokens(args.data, args.split_seed, args.max_tokens)
    level, start = task.LEVELS[args.data]
    codec = task.TextCodec.from_training_tokens(level, tokens["train"], start,
                                                min_count=args.min_char_count if level == "char" else 1)
    tokens[task.OUT_OF_DOMAIN] = task.out_of_domain_tokens(codec, args.max_tokens)
    ids = {name: codec.encode(t) for name, t in tokens.items()}
    unit = codec.unit
    print(f"[zoo] {args.data}: " + ", ".join(f"{n} {len(t):,} {unit}s" for n, t in tokens.items())
          + f"; vocabulary {len(codec.vocabulary):,} (with <pad>)")

    # -- the n-gram baseline of this run (its order chosen on validation) -----
    orders = [int(v) for v in args.ngram_orders.split(",") if v] or ([5] if level == "word" else list(range(3, 10)))
    baseline_started = time.time()
    # the n-gram reads the tokens as the model does: rare characters as <unk>, no <pad>
    as_read = {n: [codec.vocabulary[i] for i in v] for n, v in ids.items()}
    ngram = KneserNey(as_read["train"], order=max(orders), vocabulary=codec.vocabulary[1:],
                      keep_lower_orders=len(orders) > 1)
    context = [start]
    by_order = {o: ngram.with_order(o).evaluate(as_read["validation"], context=context) for o in orders}
    best_order = min(orders, key=lambda o: by_order[o]["perplexity"])
    chosen = ngram.with_order(best_order)
    ngram_metrics = {"order": best_order,
                     "validation": {k: by_order[best_order][k] for k in ("perplexity", "bits_per_token")},
                     **{name: {k: v for k, v in chosen.evaluate(as_read[name], context=context).items()
                               if k in ("perplexity", "bits_per_token")} for name in ("test", task.OUT_OF_DOMAIN)},
                     "validation_by_order": {str(o): round(by_order[o]["perplexity"], 4) for o in orders},
                     "seconds": round(time.time() - baseline_started, 1)}
    del ngram, chosen, as_read
    print(f"[zoo] Kneser–Ney {best_order}-gram: validation perplexity {ngram_metrics['validation']['perplexity']:.2f}, "
          f"test {ngram_metrics['test']['perplexity']:.2f} ({ngram_metrics['test']['bits_per_token']:.4f} bits/"
          f"{unit}; {ngram_metrics['seconds']:.0f} s)")

    # -- build the model ------------------------------------------------------
    model = task.build_model(len(codec.vocabulary), units=args.units, num_layers=args.layers, cell=args.cell,
                             dropout=args.dropout, tie=args.tie, embedding_dim=args.embedding_dim,
                             name=args.name.replace("-", "_"))
    trainer = task.build_training_model(model, args.batch_size)
    task.compile_training(trainer, args.learning_rate, args.clipnorm, optimizer=args.optimizer)
    model.summary(print_fn=lambda line, **_: print(line))
    train_ds = task.stream_windows(ids["train"], args.batch_size, args.steps)
    val_ds = task.stream_windows(ids["validation"], args.batch_size, args.steps)

    # -- train: truncated BPTT, stateful across windows, reset every epoch ----
    schedule = task.EpochLearningRate(args.learning_rate, args.decay_start, args.decay)
    fit_started = time.time()
    run = training.fit(trainer, train_ds, val_ds, epochs=args.epochs, run_dir=args.run_dir,
                       monitor="val_loss", patience=args.epochs,
                       extra_callbacks=[task.ResetStatesEachEpoch(), schedule])
    task.copy_weights(trainer, model)
    task.round_embedding_to_float16(model)  # as the SavedModel stores it
    # the recorded training time (every run of the command, killed ones included) stands for this
    # process's time in `fit` (nothing when a finished run was reused after a kill during the export)
    train_seconds, fit_seconds = run["seconds"], time.time() - fit_started

    # -- evaluate: every held-out token, read as one stream --------------------
    metrics = {}
    for name in task.HELD_OUT:
        result = task.stream_log_likelihood(model, ids[name], codec.start_id)
        metrics[name] = {k: result[k] for k in ("perplexity", "bits_per_token")}
        print(f"[zoo] {name}: perplexity {result['perplexity']:.2f}, {result['bits_per_token']:.4f} bits/{unit} "
              f"({result['tokens']:,} {unit}s)")
    metrics["versus_ngram"] = {}
    for name in ("test", task.OUT_OF_DOMAIN):
        metrics["versus_ngram"].update({
            f"{name}_perplexity_ratio": metrics[name]["perplexity"] / ngram_metrics[name]["perplexity"],
            f"{name}_bits_per_token_gain": ngram_metrics[name]["bits_per_token"] - metrics[name]["bits_per_token"],
        })
    throughput = task.measure_throughput(trainer, train_ds)
    print(f"[zoo] training {throughput['train_tokens_per_second']:.0f} {unit}s/s; the output layer takes "
          f"{throughput['softmax_share_of_step']:.0%} of a step")

    samples_length = args.samples_length or (40 if level == "word" else 300)
    samples = task.make_samples(model, codec, SAMPLE_PROMPTS[args.data], temperatures=(0.7, 1.0),
                                length=samples_length, seed=7, top_k=40 if level == "char" else 0)
    metrics["samples"] = {"reproduced": 1.0}  # re-checked below on the exported model, and by `zoo verify`
    for sample in samples:
        print(f"[zoo] sample (temperature {sample['temperature']}): {sample['prompt']!r} → {sample['text']!r}")

    # -- the card and the export ----------------------------------------------
    dataset = {"name": args.data, "level": level,
               "tokens": {n: len(t) for n, t in tokens.items()},
               "license": language.LICENSES[args.data], **split}
    if args.max_tokens:
        dataset["max_tokens"] = args.max_tokens
    card = {
        "task": task.TASK,
        "io": task.IO_TYPE,
        "description": ("English text in, the probability of every next word out (Penn Treebank "
                        "conventions: lower case, numbers as N, 10k words); generates and scores text."
                        if level == "word" else
                        "Text in, the probability of every next character out, trained on Shakespeare's "
                        "plays and poems; writes Shakespeare-like text from a prompt and scores text in "
                        "bits per character."),
        "architecture": (f"token ids → Embedding({args.embedding_dim}) → Dropout({args.dropout}) → "
                         f"[zoo {args.cell.upper()}({args.units}) → Dropout({args.dropout})] × {args.layers} → "
                         + ("logits = h·Eᵀ + b (tied to the input embedding)" if args.tie
                            else f"Dense({len(codec.vocabulary)}) logits")
                         + "; stateful truncated BPTT"),
        "parameters": int(model.count_params()),
        "inputs": "Keras model: tokens int32 [batch, time] (0 = padding) and the states rnn_<i>_h (_c) "
                  "float32 [batch, units]; SavedModel 'score': texts string [batch]; 'generate': prompts "
                  "string [batch], max_length int32, temperature float32, top_k int32, top_p float32, seed int64",
        "outputs": "Keras model: logits [batch, time, vocab] and the final states; SavedModel 'score': "
                   "log_prob, tokens, perplexity, bits_per_token per text; 'generate': texts",
        "codec": codec.config(),
        "dataset": dataset,
        "metrics": metrics,
        "metric_notes": {
            "perplexity": f"exp of the mean −log p of every {unit} of the split, read as one stream after "
                          f"{start!r} with the state carried throughout (none dropped)",
            "bits_per_token": f"the same mean in bits (bits per {unit})",
            "versus_ngram": "on the test split and on the out-of-domain Brown text: the model's perplexity "
                            f"over the n-gram's, and the n-gram's bits per {unit} minus the model's",
            task.OUT_OF_DOMAIN: "out of domain: see dataset.out_of_domain",
            "samples.reproduced": "share of the card's samples that the exported model regenerates exactly",
        },
        "baselines": {"kneser_ney": ngram_metrics},
        "published": task.PUBLISHED_PTB if args.data == "ptb" else {},
        "samples": samples,
        "throughput": {**throughput, "hardware": training.hardware_description()},
        "training": {
            "epochs_run": run["epochs_run"],
            "best_epoch": run["best_epoch"],
            "seconds": round(train_seconds, 1),
            "resumed": run["resumed"],
            "hardware": training.hardware_description(),
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
        },
        "command": recipe_command("recipes/language_model.py", argv),
        "license": "Model and code: Apache-2.0 (this project). Data: " + language.LICENSES[args.data],
        "created": time.strftime("%Y-%m-%d"),
    }
    task.compile_model(model)

    def write_serving(keras_model, path):
        task.write_serving(keras_model, path, codec)

    path = hub.export_model(args.name, model, card, write_serving,
                            extra_files=[os.path.join(args.run_dir, "training_curve.png"),
                                         os.path.join(args.run_dir, "history.csv")],
                            root=args.output_dir)
    # The exported files must give the card's samples: regenerate them from model.keras.
    loaded = hub.load(str(path), compile=False)
    reproduced = {"reproduced": task.reproduced_samples(loaded, codec, samples)}
    serving = tf.saved_model.load(str(path / hub.SERVING_DIR))
    scored = serving.signatures["score"](texts=tf.constant([codec.join(tokens["test"][:50])]))
    print(f"[zoo] SavedModel score of the first 50 test {unit}s: perplexity {float(scored['perplexity'][0]):.2f}")
    card = json.loads((path / hub.CARD_FILE).read_text(encoding="utf-8"))
    card["metrics"]["samples"] = reproduced
    card["total_seconds"] = round(time.time() - started - fit_seconds + train_seconds, 1)
    atomic_write_text(path / hub.CARD_FILE, hub.card_json(card))
    if reproduced["reproduced"] != 1.0:
        print("[zoo] WARNING: the exported model does not regenerate every sample of the card")
    training.clear_checkpoints(args.run_dir)  # published: the next run of the command trains afresh
    print(f"[zoo] wrote {path} ({card['total_seconds']:.0f} s in all)")
    return card


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
