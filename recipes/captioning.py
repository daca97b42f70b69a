"""
Title: CNN + RNN captioning with visual attention: emoji drawings named in words
Description: Train, evaluate and export an emoji captioner that names drawings in an art style it never saw.

Reads the same ~3,600 emoji drawn by four artists (Google Noto, Twitter Twemoji,
OpenMoji, Microsoft Fluent; npm packages fetched and sha256-checked on first use)
with their Unicode CLDR names ("face with tears of joy", "kiss: woman, woman",
"flag: Japan"). Trains on three styles and tests on the fourth (Twitter by
default), which the model never sees; 10% of the emoji are held out of training
in every style as a second test of new words. A small convolutional encoder,
trained from scratch with augmentation, turns a 64x64 drawing into an 8x8 grid of
features; a zoo GRU (or LSTM / SimpleRNN) decoder attends over the grid at every
step (`--attention none`: the image vector only sets the initial state). Checkpoints
every epoch (rerun the same command after a kill to resume), stops early on
validation loss, then scores exact match, CIDEr-D and BLEU-4 on the held-out
style, overall and for base emoji, skin-tone variants and flags, beside two
baselines measured in the same run: the caption of the nearest training image in
pixel space, and the best constant caption. With `--ablation` (default) it also
trains the same model without attention. Writes `saved_models/<name>/`.

    python recipes/captioning.py                      # the shipped captioning-gru-emoji
    python recipes/captioning.py --cell lstm --attention dot
    python recipes/captioning.py --max-examples 256 --epochs 1 --units 16 --embedding-dim 8 \
        --filters 4,4,4,8 --no-ablation --output-dir /tmp/hub   # smoke run
"""

import json
import os
import time

