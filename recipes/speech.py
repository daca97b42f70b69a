"""
Title: Speech recognition with CTC: a bidirectional zoo GRU over log-mel frames, trained on synthetic speech
Description: Train a character-level recogniser on espeak-ng speech, test it on real telephone prompts beside
PocketSphinx and 1-NN DTW, export a SavedModel that takes raw audio or WAV files.

Raw audio goes into the model; it computes its features in the graph (25 ms
windows every 10 ms, 40 mel filters over a 4 kHz band so 8 kHz telephone audio
and wideband audio look alike, then 13 cepstral coefficients: `--cepstra 0`
keeps the log-mel energies), subsamples time four times with two
convolutions, reads the frames with a stack of bidirectional zoo GRUs (or
LSTMs) and scores the 28 characters (a-z, space, apostrophe) plus the CTC
blank at every 40 ms frame (zoo.tasks.speech). While training, each clip gets
random leading silence, gain, noise, a vocal-tract-length warp and SpecAugment
masks; the learning rate warms up for an epoch, then follows a cosine to 0.

Training and validation speech is synthetic: every clip of zoo.data.speech's
corpus is spoken by the espeak-ng formant synthesiser (validation and test in
held-out accents, voice variants and texts). A second synthesiser, flite
(four voices, three of them built from recordings of real speakers), speaks
400 validation texts (`validation_flite`): how the model carries over to a
voice source it never heard, measured without the real test speech, and the
set on which methods that aim at real speech are compared (`--no-real-test`
leaves the real prompts out of such comparison runs). The only real speech is
the test set: the English Asterisk prompts of one professional speaker (8 kHz),
scored whole, without the prompts whose transcript carries a caveat, and as
isolated digits and letters. Beside the model, in the same run:

* PocketSphinx (pip `pocketsphinx`, its bundled US English models), on the
  same Asterisk audio at 16 kHz; skipped, with the reason, when it does not import;
* 1-NN DTW over MFCCs for the isolated digits and letters, its templates the
  synthetic training clips of those words.

Checkpoints every epoch (rerun the same command after a kill to resume); early
stopping on the validation CTC loss. Writes `saved_models/<name>/` (model.keras,
serving SavedModel, card.json).

    python recipes/speech.py                                     # ships speech-bigru-ctc
    python recipes/speech.py --cell lstm --units 160
    python recipes/speech.py --rescore                           # the shipped model scored again, no training
    python recipes/speech.py --max-examples 64 --epochs 1 --units 8 --conv-filters 8 --layers 1 \\
        --baselines dtw --output-dir /tmp/hub                    # smoke run (seconds)
"""

import os
import time

