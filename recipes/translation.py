"""
Title: German → English translation with a zoo encoder-decoder and attention
Description: Train, evaluate and export a raw-text translator with in-graph beam search.

Reads the ~18,100 example sentence pairs of the Ding German-English dictionary
(Debian package trans-de-en 1.9-6; `--data ding+wesnoth` adds the dialogue of
14 campaigns of Battle for Wesnoth, Debian wesnoth-1.16-*), fetched and
sha256-checked on first use, split 80/10/10 by German sentence with a fixed
seed; two more Wesnoth campaigns are test domains only (`--held-out-domains`).
Encodes the German words (`--subwords`: subword pieces learned from the
training text, cut inside the model) with a bidirectional zoo GRU (or LSTM /
SimpleRNN) and decodes English words (or pieces; `--tie-embeddings` shares
their input and output matrix) with a zoo cell that attends over the encoder
outputs at every step (additive,
dot or general attention; `--attention none` for the plain encoder-decoder),
trained with teacher forcing and gradient clipping. Checkpoints every epoch
(rerun the same command after a kill to resume), stops early on validation loss,
then scores held-out BLEU and chrF (sacrebleu), greedy and beam search, beside
three baselines measured in the same run: copying the source, word-by-word IBM
Model 1, and nearest-neighbour retrieval over the training sources, on the Ding
test split, the campaigns' test split and each held-out campaign. With
`--ablation` (default) it also trains the same model without attention, and with
`--dictionary-ablation` (default) without the dictionary's word and phrase entries
(extra training pairs, and with `--no-subwords` the lexicon that translates
[UNK] words). Writes
`saved_models/<name>/` (model.keras, a serving SavedModel that decodes inside the
graph, card.json) and times the SavedModel and a Python-loop decoder.

    python recipes/translation.py --data ding+wesnoth --subwords --tie-embeddings --embedding-dim 128 \
        --units 256 --max-source-words 5000 --max-target-words 5000 --epochs 18 --no-repeat-sizes 0,2,3 \
        --no-ablation --no-dictionary-ablation           # the shipped translation-gru-de-en
    python recipes/translation.py                        # Ding only, word-level, with the ablations
    python recipes/translation.py --cell lstm --attention dot
    python recipes/translation.py --max-examples 300 --epochs 1 --units 32 --embedding-dim 16 \
        --no-ablation --output-dir /tmp/hub               # smoke run
"""

import json
import os
import time

from zoo.settings import (Check, at_least, choices, fraction, model_name, non_negative, positive,
                          recipe_command, settings_parser)

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    data="ding",             # ding (packaged dictionary sentences) | ding+wesnoth (plus game dialogue) | wmt14 (TFDS, internet)
    held_out_domains="wesnoth-did,wesnoth-sotbe",  # whole campaigns never trained on: test domains ("" = none)
    cell="gru",              # recurrent cell of encoder and decoder: gru | lstm | rnn
    attention="additive",    # additive (Bahdanau) | dot | general (Luong) | none
    input_feeding=False,     # feed the previous attentional vector to the decoder (slower to train)
    units=256,               # decoder state; the encoder has units/2 per direction
    embedding_dim=256,       # word embedding size, source and target
    tie_embeddings=False,    # one matrix for the English words in and out (TiedWordEmbedding)
    subwords=False,          # German and English in subword pieces learned by merges (no [UNK] words, no lexicon)
    max_source_words=40000,  # German vocabulary cap, words or pieces (most frequent first)
    max_target_words=8000,   # English vocabulary cap, words or pieces (most frequent first)
    min_count=2,             # English words seen fewer times in training become [UNK]
    source_min_count=2,      # German words seen fewer times become [UNK] (1: every word; 3x the embedding for +2% coverage)
    dropout=0.3,             # on embeddings and on the attentional vector
    epochs=30,               # maximum epochs (early stopping usually ends sooner)
    patience=3,              # epochs without val_loss improvement before stopping
    batch_size=64,
    learning_rate=2e-3,
    lr_decay=0.5,            # the learning rate is multiplied by this after each epoch without improvement
    warmup_steps=500,        # the learning rate rises linearly over the first optimizer steps
    label_smoothing=0.1,     # share of each target word's probability spread over the vocabulary
    clipnorm=1.0,            # global gradient-norm clipping (exploding gradients in BPTT)
    beam_width=4,            # the SavedModel's default beam width (serving_default)
    length_penalties="1.0,1.5,2.0,2.5,3.0",  # GNMT length-penalty exponents tried; the best on validation is kept
    no_repeat_sizes="0",     # no-repeat n-gram sizes tried after it (0 = off); the best on validation is kept
    dictionary_pairs=60000,  # extra training pairs from the dictionary's word/phrase entries (0 = none)
    lexicon=True,            # translate [UNK] outputs through the dictionary's one-word entries
    ablation=True,           # also train the same model with --attention none and report it
    dictionary_ablation=True,  # also train it without the dictionary's entries and report it
    seed=1337,               # seeds the initialization and the shuffling
    split_seed=1337,         # seeds the split by German sentence
    max_examples=None,       # use only the first N pairs of each split (smoke runs)
    loop_timing_sentences=16,  # test sentences timed against a Python-loop decoder (0 = skip the timing)
    name=None,               # model name; default translation-<cell>-de-en
    output_dir=None,         # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,            # checkpoints, logs, curves; default runs/<name>
    strategy="auto",         # auto | default | mirrored | multi-worker (cluster from TF_CONFIG)
)