from zoo.settings import Check, choices, fraction, model_name, non_negative, positive, recipe_command, settings_parser

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    test_style="twitter",    # the art style held out for testing: twitter | google | openmoji | fluent
    cell="gru",              # recurrent cell of the decoder: gru | lstm | rnn
    attention="additive",    # additive | dot | general attention over the image grid, or none
    units=256,               # decoder state size
    embedding_dim=128,       # word embedding size
    filters="32,64,128,192", # channels of the four convolution stages
    dropout=0.3,             # on grid features, word embeddings and the attentional vector
    augment=True,            # random shifts, zoom, rotation, brightness, contrast while training
    epochs=30,               # maximum epochs (early stopping usually ends sooner)
    patience=4,              # epochs without val_loss improvement before stopping
    batch_size=64,
    learning_rate=2e-3,
    clipnorm=1.0,            # global gradient-norm clipping
    beam_width=3,            # the SavedModel's beam width (serving_default, caption_bytes)
    ablation=True,           # also train the same model with --attention none and report it
    seed=1337,               # seeds the initialization and the shuffling
    split_seed=1337,         # seeds the held-out emoji and the validation drawings
    max_examples=None,       # use only the first N images of each split (smoke runs)
    name=None,               # model name; default captioning-<cell>-emoji
    output_dir=None,         # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,            # checkpoints, logs, curves; default runs/<name>
)
CHECKS = dict(
    test_style=choices("twitter", "google", "openmoji", "fluent"), cell=choices("gru", "lstm", "rnn"),
    attention=choices("additive", "dot", "general", "none"), units=positive, embedding_dim=positive,
    filters=Check("must be four positive integers separated by commas, e.g. 32,64,128,192",
                  lambda value: len(value.split(",")) == 4 and all(int(v) > 0 for v in value.split(","))),
    dropout=fraction, epochs=positive, patience=non_negative, batch_size=positive,
    learning_rate=positive, clipnorm=positive,
    beam_width=(positive, Check("must be <= 16", lambda value: value <= 16)),
    seed=non_negative, split_seed=non_negative, max_examples=positive, name=model_name,
)


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_examples": int}, checks=CHECKS)
    args = parser.parse_args(argv)
    if args.attention == "none":
        args.ablation = False  # the model is its own ablation
    args.name = args.name or f"captioning-{args.cell}-emoji"
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    from zoo import hub, training
    from zoo.data import emoji
    from zoo.data.cache import atomic_write_text
    from zoo.tasks import captioning as task

    training.seed_everything(args.seed)
    strategy = training.select_strategy()
    filters = tuple(int(v) for v in args.filters.split(","))

    # -- prepare the data ---------------------------------------------------
    splits = emoji.load_captioning_splits(test_style=args.test_style, seed=args.split_seed)
    if args.max_examples:
        splits = {name: {key: value[: args.max_examples] for key, value in split.items()}
                  for name, split in splits.items()}
    dataset_card = {"name": "emoji-cldr", "test_style": args.test_style, "split_seed": args.split_seed,
                    **emoji.describe_split(test_style=args.test_style, seed=args.split_seed)}
    if args.max_examples:
        dataset_card["max_examples_per_split"] = args.max_examples
    print("[zoo] emoji: " + ", ".join(f"{k} {len(v['captions'])}" for k, v in splits.items())
          + f" (test style {args.test_style})")

    def build_and_train(attention, run_dir):
        training.seed_everything(args.seed)
        with strategy.scope():
            model = task.build_model(splits["train"]["captions"], cell=args.cell, attention=attention,
                                     units=args.units, embedding_dim=args.embedding_dim, filters=filters,
                                     dropout=args.dropout, augment=args.augment)
            task.compile_model(model, learning_rate=args.learning_rate, clipnorm=args.clipnorm)
        train_ds = task.make_dataset(model, splits["train"]["images"], splits["train"]["captions"],
                                     args.batch_size, shuffle=True, seed=args.seed)
        val_ds = task.make_dataset(model, splits["validation"]["images"], splits["validation"]["captions"],
                                   args.batch_size)
        run = training.fit(model, train_ds, val_ds, epochs=args.epochs, run_dir=run_dir,
                           monitor="val_loss", patience=args.patience)
        return model, run

    # -- train the attention model (checkpointed, resumable) -------------------
    model, run = build_and_train(args.attention, args.run_dir)
    model.summary(print_fn=lambda line, **_: print(line))

    # -- evaluate on the held-out style, beside the baselines ------------------
    started = time.time()
    metrics = task.measure(model, splits)
    beam_key = f"beam{task.DEFAULT_BEAM_WIDTH}"
    test = metrics["test"][beam_key]["overall"]
    print(f"[zoo] test ({args.test_style}, beam {task.DEFAULT_BEAM_WIDTH}): exact match "
          f"{test['exact_match']:.4f}, CIDEr-D {test['cider_d']:.3f}, BLEU-4 {test['bleu4']:.2f} "
          f"({time.time() - started:.0f} s)")
    baselines = task.baselines(splits)
    neighbour = baselines["nearest_neighbour_pixels"]["test"]["overall"]
    print(f"[zoo] baseline 1-NN pixels: exact match {neighbour['exact_match']:.4f}, CIDEr-D "
          f"{neighbour['cider_d']:.3f}, BLEU-4 {neighbour['bleu4']:.2f}")
    best = {label: metrics["test"][label]["overall"] for label in metrics["test"]}
    comparison = {
        "floor": "beat 1-NN on pixels on both exact match and CIDEr-D on the held-out style",
        "model_best_exact_match": max(s["exact_match"] for s in best.values()),
        "model_best_cider_d": max(s["cider_d"] for s in best.values()),
        "nearest_neighbour_exact_match": neighbour["exact_match"],
        "nearest_neighbour_cider_d": neighbour["cider_d"],
    }
    comparison["beats_floor"] = bool(comparison["model_best_exact_match"] > neighbour["exact_match"]
                                     and comparison["model_best_cider_d"] > neighbour["cider_d"])

    # -- ablation: the same model without attention -----------------------------
    ablation = None
    if args.ablation:
        plain, plain_run = build_and_train("none", os.path.join(args.run_dir, "ablation-no-attention"))
        plain_test = task.evaluate(plain, splits["test"])
        ablation = {"attention": "none", "test": plain_test, "epochs_run": plain_run["epochs_run"],
                    "seconds": round(plain_run["seconds"], 1)}
        print(f"[zoo] ablation without attention: test exact match "
              f"{plain_test[beam_key]['overall']['exact_match']:.4f}, CIDEr-D "
              f"{plain_test[beam_key]['overall']['cider_d']:.3f}")

    # -- export, then time the exported SavedModel -------------------------------
    card = {
        "task": task.TASK,
        "io": task.IO_TYPE,
        "description": "An emoji drawing (any size, RGB uint8, or PNG/JPEG bytes) in, its Unicode CLDR "
                       "name out, written exactly as a label is written ('kiss: woman, woman').",
        "architecture": (
            f"resize to 64x64 → augmentation (training) → Conv(3x3, stride 2) {filters[0]} → "
            f"Conv {filters[1]} + max-pool → Conv {filters[2]} + max-pool → Conv {filters[3]} "
            f"(each BatchNorm + ReLU) → 8x8 grid of {filters[3]} features → mean → Dense({args.units}, tanh) "
            f"initial state; words → Embedding({args.embedding_dim}) → zoo.layers.AttentionDecoder("
            f"{args.cell}, {args.units}, attention={args.attention}) over the grid → Dropout({args.dropout}) "
            f"→ WordLogits({len(task.model_vocabulary(model))} words)"
        ),
        "parameters": int(model.count_params()),
        "inputs": "Keras model: {'images': uint8 (batch, H, W, 3), 'tokens': int32 (batch, time)}; "
                  "SavedModel: images uint8 [batch, H, W, 3] (serving_default, caption), or "
                  "image_bytes string [batch] (caption_bytes)",
        "outputs": "captions string (batch,), scores float32; caption: also attention "
                   "(batch, steps, 64 grid cells) and tokens",
        "decoding": {"default_beam_width": args.beam_width, "length_penalty": 0.0,
                     "default_max_length": task.DEFAULT_MAX_LENGTH, "max_length_limit": task.MAX_CAPTION_TOKENS},
        "dataset": dataset_card,
        "metrics": metrics,
        "metric_notes": {
            "exact_match": "share of images whose generated caption equals the CLDR label exactly",
            "cider_d": "CIDEr-D (Vedantam et al. 2015), one reference per image, x10; document "
                       "frequencies from the split's references",
            "bleu4": "sacrebleu corpus BLEU-4 (inflated by the repeated skin-tone suffixes)",
            "groups": "base emoji, skin-tone variants, country/region flags (zoo.data.emoji.caption_group)",
            "heldout_emoji": "emoji never seen in training in any style: BLEU and CIDEr only",
        },
        "baselines": baselines,
        "comparison": comparison,
        "ablation": ablation,
        "training": {
            "epochs_run": run["epochs_run"],
            "best_epoch": run["best_epoch"],
            "seconds": round(run["seconds"], 1),
            "ablation_seconds": None if ablation is None else ablation["seconds"],
            "resumed": run["resumed"],
            "hardware": training.hardware_description(),
            "strategy": type(strategy).__name__,
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
        },
        "command": recipe_command("recipes/captioning.py", argv),
        "license": "Model and code: Apache-2.0 (this project). Training images: Noto Emoji by Google "
                   "(Apache-2.0, emoji-datasource-google), OpenMoji (CC-BY-SA-4.0, openmoji.org), "
                   "Microsoft Fluent Emoji (MIT, via @iconify-json/fluent-emoji-flat); test images: "
                   "Twemoji by Twitter (CC-BY-4.0, emoji-datasource-twitter). Captions: Unicode CLDR "
                   "names via emojibase-data (MIT). The weights derive from CC-BY-SA artwork (OpenMoji).",
        "created": time.strftime("%Y-%m-%d"),
    }
    shipped = task.fresh_copy(model, learning_rate=args.learning_rate, clipnorm=args.clipnorm)

    def write_serving(keras_model, path):
        task.write_serving(keras_model, path, beam_width=args.beam_width)

    path = hub.export_model(
        args.name, shipped, card, write_serving,
        extra_files=[os.path.join(args.run_dir, "training_curve.png"),
                     os.path.join(args.run_dir, "history.csv")],
        root=args.output_dir,
    )
    serving = tf.saved_model.load(str(path / hub.SERVING_DIR))
    throughput = task.measure_throughput(serving, splits["test"]["images"])
    print(f"[zoo] SavedModel: {throughput['batch_1_greedy_images_per_second']:.1f} images/s greedy at "
          f"batch 1, {throughput['batch_64_greedy_images_per_second']:.1f} at batch 64")
    card = json.loads((path / hub.CARD_FILE).read_text(encoding="utf-8"))
    card["throughput"] = throughput
    atomic_write_text(path / hub.CARD_FILE, hub.card_json(card))
    training.clear_checkpoints(args.run_dir)  # published: the next run of the command trains afresh
    print(f"[zoo] wrote {path}")
    return card


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
