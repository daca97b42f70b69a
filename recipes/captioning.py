"""
Title: CNN + RNN captioning with visual attention: emoji drawings named in words
Description: Train, evaluate and export an emoji captioner that names drawings in an art style it never saw.

Reads the same ~3,600 emoji drawn by four artists (Google Noto, Twitter Twemoji,
OpenMoji, Microsoft Fluent; npm packages fetched and sha256-checked on first use)
with their Unicode CLDR names ("face with tears of joy", "kiss: woman, woman",
"flag: Japan"). A small convolutional encoder, trained from scratch with
augmentation, turns a 64x64 drawing into an 8x8 grid of features; a zoo GRU (or
LSTM / SimpleRNN) decoder attends over the grid at every step (`--attention none`:
the image vector only sets the initial state). Decoding consults a retrieval
memory of the training drawings: the beam's caption and the captions of the most
similar training drawings (32x32 pixels, cosine) are re-ranked by
log p(caption | image) + weight x similarity, the weight chosen on validation
drawings compared only with the other training styles' drawings.

Leave one style out (the default): for each of the four styles, a model trained
on the other three (same settings and seeds, as `--test-style STYLE` would) is
scored once on the style it never saw, overall and for base emoji, skin-tone
variants and flags, and on the 10% of emoji held out of training in every style
(new words: BLEU and CIDEr only), beside 1-NN on pixels over the same three
styles. Then the shipped model trains on all four styles (`--test-style none`)
and its card carries the four rotations and their mean. `--test-style STYLE`
trains one model that never sees STYLE and scores it there, beside 1-NN on pixels
and the best constant caption (`--ablation`: also without attention). Each
training checkpoints every epoch (rerun the same command after a kill to resume)
and stops early on validation loss. Writes `saved_models/<name>/`.

    python recipes/captioning.py                      # the shipped captioning-gru-emoji (rotations first)
    python recipes/captioning.py --test-style twitter --ablation   # one model, tested on Twemoji
    python recipes/captioning.py --cell lstm --attention dot
    python recipes/captioning.py --max-examples 256 --epochs 1 --units 16 --embedding-dim 8 \
        --filters 4,4,4,8 --no-leave-one-style-out --output-dir /tmp/hub   # smoke run
"""

import json
import os
import time