from zoo.settings import (Check, at_least, choices, comma_list, fraction, model_name, non_negative, positive,
                          recipe_command, settings_parser)

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    corpus_size=12000,       # clips of the synthetic corpus (zoo.data.speech; 80/10/10 train/validation/test)
    corpus_seed=1337,        # seeds the corpus's texts, voices and splits
    mel_bins=40,             # mel filters of the features
    max_frequency=4000.0,    # upper edge of the mel filters (Hz): 4000 covers 8 kHz telephone audio
    cepstra=13,              # 0: log-mel features; N: the first N cepstral coefficients (MFCC) instead
    conv_filters=128,        # channels of each subsampling convolution
    conv_kernel=5,           # width (frames) of each subsampling convolution
    subsampling=4,           # time reduction: 4 (two stride-2 convolutions, 40 ms frames) or 2
    cell="gru",              # recurrent cell: gru | lstm (zoo layers)
    units=160,               # units per direction of each bidirectional layer
    layers=3,                # stacked bidirectional layers
    dropout=0.2,
    augment=True,            # gain, noise and SpecAugment masks while training
    epochs=22,               # maximum epochs (early stopping on val_loss may end sooner)
    patience=5,              # epochs without val_loss improvement before stopping
    schedule="cosine",       # cosine: warm-up, then cosine decay to 0 over `epochs`; plateau: x lr_decay after
                             # each epoch without val_loss improvement
    warmup_epochs=1.0,       # cosine: linear warm-up over this many epochs
    lr_decay=0.5,            # plateau: learning rate x this after an epoch without improvement
    batch_size=32,           # clips per batch (batches hold clips of similar length)
    learning_rate=1.5e-3,
    clipnorm=5.0,            # global gradient-norm clipping
    beam_width=8,            # beam width of the SavedModel's serving_default and of the card's beam metrics
    baselines="pocketsphinx,dtw",  # any of these, comma-separated ("" for none)
    real_test=True,          # score the real Asterisk prompts (off for runs that compare methods)
    strategy="auto",         # auto | default | mirrored | multi-worker (cluster from TF_CONFIG)
    seed=1337,               # seeds the initialization, augmentation and batch order
    max_examples=None,       # use only the first N clips of each split and of each kind of Asterisk prompt (smoke runs)
    rescore=False,           # no training: score the hub model `name` again with this version's evaluation and
                             # rewrite its card's metrics, comparison and verdicts (baselines kept as measured)
    name=None,               # model name; default speech-bi<cell>-ctc
    output_dir=None,         # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,            # checkpoints, logs, curves; default runs/<name>
)
CHECKS = dict(
    corpus_size=at_least(100), corpus_seed=non_negative, cepstra=non_negative, mel_bins=(positive, Check("must be <= 128", lambda v: v <= 128)),
    max_frequency=Check("must be in (60, 8000] Hz", lambda v: 60 < v <= 8000), conv_filters=positive,
    conv_kernel=Check("must be a positive odd number", lambda v: v > 0 and v % 2 == 1),
    subsampling=choices(2, 4), cell=choices("gru", "lstm"), units=positive, layers=positive, dropout=fraction,
    epochs=positive, patience=non_negative, schedule=choices("cosine", "plateau"), warmup_epochs=non_negative,
    lr_decay=Check("must be in (0, 1]", lambda v: 0 < v <= 1),
    batch_size=positive, learning_rate=positive, clipnorm=positive,
    beam_width=(positive, Check("must be <= 16", lambda v: v <= 16)),
    baselines=comma_list("pocketsphinx", "dtw", empty=True),
    strategy=choices("auto", "default", "mirrored", "multi-worker"),
    seed=non_negative, max_examples=positive, name=model_name,
)

#: What the issue asks of the model (the card says whether each is met).
FLOOR_SYNTHETIC_TEST_CER = 0.10


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, checks=CHECKS, optional_types={"max_examples": int})
    args = parser.parse_args(argv)
    args.baseline_kinds = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    args.name = args.name or f"speech-bi{args.cell}-ctc"
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def seconds_of(clips, rate):
    return sum(len(c) for c in clips) / rate


def train_model(args, data, strategy):
    """Build, compile and train (checkpointed in run_dir/main, resumable) one recogniser."""
    from zoo import training
    from zoo.tasks import speech as task

    training.seed_everything(args.seed)
    with strategy.scope():
        model = task.build_model(mel_bins=args.mel_bins, max_frequency=args.max_frequency,
                                 conv_filters=args.conv_filters, conv_kernel=args.conv_kernel,
                                 subsampling=args.subsampling, cell=args.cell, units=args.units, layers=args.layers,
                                 dropout=args.dropout, augment=args.augment, cepstra=args.cepstra,
                                 seed=args.seed)
    layers = task.subsampling_layers(model)
    train_data, dropped = task.make_dataset(data["train"]["waveforms"], data["train"]["texts"], args.batch_size,
                                            shuffle=True, seed=args.seed, subsampling_layers=layers)
    validation_data, validation_dropped = task.make_dataset(
        data["validation"]["waveforms"], data["validation"]["texts"], args.batch_size, subsampling_layers=layers)
    if dropped or validation_dropped:
        print(f"[zoo] left out {dropped} training and {validation_dropped} validation clips with too few frames "
              f"for their transcript")
    learning_rate, lr_decay = args.learning_rate, None
    if args.schedule == "cosine":
        learning_rate = task.cosine_schedule(args.learning_rate, int(train_data.cardinality()), args.epochs,
                                             args.warmup_epochs)
    elif args.lr_decay < 1:
        lr_decay = args.lr_decay
    with strategy.scope():
        task.compile_model(model, learning_rate=learning_rate, clipnorm=args.clipnorm)
    run = training.fit(model, train_data, validation_data, epochs=args.epochs,
                       run_dir=os.path.join(args.run_dir, "main"), monitor="val_loss", patience=args.patience,
                       verbose=2, tensorboard=False, lr_decay=lr_decay)
    audio = seconds_of(data["train"]["waveforms"], task.SAMPLE_RATE)
    run["left_out_clips"] = {"train": dropped, "validation": validation_dropped}
    run["audio_seconds_per_second"] = round(audio * run["epochs_run"] / max(run["seconds"], 1e-9), 1)
    print(f"[zoo] trained {run['epochs_run']} epochs (best {run['best_epoch']}) in {run['seconds']:.0f} s, "
          f"{run['audio_seconds_per_second']:.0f} s of audio per second")
    return model, run


