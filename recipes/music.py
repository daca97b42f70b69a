"""
Title: One-to-many melody generation conditioned on a key, with a zoo RNN
Description: Train, evaluate and export a generator of chorale-style melodies in a requested key.

Reads the soprano lines of the Bach chorales in music21's corpus (344 melodies,
each labelled with its key), split by piece with a fixed seed (pieces that share
a hymn tune stay together), and transposes the training pieces into every key
that fits the pitch range. A key id sets the initial state of a zoo LSTM (or
GRU / SimpleRNN) decoder, which learns with teacher forcing to predict the next
note event (pitch or rest, with a duration). Checkpoints every epoch (rerun
the same command after a kill to resume), stops early on validation loss,
then measures on held-out chorales: negative log-likelihood per event beside
unigram/bigram baselines, the in-key rate of melodies generated for all 24 keys
beside the real chorales' rate, and the generation speed of the exported
SavedModel. Writes `saved_models/<name>/` (model.keras, serving SavedModel with
an in-graph `generate` signature, card.json).

    python recipes/music.py                       # the shipped music-lstm-chorales
    python recipes/music.py --cell gru --units 192
    python recipes/music.py --max-train-pieces 12 --epochs 1 --units 16 --output-dir /tmp/hub   # smoke run
"""

import json
import os
import time