from zoo.settings import Check, choices, fraction, model_name, non_negative, positive, recipe_command, settings_parser

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    test_style="none",       # the art style held out for testing: twitter | google | openmoji | fluent, or
                             # none: every style trains (the shipped model)
    leave_one_style_out=True,  # with --test-style none: first train and score one model per held-out style
    rotation_styles="google,twitter,openmoji,fluent",  # the styles left out in turn
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
    retrieval_candidates=5,  # training captions (of the most similar drawings) re-ranked with the beam's; 0 = off
    retrieval_dims=128,      # principal directions the retrieval memory keeps of each 32x32 drawing
    retrieval_weight=None,   # weight of the retrieval similarity; default: chosen on validation
    ablation=False,          # also train the same model with --attention none and report it (needs a test style)
    seed=1337,               # seeds the initialization and the shuffling
    split_seed=1337,         # seeds the held-out emoji and the validation drawings
    max_examples=None,       # use only the first N images of each split (smoke runs)
    name=None,               # model name; default captioning-<cell>-emoji
    output_dir=None,         # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,            # checkpoints, logs, curves; default runs/<name>
)
CHECKS = dict(
    test_style=choices("twitter", "google", "openmoji", "fluent", "none"), cell=choices("gru", "lstm", "rnn"),
    attention=choices("additive", "dot", "general", "none"), units=positive, embedding_dim=positive,
    filters=Check("must be four positive integers separated by commas, e.g. 32,64,128,192",
                  lambda value: len(value.split(",")) == 4 and all(int(v) > 0 for v in value.split(","))),
    dropout=fraction, epochs=positive, patience=non_negative, batch_size=positive,
    learning_rate=positive, clipnorm=positive,
    beam_width=(positive, Check("must be <= 16", lambda value: value <= 16)),
    seed=non_negative, split_seed=non_negative, max_examples=positive, name=model_name,
    retrieval_candidates=non_negative, retrieval_dims=positive, retrieval_weight=non_negative,
    rotation_styles=Check("must be art styles separated by commas, e.g. google,twitter",
                          lambda value: bool(value) and all(v in ("google", "twitter", "openmoji", "fluent")
                                                            for v in value.split(","))),
)


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_examples": int, "retrieval_weight": float}, checks=CHECKS)
    args = parser.parse_args(argv)
    if args.attention == "none":
        args.ablation = False  # the model is its own ablation
    args.test_style = None if args.test_style == "none" else args.test_style
    args.name = args.name or f"captioning-{args.cell}-emoji"
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def train_model(args, splits, strategy, attention, run_dir):
    """Build, compile and train (checkpointed in `run_dir`, resumable) one captioner on `splits`."""
    from zoo import training
    from zoo.tasks import captioning as task

    training.seed_everything(args.seed)
    filters = tuple(int(v) for v in args.filters.split(","))
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
    splits = load_splits(args, args.test_style)
    dataset_card = {"name": "emoji-cldr", "test_style": args.test_style, "split_seed": args.split_seed,
                    **emoji.describe_split(test_style=args.test_style, seed=args.split_seed)}
    if args.max_examples:
        dataset_card["max_examples_per_split"] = args.max_examples
    print("[zoo] emoji: " + ", ".join(f"{k} {len(v['captions'])}" for k, v in splits.items())
          + f" (test style {args.test_style or 'none: every style trains'})")

    # -- leave one style out: the method measured on each style it never saw ----
    rotations = None
    if args.leave_one_style_out and args.test_style is None:
        rotations = {}
        for style in args.rotation_styles.split(","):
            started = time.time()
            rotation_splits = load_splits(args, style)
            rotation, rotation_run = train_model(args, rotation_splits, strategy, args.attention,
                                                 os.path.join(args.run_dir, f"without-{style}"))
            rotation, choice = attach_retrieval(args, rotation, rotation_splits)
            rotations[style] = {**task.rotation_scores(rotation, rotation_splits, args.beam_width),
                                "retrieval_weight_choice": choice,
                                "training": {"epochs_run": rotation_run["epochs_run"],
                                             "best_epoch": rotation_run["best_epoch"],
                                             "seconds": round(rotation_run["seconds"], 1)}}
            report_rotation(style, rotations[style], time.time() - started)
        summary = task.rotations_summary(rotations)
        print(f"[zoo] leave-one-style-out: floors met in {summary['rotations_meeting_floors']} of "
              f"{summary['rotations']} rotations; mean exact match {summary['model']['overall']['exact_match']:.3f} "
              f"(1-NN {summary['nearest_neighbour_pixels']['overall']['exact_match']:.3f})")

    # -- train the shipped model (checkpointed, resumable) ----------------------
    model, run = train_model(args, splits, strategy, args.attention, args.run_dir)
    model.summary(print_fn=lambda line, **_: print(line))
    model, retrieval_choice = attach_retrieval(args, model, splits)

    # -- evaluate beside the baselines ---------------------------------------------
    started = time.time()
    metrics = task.measure(model, splits)
    baselines = task.baselines(splits)
    comparison = None
    if "test" in metrics:
        beam_key = f"beam{task.DEFAULT_BEAM_WIDTH}"
        test = metrics["test"][beam_key]["overall"]
        print(f"[zoo] test ({args.test_style}, beam {task.DEFAULT_BEAM_WIDTH}): exact match "
              f"{test['exact_match']:.4f}, CIDEr-D {test['cider_d']:.3f}, BLEU-4 {test['bleu4']:.2f} "
              f"({time.time() - started:.0f} s)")
        neighbour = baselines["nearest_neighbour_pixels"]["test"]
        print(f"[zoo] baseline 1-NN pixels: exact match {neighbour['overall']['exact_match']:.4f}, CIDEr-D "
              f"{neighbour['overall']['cider_d']:.3f}, BLEU-4 {neighbour['overall']['bleu4']:.2f}")
        comparison = {"floor": "above 1-NN on pixels on the held-out style: " + ", ".join(
            f"{group} {metric}" for group, metric in task.STYLE_FLOORS),
            **task.style_floors(metrics["test"][beam_key], neighbour)}

    # -- ablation: the same model without attention -----------------------------
    ablation = None
    if args.ablation and "test" in metrics:
        plain, plain_run = train_model(args, splits, strategy, "none",
                                       os.path.join(args.run_dir, "ablation-no-attention"))
        plain, _ = attach_retrieval(args, plain, splits)
        plain_test = task.evaluate(plain, splits["test"])
        ablation = {"attention": "none", "test": plain_test, "epochs_run": plain_run["epochs_run"],
                    "seconds": round(plain_run["seconds"], 1)}
        print(f"[zoo] ablation without attention: test exact match "
              f"{plain_test[beam_key]['overall']['exact_match']:.4f}, CIDEr-D "
              f"{plain_test[beam_key]['overall']['cider_d']:.3f}")

    # -- export, then time the exported SavedModel -------------------------------
    styles = [s for s in emoji.STYLES if s != args.test_style]
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
            + (f"; decoding re-ranks the beam's caption and the captions of the {args.retrieval_candidates} most "
               f"similar training drawings (RetrievalMemory: {len(splits['train']['captions'])} drawings, "
               f"32x32 pixels projected to {args.retrieval_dims} principal directions, int8) by "
               f"log p(caption | image) + {retrieval_choice['weight']} x cosine"
               if retrieval_choice else "")
        ),
        "parameters": task.network_parameters(model),
        "inputs": "Keras model: {'images': uint8 (batch, H, W, 3), 'tokens': int32 (batch, time)}; "
                  "SavedModel: images uint8 [batch, H, W, 3] (serving_default, caption), or "
                  "image_bytes string [batch] (caption_bytes)",
        "outputs": "captions string (batch,), scores float32; caption: also attention "
                   "(batch, steps, 64 grid cells) and tokens",
        "decoding": {"default_beam_width": args.beam_width, "length_penalty": 0.0,
                     "default_max_length": task.DEFAULT_MAX_LENGTH, "max_length_limit": task.MAX_CAPTION_TOKENS,
                     "retrieval": retrieval_choice},
        "dataset": dataset_card,
        "metrics": metrics,
        "metric_notes": {
            "exact_match": "share of images whose generated caption equals the CLDR label exactly",
            "cider_d": "CIDEr-D (Vedantam et al. 2015), one reference per image, x10; document "
                       "frequencies from the split's references",
            "bleu4": "sacrebleu corpus BLEU-4 (inflated by the repeated skin-tone suffixes)",
            "groups": "base emoji, skin-tone variants, country/region flags (zoo.data.emoji.caption_group)",
            "heldout_emoji": "emoji never seen in training in any style: BLEU and CIDEr only",
            "validation": "drawings of the training styles whose emoji is drawn in training by other artists; "
                          "scored with the whole memory (same-style drawings included)",
        },
        "baselines": baselines,
        "comparison": comparison,
        "leave_one_style_out": None if rotations is None else {
            "method": "for each style: the same recipe and seeds (--test-style STYLE) trains on the other "
                      "three; the retrieval weight is chosen on validation drawn from those three; scored "
                      "once on the held-out style, beside 1-NN on pixels over the same three styles",
            "floors": [f"{group} {metric} above 1-NN" for group, metric in task.STYLE_FLOORS],
            "rotations": rotations,
            "mean": task.rotations_summary(rotations),
        },
        "ablation": ablation,
        "training": {
            "epochs_run": run["epochs_run"],
            "best_epoch": run["best_epoch"],
            "seconds": round(run["seconds"], 1),
            "ablation_seconds": None if ablation is None else ablation["seconds"],
            "rotation_seconds": None if rotations is None else {
                style: rotation["wall_seconds"] for style, rotation in rotations.items()},
            "resumed": run["resumed"],
            "hardware": training.hardware_description(),
            "strategy": type(strategy).__name__,
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
        },
        "command": recipe_command("recipes/captioning.py", argv),
        "license": "Model and code: Apache-2.0 (this project). Images: "
                   + ", ".join(LICENSES[style] for style in styles)
                   + (f"; test images: {LICENSES[args.test_style]}" if args.test_style else "")
                   + ". Captions: Unicode CLDR names via emojibase-data (MIT). The weights and the retrieval "
                     "memory derive from the training artwork"
                   + (", including CC-BY-SA artwork (OpenMoji)." if "openmoji" in styles else "."),
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
    timed = splits["test"] if len(splits["test"]["captions"]) else splits["heldout_emoji"]
    throughput = task.measure_throughput(serving, timed["images"])
    print(f"[zoo] SavedModel: {throughput['batch_1_greedy_images_per_second']:.1f} images/s greedy at "
          f"batch 1, {throughput['batch_64_greedy_images_per_second']:.1f} at batch 64")
    card = json.loads((path / hub.CARD_FILE).read_text(encoding="utf-8"))
    card["throughput"] = throughput
    atomic_write_text(path / hub.CARD_FILE, hub.card_json(card))
    training.clear_checkpoints(args.run_dir)  # published: the next run of the command trains afresh
    print(f"[zoo] wrote {path}")
    return card