def comparison(metrics, baselines, beam_width):
    """Rows: each test set, the model's numbers (beam search) beside each baseline's."""
    from zoo.tasks import speech as task

    beam = task.decoding_label(beam_width)
    rows = []
    for name, scores in metrics.items():
        if name == "validation":
            continue
        row = {"set": name, "model_greedy": scores["greedy"], "model_beam": scores[beam]}
        if task.CLOSED_VOCABULARY in scores:
            row["model_closed_vocabulary"] = scores[task.CLOSED_VOCABULARY]
        for kind, result in baselines.items():
            if result.get("available") and name in result:
                row[kind] = result[name]
        rows.append(row)
    return rows


def comparison_table(rows):
    """The comparison as a Markdown table (CER / WER for sentences, accuracy for isolated words)."""
    kinds = [k for k in ("pocketsphinx", "dtw") if any(k in r for r in rows)]

    def cell(scores):
        if scores is None:
            return "-"
        if "accuracy" in scores:
            return f"acc {scores['accuracy']:.3f}"
        return f"CER {scores['cer']:.3f} / WER {scores['wer']:.3f}"

    lines = ["| set | clips | model (greedy) | model (beam) | model (closed vocabulary) | " + " | ".join(kinds) + " |",
             "|---|---|---|---|---|" + "---|" * len(kinds)]
    for r in rows:
        lines.append(f"| {r['set']} | {r['model_beam']['count']} | {cell(r['model_greedy'])} | "
                     f"{cell(r['model_beam'])} | {cell(r.get('model_closed_vocabulary'))} | "
                     + " | ".join(cell(r.get(k)) for k in kinds) + " |")
    return "\n".join(lines)