CHECKS = dict(
    data=choices("ding", "ding+wesnoth", "wmt14"), cell=choices("gru", "lstm", "rnn"),
    held_out_domains=Check("must be comma-separated wesnoth-<campaign> names, e.g. wesnoth-did",
                           lambda value: all(_is_campaign(v) for v in value.split(",") if v)),
    max_source_words=positive, max_target_words=at_least(5),
    no_repeat_sizes=Check("must be comma-separated whole numbers >= 0, e.g. 0,2,3",
                          lambda value: all(v.strip().isdigit() for v in value.split(","))),
    attention=choices("additive", "dot", "general", "none"), units=at_least(2),
    embedding_dim=positive, min_count=positive, dropout=fraction, epochs=positive,
    patience=non_negative, batch_size=positive, learning_rate=positive, clipnorm=positive,
    lr_decay=Check("must be in (0, 1]", lambda value: 0 < value <= 1), warmup_steps=non_negative,
    label_smoothing=Check("must be in [0, 1)", lambda value: 0 <= value < 1),
    beam_width=(positive, Check("must be <= 16", lambda value: value <= 16)),
    length_penalties=Check("must be comma-separated numbers >= 0, e.g. 0.6,1.0",
                           lambda value: all(float(v) >= 0 for v in value.split(","))),
    source_min_count=positive, seed=non_negative, split_seed=non_negative,
    max_examples=positive, name=model_name, dictionary_pairs=non_negative,
    loop_timing_sentences=non_negative,
    strategy=choices("auto", "default", "mirrored", "multi-worker"),
)