#: Where each style's drawings come from (the card's license line).
LICENSES = {
    "google": "Noto Emoji by Google (Apache-2.0, emoji-datasource-google)",
    "twitter": "Twemoji by Twitter (CC-BY-4.0, emoji-datasource-twitter)",
    "openmoji": "OpenMoji (CC-BY-SA-4.0, openmoji.org)",
    "fluent": "Microsoft Fluent Emoji (MIT, via @iconify-json/fluent-emoji-flat)",
}


def load_splits(args, test_style):
    """The emoji splits for `test_style` (None: every style trains), cut to `--max-examples` per split."""
    from zoo.data import emoji

    splits = emoji.load_captioning_splits(test_style=test_style, seed=args.split_seed)
    if args.max_examples:
        splits = {name: {key: value[: args.max_examples] for key, value in split.items()}
                  for name, split in splits.items()}
    return splits


def attach_retrieval(args, model, splits):
    """`model` with a retrieval memory of its training drawings and the weight chosen on validation.

    Returns `(model, choice)`; with `--retrieval-candidates 0` the model as it is and None.
    """
    from zoo.tasks import captioning as task

    if not args.retrieval_candidates:
        return model, None
    memory = task.build_retrieval_memory(model, splits["train"], dims=args.retrieval_dims)
    model = task.with_retrieval_memory(model, memory, weight=0.0, candidates=args.retrieval_candidates)
    if args.retrieval_weight is None:
        choice = task.choose_retrieval_weight(model, splits["validation"], beam_width=args.beam_width)
        print(f"[zoo] retrieval weight {choice['weight']} (validation exact match by weight: "
              f"{choice['validation_exact_match']})")
    else:
        choice = {"weight": float(args.retrieval_weight), "rule": "set by --retrieval-weight"}
    task.set_retrieval_weight(model, choice["weight"])
    return model, {**choice, "candidates": args.retrieval_candidates, "dims": args.retrieval_dims,
                   "drawings": len(splits["train"]["captions"])}


def report_rotation(style, rotation, seconds):
    rotation["wall_seconds"] = round(seconds, 1)  # this command's time on it (a finished training is reused)
    ours, theirs = rotation["model"]["test"], rotation["nearest_neighbour_pixels"]["test"]
    print(f"[zoo] without {style}: exact match {ours['overall']['exact_match']:.3f} (1-NN "
          f"{theirs['overall']['exact_match']:.3f}), CIDEr-D {ours['overall']['cider_d']:.2f} "
          f"({theirs['overall']['cider_d']:.2f}); floors {'met' if rotation['meets_floors'] else 'missed'} "
          f"({seconds:.0f} s)")


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