def verdicts(metrics, baselines, beam_width):
    """The issue's floors and goal, each met or missed, from the measured numbers only."""
    from zoo.tasks import speech as task

    beam = task.decoding_label(beam_width)
    floors, notes = {}, []
    test_cer = metrics["test"][beam]["cer"]
    floors["synthetic_test_cer_at_most_0.10"] = bool(test_cer <= FLOOR_SYNTHETIC_TEST_CER)
    notes.append(f"floor: synthetic held-out test CER ≤ {FLOOR_SYNTHETIC_TEST_CER:.0%}: "
                 f"{'met' if floors['synthetic_test_cer_at_most_0.10'] else 'missed'} ({test_cer:.2%}, {beam})")
    words = metrics.get("asterisk_digits_letters", {}).get(beam)
    dtw = baselines.get("dtw", {})
    if words is None:
        notes.append("floor: Asterisk digits and letters above the DTW baseline: not measured (no Asterisk prompts)")
    elif not dtw.get("available") or "asterisk_digits_letters" not in dtw:
        notes.append("floor: Asterisk digits and letters above the DTW baseline: not measured (DTW baseline "
                     f"not run: {dtw.get('reason', 'left out with --baselines')})")
    else:
        # DTW chooses among its templates' words; the model is judged on the same task (a closed
        # vocabulary: the training digits and letters), and its open transcription is shown beside.
        theirs = dtw["asterisk_digits_letters"]["accuracy"]
        closed = metrics["asterisk_digits_letters"].get(task.CLOSED_VOCABULARY)
        judged = closed if closed is not None else words
        floors["asterisk_digits_letters_above_dtw"] = bool(judged["accuracy"] > theirs)
        notes.append(f"floor: real Asterisk digits and letters, accuracy above 1-NN DTW: "
                     f"{'met' if floors['asterisk_digits_letters_above_dtw'] else 'missed'} "
                     + (f"({judged['accuracy']:.3f} choosing among the {closed['vocabulary']} training digits and "
                        f"letters, as DTW does, vs {theirs:.3f}, {judged['count']} words; transcribed freely "
                        f"({beam}) {words['accuracy']:.3f})" if closed is not None else
                        f"({words['accuracy']:.3f} vs {theirs:.3f}, {words['count']} words)"))
    prompts = metrics.get("asterisk", {}).get(beam)
    sphinx = baselines.get("pocketsphinx", {})
    if prompts is None:
        notes.append("goal: lower WER than PocketSphinx on the Asterisk prompts: not measured (no Asterisk prompts)")
    elif not sphinx.get("available") or "asterisk" not in sphinx:
        notes.append("goal: lower WER than PocketSphinx on the Asterisk prompts: not measured (PocketSphinx "
                     f"not run: {sphinx.get('reason', 'left out with --baselines')})")
    else:
        theirs = sphinx["asterisk"]["wer"]
        floors["goal_asterisk_wer_below_pocketsphinx"] = bool(prompts["wer"] < theirs)
        notes.append(f"goal: lower WER than PocketSphinx on the Asterisk prompts: "
                     f"{'met' if floors['goal_asterisk_wer_below_pocketsphinx'] else 'missed'} "
                     f"({prompts['wer']:.3f} vs {theirs:.3f}, {prompts['count']} prompts)")
        if "asterisk_without_caveats" in sphinx and "asterisk_without_caveats" in metrics:
            mine = metrics["asterisk_without_caveats"][beam]["wer"]
            notes.append(f"without the caveat prompts: WER {mine:.3f} vs PocketSphinx "
                         f"{sphinx['asterisk_without_caveats']['wer']:.3f}")
    return floors, notes


def results_text(table, notes):
    """The model directory's results.md: the comparison table, then the verdicts."""
    return table + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def changed_figures(held, measured, where=""):
    """Dotted paths of the figures in `held` (a card's metrics) that `measured` gives otherwise or
    not at all, sorted."""
    if not isinstance(held, dict):
        return [] if held == measured else [where]
    if not isinstance(measured, dict):
        return [where]
    return sorted(path for key, value in held.items()
                  for path in changed_figures(value, measured.get(key), f"{where}.{key}" if where else key))


def added_entries(held, measured, where=""):
    """Dotted paths of the entries of `measured` that `held` does not have (the topmost of each), sorted."""
    if not isinstance(measured, dict) or not isinstance(held, dict):
        return []
    found = []
    for key, value in measured.items():
        path = f"{where}.{key}" if where else key
        found += [path] if key not in held else added_entries(held[key], value, path)
    return sorted(found)


def rescore(args, argv):
    """`--rescore`: the shipped model's metrics measured again by this version's `evaluate` (a new
    decoding or set is added; the old figures come out the same, the model files untouched), its
    comparison and verdicts recomputed, the baselines kept as the recipe measured them (they do not
    depend on the model), and the card and results.md rewritten, with a `rescored` entry."""
    from pathlib import Path

    from zoo import hub
    from zoo.data.cache import atomic_write_text
    from zoo.tasks import speech as task

    path = (Path(args.output_dir) if args.output_dir else hub.models_dir()) / args.name
    hub.verify_directory(path, shown_as=args.name)
    card = hub.read_card(path / hub.CARD_FILE)
    if card.get("task") != task.TASK:
        raise ValueError(f"{args.name} is a {card.get('task')} model, not a speech recogniser")
    dataset, beam_width = card["dataset"], card["decoding"]["beam_width"]
    data = task.load_data(dataset["seed"], dataset["size"], dataset.get("max_examples_per_split"),
                          asterisk=any(name.startswith("asterisk") for name in card["metrics"]),
                          flite="validation_flite" in card["metrics"])
    metrics = task.evaluate(hub.load(str(path), verify=False, compile=False), data, beam_width=beam_width)  # verified above
    changed = changed_figures(card["metrics"], metrics)
    if changed:
        raise RuntimeError("rescoring changed figures the card already holds (" + ", ".join(changed)
                           + "): retrain with the recipe instead")
    rows = comparison(metrics, card["baselines"], beam_width)
    floors, notes = verdicts(metrics, card["baselines"], beam_width)
    table = comparison_table(rows)
    print(table)
    for note in notes:
        print(f"[zoo] {note}")
    added = added_entries(card["metrics"], metrics)
    card.update(metrics=metrics, comparison=rows, floors=floors, verdicts=notes)
    card.setdefault("rescored", []).append({
        "date": time.strftime("%Y-%m-%d"), "command": recipe_command("recipes/speech.py", argv),
        "added": added, "note": "model.keras and the SavedModel are unchanged; every figure the card held before came out the same"})
    atomic_write_text(path / "results.md", results_text(table, notes))
    card["files"] = hub.file_checksums(path)
    atomic_write_text(path / hub.CARD_FILE, hub.card_json(card))
    print(f"[zoo] rescored {path}: added {', '.join(added) or 'nothing'}")
    return card