from zoo.settings import choices, fraction, model_name, non_negative, positive, recipe_command, settings_parser

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    cell="lstm",             # recurrent cell: lstm | gru | rnn
    units=256,               # size of the decoder state
    key_embedding_dim=32,    # size of the learned key vector
    token_embedding_dim=64,  # size of the event-token embedding
    key_every_step=True,     # also feed the key vector at every step (not only the initial state)
    dropout=0.3,             # dropout on step inputs and decoder outputs
    epochs=40,               # maximum epochs (early stopping usually ends sooner)
    patience=4,              # epochs without val_loss improvement before stopping
    batch_size=64,           # melodies per batch (batched by similar length)
    learning_rate=6e-3,      # Adam step size (3e-3 was still improving after 40 epochs)
    clipnorm=1.0,            # global gradient-norm clipping
    seed=1337,               # seeds the initialization, the shuffling and the in-key sampling
    split_seed=1337,         # seeds the split by piece (zoo.data.chorales.SPLIT_SEED)
    max_train_pieces=None,   # use only the first N training pieces (smoke runs)
    in_key_seeds=8,          # melodies per key for the in-key rate (seeds 0..N-1, 24 keys each)
    in_key_length=64,        # events per generated melody in that measurement
    temperature=1.0,         # sampling temperature of that measurement
    throughput_events=256,   # events per melody when timing the SavedModel
    name=None,               # model name; default music-<cell>-chorales
    output_dir=None,         # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,            # checkpoints, logs, curves; default runs/<name>
    strategy="auto",         # auto | default | mirrored | multi-worker (cluster from TF_CONFIG)
)
# What each setting must be (checked before anything runs; float settings must also be finite).
CHECKS = dict(
    cell=choices("lstm", "gru", "rnn"), units=positive, key_embedding_dim=positive,
    token_embedding_dim=positive, dropout=fraction, epochs=positive, patience=non_negative,
    batch_size=positive, learning_rate=positive, clipnorm=positive, seed=non_negative,
    split_seed=non_negative, max_train_pieces=positive, in_key_seeds=positive,
    in_key_length=positive, temperature=non_negative, throughput_events=positive,
    name=model_name, strategy=choices("auto", "default", "mirrored", "multi-worker"),
)


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_train_pieces": int},
                             checks=CHECKS)
    args = parser.parse_args(argv)
    args.name = args.name or f"music-{args.cell}-chorales"
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    from zoo import hub, layers, training
    from zoo.data import chorales
    from zoo.data.cache import atomic_write_text
    from zoo.tasks import music as task

    training.seed_everything(args.seed)
    strategy = training.select_strategy(args.strategy)

    # -- prepare the data ---------------------------------------------------
    splits = chorales.load_splits(seed=args.split_seed, augment_train=False)
    if args.max_train_pieces:
        splits["train"] = splits["train"][: args.max_train_pieces]
    train = chorales.augment_all_keys(splits["train"])
    dataset_card = {"name": "bach-chorale-soprano-melodies", **chorales.describe(seed=args.split_seed)}
    if args.max_train_pieces:
        dataset_card["max_train_pieces"] = args.max_train_pieces
        dataset_card["train_augmented_examples"] = len(train)
    print(f"[zoo] chorales: train {len(splits['train'])} pieces ({len(train)} after transposing "
          f"into all keys), validation {len(splits['validation'])}, test {len(splits['test'])}")
    train_ds = task.make_dataset(train, args.batch_size, shuffle=True, seed=args.seed)
    val_ds = task.make_dataset(splits["validation"], args.batch_size)

    # -- build the model ------------------------------------------------------
    with strategy.scope():
        model = task.build_model(
            cell=args.cell, units=args.units, key_embedding_dim=args.key_embedding_dim,
            token_embedding_dim=args.token_embedding_dim, dropout=args.dropout,
            key_every_step=args.key_every_step,
        )
        task.compile_model(model, learning_rate=args.learning_rate, clipnorm=args.clipnorm)
    model.summary(print_fn=lambda line, **_: print(line))

    # -- train (checkpointed, resumable) --------------------------------------
    run = training.fit(model, train_ds, val_ds, epochs=args.epochs, run_dir=args.run_dir,
                       monitor="val_loss", patience=args.patience)

    # -- evaluate on held-out chorales, beside the baselines -------------------
    in_key = {"seeds": args.in_key_seeds, "num_events": args.in_key_length,
              "min_events": args.in_key_length, "temperature": args.temperature}
    started = time.time()
    metrics, baselines = task.measure(model, splits, in_key)
    test, generated = metrics["test"], metrics["generated"]
    print(f"[zoo] test NLL/event {test['nll_per_event']:.4f} nats | unigram "
          f"{test['unigram_nll_per_event']:.4f} | bigram {test['bigram_nll_per_event']:.4f}")
    print(f"[zoo] in-key rate: generated {generated['in_key_rate']:.4f} ({generated['melodies']} "
          f"melodies, 24 keys x {args.in_key_seeds} seeds) | real test chorales "
          f"{test['real_in_key_rate']:.4f} ({time.time() - started:.0f} s)")

    # -- export, then time the exported SavedModel -----------------------------
    card = {
        "task": task.TASK,
        "io": task.IO_TYPE,
        "description": "A key name in ('D major', 'F# minor'), a melody in that key out: note "
                       "events (MIDI pitch or rest, duration on a sixteenth-note grid) in the "
                       "style of the soprano lines of Bach's chorales.",
        "architecture": (
            f"key id → Embedding({args.key_embedding_dim}) → Dense({args.units}, tanh) per state "
            f"→ initial state of zoo.layers.{layers.sequence_layer_class(args.cell).__name__}"
            f"({args.units}); event tokens → Embedding({args.token_embedding_dim})"
            + (" ⊕ key vector at every step" if args.key_every_step else "")
            + f" → Dropout({args.dropout}) → decoder → Dropout({args.dropout}) → "
            f"Dense({task.music.VOCAB_SIZE}) next-event logits; teacher forcing, PAD weighted 0"
        ),
        "parameters": int(model.count_params()),
        "inputs": "Keras model: {'key_id': int32 (batch,), 'tokens': int32 (batch, time)}; "
                  "SavedModel 'generate': keys string (batch,), num_events int32, temperature "
                  "float32 (0 = greedy), seed int64, min_events int32",
        "outputs": "Keras model: next-event logits (batch, time, vocab); SavedModel 'generate': "
                   "tokens, pitches (-1 = rest/none), durations (steps, 0 = none), lengths, key_ids",
        "encoding": task.music.encoding_spec(),
        "dataset": dataset_card,
        "metrics": metrics,
        "metric_notes": {
            "nll_per_event": "mean −log p (nats) of every event and the closing EOS of each "
                             "held-out chorale, in its original key, teacher-forced",
            "unigram/bigram": "add-k smoothed next-event models fitted on the transposed "
                              "training split, k chosen on validation; they ignore the key",
            "generated.in_key_rate": "mean over melodies of the share of notes in the requested "
                                     "key's scale (minor: natural, harmonic and melodic), 24 keys "
                                     "x seeds, exact length (EOS disabled), in-graph sampler",
            "real_in_key_rate": "the same rate on the real chorales of that split, in their "
                                "labelled keys",
        },
        "baselines": baselines,
        "evaluation": {"in_key": in_key},
        "training": {
            "epochs_run": run["epochs_run"],
            "best_epoch": run["best_epoch"],
            "seconds": round(run["seconds"], 1),
            "resumed": run["resumed"],
            "hardware": training.hardware_description(),
            "strategy": type(strategy).__name__,
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
        },
        "command": recipe_command("recipes/music.py", argv),
        "license": "Model and code: Apache-2.0 (this project). Data: the Bach chorales "
                   "(J. S. Bach, 1685-1750) are public-domain compositions; the encoded "
                   "scores come from the corpus bundled with music21 (BSD-3-Clause package). "
                   "We have not audited the provenance or license of each individual "
                   "corpus file beyond music21's own statements.",
        "created": time.strftime("%Y-%m-%d"),
    }
    if not training.is_chief(strategy):  # in a multi-worker run the chief alone exports
        print("[zoo] not the chief worker: the chief exports the model")
        return card
    shipped = task.fresh_copy(model, learning_rate=args.learning_rate, clipnorm=args.clipnorm)
    path = hub.export_model(
        args.name, shipped, card, task.write_serving,
        extra_files=[os.path.join(args.run_dir, "training_curve.png"),
                     os.path.join(args.run_dir, "history.csv")],
        root=args.output_dir,
    )
    serving = tf.saved_model.load(str(path / hub.SERVING_DIR))
    throughput = task.measure_throughput(serving, num_events=args.throughput_events)
    print(f"[zoo] SavedModel generation: {throughput['batch_1_events_per_second']:.0f} events/s "
          f"at batch 1, {throughput['batch_64_events_per_second']:.0f} events/s at batch 64")
    # The throughput is timed on the exported files, so the card is written once more
    # with it (the files it checksums are unchanged).
    card = json.loads((path / hub.CARD_FILE).read_text(encoding="utf-8"))
    card["throughput"] = throughput
    atomic_write_text(path / hub.CARD_FILE, hub.card_json(card))
    training.clear_checkpoints(args.run_dir)  # published: a rerun trains afresh
    print(f"[zoo] wrote {path}")
    return card


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