def _is_campaign(name):
    from zoo.data import wesnoth

    return name.startswith("wesnoth-") and name[len("wesnoth-"):] in wesnoth.CAMPAIGNS


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_examples": int}, checks=CHECKS)
    args = parser.parse_args(argv)
    if args.attention == "none":
        args.ablation = False  # the model is its own ablation
    suffix = "wmt14-de-en" if args.data == "wmt14" else "de-en"
    args.name = args.name or f"translation-{args.cell}-{suffix}"
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    from zoo import data, hub, training
    from zoo.data.cache import atomic_write_text
    from zoo.tasks import translation as task
    from zoo.tasks import translation_metrics

    training.seed_everything(args.seed)
    strategy = training.select_strategy(args.strategy)

    # -- prepare the data ---------------------------------------------------
    splits = data.load_translation_splits(args.data, seed=args.split_seed)
    domains = [name for name in args.held_out_domains.split(",") if name]
    if domains:
        splits.update(task.held_out_domains({"held_out_domains": domains}))
    if args.max_examples:
        splits = {k: v[: args.max_examples] for k, v in splits.items()}
    if args.data.startswith("ding"):
        dataset_card = {"name": "ding", **data.ding.describe_split(seed=args.split_seed)}
    else:
        dataset_card = {"name": "wmt14", "version": "tfds wmt14_translate/de-en", "split_seed": args.split_seed}
    dataset_card["name"] = args.data
    dataset_card["split_seed"] = args.split_seed
    if args.data == "ding+wesnoth" or domains:
        dataset_card["wesnoth"] = data.wesnoth.describe_source(
            held_out=[name.split("-", 1)[1] for name in domains])
    dataset_card["held_out_domains"] = domains
    dataset_card["counts"] = {name: len(pairs) for name, pairs in splits.items()}
    if args.max_examples:
        dataset_card["max_examples_per_split"] = args.max_examples
    print("[zoo] " + args.data + ": " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))

    # -- the dictionary's word and phrase entries (never a held-out sentence) ----------
    held_out = [de for split in task.evaluation_splits(splits) for de, _ in splits[split]]
    extra_pairs, lexicon = [], None
    if args.data.startswith("ding") and (args.dictionary_pairs or args.lexicon or args.dictionary_ablation):
        entries = data.ding.dictionary_pairs(exclude_german=held_out, max_words=3)
        if args.dictionary_pairs:
            extra_pairs = task.select_dictionary_pairs(entries, splits["train"], args.dictionary_pairs,
                                                       seed=args.seed)
        if args.lexicon and not args.subwords:  # pieces leave no [UNK] words for a lexicon to translate
            lexicon = task.build_lexicon(entries, splits["train"])
        dataset_card["dictionary_entries"] = {
            "extra_training_pairs": len(extra_pairs), "lexicon_words": len(lexicon or {}),
            "rule": "word/phrase entries of at most 3 words, none whose German side is a validation or "
                    "test sentence; training pairs preferring entries whose German words all occur in the "
                    "training sentences (seeded order); lexicon from the one-word entries",
        }
        print(f"[zoo] dictionary entries: {len(extra_pairs)} extra training pairs, "
              f"lexicon of {len(lexicon or {})} words")

    def build_and_train(attention, run_dir, with_dictionary=True):
        training.seed_everything(args.seed)
        train_pairs = splits["train"] + (extra_pairs if with_dictionary else [])
        with strategy.scope():
            model = task.build_model(
                train_pairs, cell=args.cell, attention=attention, embedding_dim=args.embedding_dim,
                units=args.units, dropout=args.dropout, input_feeding=args.input_feeding,
                min_count=args.min_count, source_min_count=args.source_min_count,
                max_source_words=args.max_source_words, max_target_words=args.max_target_words,
                tie_embeddings=args.tie_embeddings, subwords=args.subwords,
                lexicon=lexicon if with_dictionary else None)
            task.compile_model(model, learning_rate=args.learning_rate, clipnorm=args.clipnorm,
                               label_smoothing=args.label_smoothing)
        train_ds = task.make_dataset(model, train_pairs, args.batch_size, shuffle=True, seed=args.seed)
        val_ds = task.make_dataset(model, splits["validation"], args.batch_size)
        run = training.fit(model, train_ds, val_ds, epochs=args.epochs, run_dir=run_dir,
                           monitor="val_loss", patience=args.patience,
                           lr_decay=args.lr_decay,
                           warmup_steps=args.warmup_steps)
        return model, run

    # -- build and train the attention model (checkpointed, resumable) ----------
    model, run = build_and_train(args.attention, args.run_dir)
    model.summary(print_fn=lambda line, **_: print(line))
    source_words, target_words, _ = task.model_vocabularies(model)

    # -- the length penalty and the no-repeat n-gram size of beam search, chosen on validation --
    grid = [float(v) for v in args.length_penalties.split(",")]
    sizes = [int(v) for v in args.no_repeat_sizes.split(",")]
    if len(grid) > 1 or len(sizes) > 1:
        length_penalty, no_repeat, grid_scores, size_scores = task.choose_decoding(
            model, splits["validation"], grid, sizes, beam_width=args.beam_width)
    else:
        length_penalty, no_repeat, grid_scores, size_scores = grid[0], sizes[0], None, None
    print(f"[zoo] length penalty {length_penalty} (validation BLEU of beam {args.beam_width}: {grid_scores}); "
          f"no-repeat n-gram size {no_repeat} ({size_scores})")

    # -- evaluate on held-out data, beside the baselines -------------------------
    started = time.time()
    metrics = task.measure(model, splits, length_penalty=length_penalty, no_repeat_ngram_size=no_repeat)
    test = metrics["test"]
    print(f"[zoo] test BLEU greedy {test['bleu_greedy']:.2f}, beam {args.beam_width} "
          f"{test.get(f'bleu_beam{args.beam_width}', float('nan')):.2f} | chrF "
          f"{test['chrf_greedy']:.2f} ({time.time() - started:.0f} s)")
    baselines = translation_metrics.baselines_by_split(
        splits["train"], {split: splits[split] for split in task.evaluation_splits(splits)})
    for label, scores in baselines["test"].items():
        print(f"[zoo] baseline {label}: test BLEU {scores['bleu']:.2f}, chrF {scores['chrf']:.2f}")
    domain_comparison = task.compare_with_ibm(metrics, baselines, args.beam_width)
    for split, row in domain_comparison.items():
        print(f"[zoo] {split}: BLEU {row['bleu']:.2f} = {row['bleu_ratio_to_ibm_model1']}x IBM Model 1 "
              f"({row['ibm_model1_bleu']:.2f}); chrF {row['chrf']:.2f} vs {row['ibm_model1_chrf']:.2f}")
    best_baseline = max(baselines["test"], key=lambda k: baselines["test"][k]["bleu"])
    best_bleu = baselines["test"][best_baseline]["bleu"]
    model_bleu = max(test["bleu_greedy"], test.get(f"bleu_beam{args.beam_width}", 0.0))
    comparison = {
        "best_baseline": best_baseline,
        "bleu_ratio_to_best_baseline": round(model_bleu / best_bleu, 3) if best_bleu > 0 else None,
        "chrf_above_every_baseline": all(test["chrf_greedy"] > b["chrf"] for b in baselines["test"].values()),
        "beats_floor": bool(best_bleu > 0 and model_bleu >= 1.5 * best_bleu
                            and all(test["chrf_greedy"] > b["chrf"] for b in baselines["test"].values())),
        "floor": "test BLEU >= 1.5 x the best baseline's, and chrF above every baseline's",
        "by_split": domain_comparison,
    }

    # -- ablations on the same split ---------------------------------------------
    ablation = {}
    if lexicon:
        ablation["no_lexicon"] = {
            "what": "the same model, [UNK] outputs copied from the source instead of translated",
            **task.measure(model, splits, use_lexicon=False, length_penalty=length_penalty,
                           no_repeat_ngram_size=no_repeat)["test"]}
    if args.ablation:
        plain, plain_run = build_and_train("none", os.path.join(args.run_dir, "ablation-no-attention"))
        ablation["no_attention"] = {
            "what": "the same data and settings, --attention none (a plain encoder-decoder)",
            **task.measure(plain, splits, length_penalty=length_penalty)["test"],
            "epochs_run": plain_run["epochs_run"], "seconds": round(plain_run["seconds"], 1)}
        print(f"[zoo] ablation without attention: test BLEU greedy "
              f"{ablation['no_attention']['bleu_greedy']:.2f}")
    if args.dictionary_ablation and (extra_pairs or lexicon):
        alone, alone_run = build_and_train(args.attention, os.path.join(args.run_dir, "ablation-no-dictionary"),
                                           with_dictionary=False)
        ablation["no_dictionary"] = {
            "what": "the same model trained on the sentence pairs only, without the lexicon",
            **task.measure(alone, splits, length_penalty=length_penalty)["test"],
            "epochs_run": alone_run["epochs_run"], "seconds": round(alone_run["seconds"], 1)}
        print(f"[zoo] ablation without the dictionary entries: test BLEU greedy "
              f"{ablation['no_dictionary']['bleu_greedy']:.2f}")
    ablation = ablation or None

    # -- export, then time the exported SavedModel -------------------------------
    from zoo import layers

    encoder_class = layers.sequence_layer_class(args.cell).__name__
    card = {
        "task": task.TASK,
        "io": task.IO_TYPE,
        "description": "Raw German sentence in, English translation out (natural casing and "
                       "punctuation); beam search inside the graph.",
        "architecture": (
            f"SourceTokenizer (words + punctuation, lower-cased, ≤ {task.MAX_SOURCE_TOKENS} tokens) → "
            + (f"SubwordSegmenter ({len(source_words)} German pieces, greedy longest match, ≤ "
               f"{task.MAX_SOURCE_PIECES} pieces) → StringLookup" if args.subwords
               else f"StringLookup({len(source_words)} words + [UNK])")
            + f" → Embedding({args.embedding_dim}, mask_zero) → "
            f"Bidirectional(zoo.layers.{encoder_class}({args.units // 2})) → memory; final states → "
            f"Dense({args.units}, tanh) → decoder state. English {'pieces' if args.subwords else 'words'} → "
            f"{'TiedWordEmbedding' if args.tie_embeddings else 'Embedding'}({args.embedding_dim}) → "
            f"zoo.layers.AttentionDecoder({args.cell}, {args.units}, attention={args.attention}, "
            f"input_feeding={args.input_feeding}) → Dropout({args.dropout}) → "
            + (f"the same TiedWordEmbedding's matrix (projection to {args.embedding_dim}, then "
               f"{len(target_words)} logits)" if args.tie_embeddings else f"WordLogits({len(target_words)} words)")
            + ("; pieces joined into words" if args.subwords
               else "; [UNK] outputs copy the most-attended source word")
        ),
        "parameters": int(model.count_params()),
        "inputs": "Keras model: {'source': string (batch,), 'target_in': int32 (batch, time)}; "
                  "SavedModel: texts string (batch,) [, beam_width int32, max_length int32]",
        "outputs": "Keras model: next-word logits; SavedModel serving_default: translations string "
                   "(batch,), scores float32 (batch,); translate: also attention (batch, target, "
                   "source), source_tokens, target_tokens",
        "decoding": {"default_beam_width": args.beam_width, "length_penalty": length_penalty,
                     "length_penalty_chosen_on": "validation BLEU of beam search",
                     "length_penalty_grid_validation_bleu": grid_scores,
                     "length_penalty_form": "GNMT ((5 + length) / 6) ** alpha",
                     "no_repeat_ngram_size": no_repeat,
                     "no_repeat_ngram_size_validation_bleu": size_scores,
                     "max_source_tokens": task.MAX_SOURCE_TOKENS,
                     "max_decode_length": task.MAX_DECODE_LENGTH,
                     "default_max_length": "2 x longest source + 10 tokens"},
        "vocabulary": {"source_words": len(source_words), "target_words": len(target_words),
                       "min_count": args.min_count, "source_min_count": args.source_min_count,
                       "unknown_words": "[UNK] in the output is replaced by the lexicon translation "
                       "of the source word with the highest attention weight, or by that word itself"},
        "dataset": dataset_card,
        "metrics": metrics,
        "metric_notes": {
            "bleu/chrf": "sacrebleu corpus scores on detokenized outputs against the single reference, "
                         "default tokenization (signatures in each split's entry)",
            "greedy/beam": f"greedy decoding and beam search of width {args.beam_width} with the "
                           f"length penalty above, in-graph engine zoo.generation",
        },
        "baselines": baselines,
        "comparison": comparison,
        "ablation": ablation,
        "training": {
            "epochs_run": run["epochs_run"],
            "best_epoch": run["best_epoch"],
            "seconds": round(run["seconds"], 1),
            "ablation_seconds": {k: v["seconds"] for k, v in (ablation or {}).items() if "seconds" in v},
            "resumed": run["resumed"],
            "hardware": training.hardware_description(),
            "strategy": type(strategy).__name__,
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
        },
        "command": recipe_command("recipes/translation.py", argv),
        "license": "Model and code: Apache-2.0 (this project). Training data: example sentences of the "
                   "Ding German-English dictionary by Frank Richter (GPL-2.0-or-later), from the Debian "
                   "package trans-de-en 1.9-6; the trained weights derive from GPL-licensed data.",
        "created": time.strftime("%Y-%m-%d"),
    }
    if not training.is_chief(strategy):  # in a multi-worker run the chief alone exports
        print("[zoo] not the chief worker: the chief exports the model")
        return card
    shipped = task.fresh_copy(model, learning_rate=args.learning_rate, clipnorm=args.clipnorm,
                              label_smoothing=args.label_smoothing)

    def write_serving(keras_model, path):
        task.write_serving(keras_model, path, beam_width=args.beam_width, length_penalty=length_penalty,
                           no_repeat_ngram_size=no_repeat)

    path = hub.export_model(
        args.name, shipped, card, write_serving,
        extra_files=[os.path.join(args.run_dir, "training_curve.png"),
                     os.path.join(args.run_dir, "history.csv")],
        root=args.output_dir,
    )
    serving = tf.saved_model.load(str(path / hub.SERVING_DIR))
    test_sources = [de for de, _ in splits["test"]]
    throughput = task.measure_throughput(serving, test_sources)
    print(f"[zoo] SavedModel: {throughput['batch_1_greedy_sentences_per_second']:.1f} sentences/s greedy "
          f"at batch 1, {throughput['batch_64_greedy_sentences_per_second']:.1f} at batch 64")
    if args.loop_timing_sentences:
        throughput["python_loop_comparison"] = task.python_loop_speedup(model, test_sources,
                                                                        count=args.loop_timing_sentences)
        print(f"[zoo] in-graph greedy is {throughput['python_loop_comparison']['speedup']:.1f}x a "
              "Python-loop decoder")
    # The throughput is timed on the exported files, so the card is written once more
    # with it (the files it checksums are unchanged).
    card = json.loads((path / hub.CARD_FILE).read_text(encoding="utf-8"))
    card["throughput"] = throughput
    atomic_write_text(path / hub.CARD_FILE, hub.card_json(card))
    training.clear_checkpoints(args.run_dir)  # published: the next run of the command trains afresh
    print(f"[zoo] wrote {path}")
    return card


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