def main(argv=None):
    args = parse_args(argv)
    if args.rescore:
        return rescore(args, argv)
    from zoo import hub, training
    from zoo.data import speech as speech_data
    from zoo.tasks import speech as task

    started = time.time()
    strategy = training.select_strategy(args.strategy)

    # -- data ------------------------------------------------------------------
    loading = time.perf_counter()
    data = task.load_data(args.corpus_seed, args.corpus_size, args.max_examples, asterisk=args.real_test)
    print("[zoo] speech: " + ", ".join(
        f"{name} {len(split['texts'])} clips / {seconds_of(split['waveforms'], split.get('sample_rate', task.SAMPLE_RATE)):.0f} s"
        for name, split in data.items()) + f" (read in {time.perf_counter() - loading:.0f} s)")

    # -- train, evaluate --------------------------------------------------------
    model, run = train_model(args, data, strategy)
    evaluating = time.perf_counter()
    metrics = task.evaluate(model, data, beam_width=args.beam_width)
    evaluation_seconds = round(time.perf_counter() - evaluating, 1)
    baselines = {}
    if "dtw" in args.baseline_kinds:
        print("[zoo] baseline: 1-NN DTW over MFCCs")
        baselines["dtw"] = task.dtw_baseline(data)
    if "pocketsphinx" in args.baseline_kinds:
        print("[zoo] baseline: PocketSphinx")
        baselines["pocketsphinx"] = task.pocketsphinx_baseline(data)
        if not baselines["pocketsphinx"]["available"]:
            print(f"[zoo] PocketSphinx skipped: {baselines['pocketsphinx']['reason']}")
    rows = comparison(metrics, baselines, args.beam_width)
    table = comparison_table(rows)
    print(table)
    floors, notes = verdicts(metrics, baselines, args.beam_width)
    for note in notes:
        print(f"[zoo] {note}")

    # -- card and export -----------------------------------------------------------
    dataset = speech_data.describe_corpus(seed=args.corpus_seed, size=args.corpus_size)
    dataset.update({"seed": args.corpus_seed, "size": args.corpus_size,
                    "used": {name: len(split["texts"]) for name, split in data.items()}})
    if "validation_flite" in data:
        dataset["validation_flite"] = {
            "source": "Debian flite 2.2 (BSD-style licence), its built-in English voices; validation texts of the "
                      "corpus, never trained on",
            "flite": data["validation_flite"]["flite"], "voices": list(speech_data.FLITE_VOICES),
            "clips": len(data["validation_flite"]["texts"])}
    else:
        dataset["validation_flite"] = "not measured: flite is not installed (sudo apt-get install flite)"
    if args.max_examples:
        dataset["max_examples_per_split"] = args.max_examples
    card = {
        "task": task.TASK,
        "io": task.IO_TYPE,
        "description": "English speech recogniser: audio (any rate from 4 to 96 kHz, or 16-bit PCM WAV files) "
                       "in, lower-case text (a-z, space, apostrophe) out, character by character (CTC).",
        "note": "Every training and validation number is synthetic: the model trained only on espeak-ng speech "
                "(zoo.data.speech), and its 'validation' and 'test' sets are synthetic too (held-out accents, "
                "voice variants and texts). 'validation_flite' is synthetic as well: validation texts spoken by "
                "another synthesiser, flite (never trained on; methods aimed at real speech were compared on "
                "it). The only real speech is the Asterisk test sets (one professional speaker, 8 kHz "
                "telephone prompts), never used in training or model selection.",
        "architecture": task.describe_architecture(model, args.mel_bins, args.max_frequency, args.conv_filters,
                                                   args.conv_kernel, args.cell, args.units, args.layers,
                                                   args.dropout, args.augment),
        "parameters": int(model.count_params()),
        "alphabet": speech_data.ALPHABET,
        "blank_index": task.BLANK,
        "inputs": "waveforms float32 [batch, samples] in [-1, 1] at 16 kHz (zeros pad), lengths int32 [batch]; "
                  "the serving signatures also take other rates (sample_rate) and WAV files",
        "outputs": f"character logits float32 [batch, frames, {task.CLASSES}] per 40 ms frame: ALPHABET then the "
                   f"blank (index {task.BLANK}); frames past a clip's end are certain blanks",
        "serving": {"signatures": ["serving_default", "transcribe", "transcribe_bytes"],
                    "max_batch": task.MAX_BATCH, "max_seconds": task.MAX_SECONDS,
                    "sample_rates": [task.MIN_SAMPLE_RATE, task.MAX_SAMPLE_RATE],
                    "max_beam_width": task.MAX_BEAM_WIDTH},
        "decoding": {"beam_width": args.beam_width,
                     "methods": "greedy: best path, repeats merged, blanks dropped; beam: CTC prefix beam search "
                                "(tf.nn.ctc_beam_search_decoder); runs of spaces collapsed, ends trimmed"},
        "dataset": dataset,
        "metrics": metrics,
        "metric_definitions": {
            "cer": "character edits (Levenshtein, spaces count) summed over clips / reference characters summed",
            "wer": "word edits summed over clips / reference words summed",
            "exact_match": "share of clips transcribed exactly",
            "accuracy": "isolated words (digits, letters): share transcribed exactly",
            "sets": "validation, test: synthetic held-out splits; test_isolated_words: its digits and letters; "
                    "validation_flite: validation texts spoken by flite's voices (slt, rms, awb, kal16); "
                    "asterisk: every real prompt; asterisk_without_caveats: the prompts whose transcript "
                    "carries no caveat; asterisk_digits_letters: the 11 digits and 26 letters"},
        "baselines": baselines,
        "comparison": rows,
        "floors": floors,
        "verdicts": notes,
        "training": {
            "seconds": run["seconds"],
            "epochs_run": run["epochs_run"],
            "best_epoch": run["best_epoch"],
            "audio_seconds_per_second": run["audio_seconds_per_second"],
            "left_out_clips": run["left_out_clips"],
            "resumed": bool(run.get("resumed")),
            "evaluation_seconds": evaluation_seconds,
            "hardware": training.hardware_description(),
            "strategy": type(strategy).__name__,
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
            "wall_seconds": round(time.time() - started, 1),
        },
        "command": recipe_command("recipes/speech.py", argv),
        "license": "Model: Apache-2.0 (this project). Training speech: generated with espeak-ng (GPL-3.0-or-later) "
                   "from texts of the Ding dictionary (GPL-2+) and generated numbers; test speech: Asterisk "
                   "prompts, CC-BY-SA-3.0, (c) Allison Smith.",
        "created": time.strftime("%Y-%m-%d"),
    }
    if not training.is_chief(strategy):  # in a multi-worker run the chief alone exports
        return card
    main_dir = os.path.join(args.run_dir, "main")
    results_path = os.path.join(args.run_dir, "results.md")
    with open(results_path, "w", encoding="utf-8") as handle:
        handle.write(results_text(table, notes))
    task.compile_model(model, args.learning_rate, args.clipnorm)  # a fresh optimizer: no Adam moments shipped
    path = hub.export_model(
        args.name, model, card, lambda m, p: task.write_serving(m, p, beam_width=args.beam_width),
        extra_files=training.run_artifacts(main_dir) + [(results_path, "results.md")],
        root=args.output_dir,
    )
    training.clear_checkpoints(main_dir)
    print(f"[zoo] wrote {path}")
    return card


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
