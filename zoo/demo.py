"""`make demo`: the zoo's main job in under a minute.

1. Loads the pretrained `sentiment-bilstm-mr` from the hub (checksums
   verified) and classifies a few sentences with its serving SavedModel,
   which takes raw strings.
2. Generates a short key-conditioned melody with the pretrained music model,
   when it is in the hub, and says where the MIDI file went.
3. Translates a few German sentences with the pretrained translation model
   (beam search inside its SavedModel), when it is in the hub, and draws the
   attention map of the first one.
4. Captions a few emoji drawings (in the style the captioning model never saw, or, for a model trained on every
   style, Twitter's, beside its leave-one-style-out figures; fetched from npm on first use), when the model
   is in the hub, and draws each word's attention over the first one.
5. Forecasts yearly series that M1 never saw with the pretrained M1
   forecaster (the last 6 years hidden), and plots one with its interval.
6. Names the speakers of a few held-out Japanese vowel recordings with the
   pretrained time-series classifier.
7. Tags sentences, generates and scores text with the language models.
8. Transcribes two real telephone prompts with the speech recogniser (trained
   on synthetic speech only) from their WAV bytes, beside what was said.
9. Shows `zoo list`.
"""

from zoo import _backend  # noqa: F401

import sys

SENTENCES = [
    "A gorgeous, witty and deeply moving film.",
    "The plot is a tedious mess and the jokes fall flat.",
    "Not the best of the series, but it has its moments.",
    "I can't remember the last time a movie made me this angry about wasting two hours.",
]
# Product reviews, the kind of text the multi-domain model is also meant for.
PRODUCT_REVIEWS = [
    "The fabric is soft and the fit is perfect, I ordered it in two colours.",
    "Cheap material, the seams came apart after one wash. Returned it.",
    "This tea tastes stale and the box arrived crushed.",
    "My kids love these crackers, we buy a case every month.",
]


def sentiment_demo(name=None):
    """The multi-domain sentiment model (the movie-review one where it is not shipped) on movie
    and product reviews, with its per-domain accuracy beside TF-IDF + LR from its card."""
    from zoo import hub
    from zoo.tasks import sentiment

    name = name or _first_model("sentiment-*-mr-*") or "sentiment-bilstm-mr"
    card = hub.info(name)
    serving = hub.load_serving(name)
    accuracy = card["metrics"]["test"]["accuracy"]
    print(f"{name}: {card['architecture']}")
    print(f"  test accuracy {accuracy:.3f} on {card['metrics']['test']['examples']} held-out "
          f"texts (baseline {card['baseline']['name']}: {card['baseline']['accuracy']:.3f})")
    for domain, entry in (card["metrics"].get("domains") or {}).items():
        print(f"  {domain} ({entry['kind']}): {entry['model']['accuracy']:.3f} "
              f"(TF-IDF+LR {entry['tfidf_logistic']:.3f})")
    print()
    texts = SENTENCES + (PRODUCT_REVIEWS if card["metrics"].get("domains") else [])
    for text, probability in zip(texts, sentiment.serve_predictions(serving, texts)):
        print("  " + sentiment.format_prediction(text, float(probability)))
    print()


def _first_model(pattern):
    """The first hub model whose name matches `pattern`, or None (that demo is then skipped)."""
    from zoo import hub

    names = hub.list_models(pattern)
    return names[0] if names else None


def music_demo(out_dir="demo-output"):
    name = _first_model("music-*")
    if name is None:
        return None
    from zoo.tasks import music

    path = music.demo(out_dir, name=name)
    print()
    return path


GERMAN = [
    "Ich bin in zehn Minuten da.",
    "Wo ist der nächste Bahnhof?",
    "Das Wetter ist heute sehr schön.",
    "Er hat seinen Schlüssel verloren.",
    "Die Zwerge haben das Tor der Festung geschlossen.",
]


def translation_demo(out_dir="demo-output"):
    from pathlib import Path

    name = _first_model("translation-*")
    if name is None:
        return None
    from zoo import hub
    from zoo.tasks import translation

    card = hub.info(name)
    test = card["metrics"]["test"]
    print(f"{name}: test BLEU {test['bleu_beam4']:.1f} (beam 4), chrF {test['chrf_beam4']:.1f} "
          f"on {test['sentences']} held-out sentence pairs")
    for split, row in ((card.get("comparison") or {}).get("by_split") or {}).items():
        if split in (card.get("dataset") or {}).get("held_out_domains", []):
            print(f"  held-out domain {split} (never trained on): BLEU {row['bleu']:.1f}, "
                  f"{row['bleu_ratio_to_ibm_model1']}x word-by-word IBM Model 1")
    results = translation.translate(hub.load_serving(name), GERMAN, beam_width=4, details=True)
    for text, result in zip(GERMAN, results):
        print(f"  {text}  →  {result['translation']}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = translation.attention_map_png(results[0], Path(out_dir) / "attention.png",
                                         title=f"{GERMAN[0]} → {results[0]['translation']}")
    print(f"wrote the attention map of the first sentence to {path}\n")
    return path


#: Emoji (code points) the captioning demo names, drawn in the held-out style.
EMOJI = ["1f602", "1f1ef-1f1f5", "1f44d-1f3fd", "1f431", "2615", "1f9d1-200d-1f692"]
#: The style the demo draws them in when the model trained on every style.
DEMO_STYLE = "twitter"


def captioning_demo(out_dir="demo-output"):
    from pathlib import Path

    name = _first_model("captioning-*")
    if name is None:
        return None
    from zoo import hub
    from zoo.data import emoji
    from zoo.data.cache import DataUnavailableError
    from zoo.tasks import captioning

    card = hub.info(name)
    style = card["dataset"]["test_style"]
    if style is not None:
        test = card["metrics"]["test"][f"beam{captioning.DEFAULT_BEAM_WIDTH}"]["overall"]
        print(f"{name}: on {test['count']} drawings in the {style} style, never seen in training: exact "
              f"match {test['exact_match']:.3f}, CIDEr-D {test['cider_d']:.2f}")
    else:  # trained on every style: how it does on a style it never saw is what the rotations measured
        style = DEMO_STYLE
        mean = card["leave_one_style_out"]["mean"]
        print(f"{name} trained on all four styles. Trained without one style and tested on it, in turn "
              f"(mean of 4): exact match {mean['model']['overall']['exact_match']:.3f}, CIDEr-D "
              f"{mean['model']['overall']['cider_d']:.2f}; the nearest training drawing "
              f"{mean['nearest_neighbour_pixels']['overall']['exact_match']:.3f} / "
              f"{mean['nearest_neighbour_pixels']['overall']['cider_d']:.2f}. Its own {style} drawings:")
    try:
        drawings = emoji.load_style(style)
    except DataUnavailableError as error:
        print(f"  (the {style} drawings are not available here, so nothing to caption: {error})\n")
        return None
    index = {codepoints: i for i, codepoints in enumerate(drawings["codepoints"])}
    chosen = [index[c] for c in EMOJI if c in index]
    images = [drawings["images"][i] for i in chosen]
    results = captioning.caption(hub.load_serving(name), images, beam_width=captioning.DEFAULT_BEAM_WIDTH)
    for i, result in zip(chosen, results):
        mark = "=" if result["caption"] == drawings["captions"][i] else "≠"
        print(f"  {result['caption']!r:45} {mark} CLDR name {drawings['captions'][i]!r}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = captioning.attention_overlay_png(images[0], results[0], Path(out_dir) / "caption-attention.png")
    print(f"wrote each word's attention over the first drawing to {path}\n")
    return path


#: Held-out yearly series the forecasting demo forecasts (names from `zoo.data.timeseries.load_heldout_yearly`).
FORECAST_SERIES = ("nile", "lynx", "us-realgdp", "us-cpi")


def forecasting_demo(out_dir="demo-output"):
    from pathlib import Path

    import numpy as np

    name = _first_model("forecasting-*-m1")
    if name is None:
        return None
    from zoo import hub
    from zoo.data import timeseries
    from zoo.tasks import forecasting

    card = hub.info(name)
    test = card["metrics"]["test"]
    print(f"{name}: M1 test OWA {test['owa']:.3f} (Theta {card['baselines']['theta']['owa']:.3f}); "
          f"yearly series it never saw, the last 6 years hidden:")
    serving = hub.load_serving(name)
    series = dict(timeseries.load_heldout_yearly())
    chosen = [series[n] for n in FORECAST_SERIES if n in series]
    result = forecasting.forecast(serving, [values[:-6] for values in chosen])
    for row, (label, values) in enumerate(zip(FORECAST_SERIES, chosen)):
        actual = values[-6:]
        inside = int(np.sum((actual >= result["lower"][row]) & (actual <= result["upper"][row])))
        print(f"  {label:<11} sMAPE {forecasting.smape(actual, result['median'][row]):6.2f}  "
              f"(naive {forecasting.smape(actual, np.repeat(values[-7], 6)):6.2f}); "
              f"{inside}/6 actual values inside the 80% interval")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = forecasting.plot_forecast(chosen[0][:-6], {k: v[0] for k, v in result.items()},
                                     Path(out_dir) / "forecast.png", title=f"{name}: {FORECAST_SERIES[0]}",
                                     actual=chosen[0][-6:])
    print(f"wrote the forecast of the first series to {path}\n")
    return path


def classification_demo(count=6):
    name = _first_model("timeseries-classification-*")
    if name is None:
        return None
    from zoo import hub
    from zoo.data import timeseries
    from zoo.tasks import get_task

    card = hub.info(name)
    task = get_task(card["task"])
    test = timeseries.load_ucr(card["dataset"]["name"])["test"]
    print(f"{name}: test accuracy {card['metrics']['test']['accuracy']:.3f} on "
          f"{card['metrics']['test']['examples']} held-out {card['dataset']['name']} series")
    step = max(1, len(test) // count)
    chosen = list(range(0, len(test), step))[:count]
    names, probabilities = task.classify_series(hub.load_serving(name), [test.series[i] for i in chosen])
    for i, predicted, row in zip(chosen, names, probabilities):
        mark = "=" if predicted == test.labels[i] else "≠"
        print(f"  series {i:>3} ({len(test.series[i])} steps): class {predicted} (p={row.max():.3f}) "
              f"{mark} true class {test.labels[i]}")
    print()
    return names


def tagging_demo(texts=("The old man the boats.", "Time flies like an arrow; fruit flies like a banana.")):
    from zoo import hub
    from zoo.tasks import tagging

    shown = []
    for pattern, examples in (("tagging-*-brown", texts),
                              ("tagging-*-porttinari", ("O velho barco chegou ao porto de Santos ontem.",))):
        name = _first_model(pattern)
        if name is None:
            continue
        card = hub.info(name)
        first = next(iter(card["tag_sets"]))
        test = card["metrics"]["test"][first]
        print(f"{name}: {first} tags, test accuracy {test['accuracy']:.4f} "
              f"(words unseen in training {test['unseen_word_accuracy']:.4f})")
        model = tagging.load_tagger(name)
        for tagged in tagging.tag_texts(model, list(examples)):
            line = tagging.format_tagged(tagged, first)
            shown.append(line)
            print(f"  {line}")
        print()
    return shown


def language_model_demo():
    """Each shipped language model: its held-out score beside the n-gram, a seeded continuation of a
    prompt and the score of a sentence."""
    from zoo import hub
    from zoo.tasks import language_model as lm

    shown = []
    for pattern, prompt, sentence in (
            ("lm-*-ptb", "the company said", "the company said it expects sales to rise next year"),
            ("lm-*-shakespeare", "ROMEO.\n", "ROMEO.\nBut soft, what light through yonder window breaks?")):
        name = _first_model(pattern)
        if name is None:
            continue
        card = hub.info(name)
        test, ngram = card["metrics"]["test"], card["baselines"]["kneser_ney"]
        if card["codec"]["level"] == "char":
            print(f"{name}: held-out plays {test['bits_per_token']:.3f} bits/char (Kneser–Ney "
                  f"{ngram['order']}-gram {ngram['test']['bits_per_token']:.3f})")
        else:
            print(f"{name}: test perplexity {test['perplexity']:.1f} (Kneser–Ney {ngram['order']}-gram "
                  f"{ngram['test']['perplexity']:.1f})")
        model, codec = lm.load_language_model(name)
        length = 300 if codec.level == "char" else 30
        (text,) = lm.generate_texts(model, codec, [prompt], max_length=length, temperature=0.8, top_k=40, seed=7)
        joined = prompt + ("" if codec.level == "char" else " ") + text
        shown.append(joined)
        print("  $ zoo generate " + name + f" --prompt {prompt!r} --length {length} --temperature 0.8 --top-k 40 --seed 7")
        print("  " + joined.replace("\n", "\n  "))
        (scored,) = lm.score_texts(model, codec, [sentence])
        print(f"  $ zoo score {name} {sentence!r}\n  {scored['tokens']} {codec.unit}s, perplexity "
              f"{scored['perplexity']:.1f} ({scored['bits_per_token']:.3f} bits per {codec.unit})\n")
    return shown


def speech_demo(prompts=("digits/7", "conf-onlyperson")):
    """Two real Asterisk telephone prompts (one speaker, 8 kHz; never trained on) transcribed from
    their WAV bytes by the speech model's SavedModel, beside their transcripts."""
    name = _first_model("speech-*")
    if name is None:
        return None
    from zoo import hub
    from zoo.data import speech as speech_data
    from zoo.report import headline
    from zoo.tasks import speech

    card = hub.info(name)
    print(f"{name}: {headline(card)}")
    try:
        real = speech_data.load_asterisk_prompts()
    except speech_data.DataUnavailableError as error:
        print(f"  (the Asterisk prompts are not available here: {error})\n")
        return None
    chosen = [real["names"].index(p) for p in prompts if p in real["names"]]
    files = [speech.wav_bytes(real["waveforms"][i], real["sample_rate"]) for i in chosen]
    out = hub.load_serving(name).signatures["transcribe_bytes"](wav_bytes=speech.tf.constant(files))
    texts = [t.decode("utf-8") for t in out["texts"].numpy()]
    for i, text in zip(chosen, texts):
        print(f"  {real['names'][i]}.wav: {text!r}  (said: {real['transcripts'][i]!r})")
    print()
    return texts


def main():
    from zoo import cli
    from zoo._backend import import_tensorflow_quietly

    import_tensorflow_quietly()
    sentiment_demo()
    music_demo()
    translation_demo()
    captioning_demo()
    forecasting_demo()
    classification_demo()
    tagging_demo()
    language_model_demo()
    speech_demo()
    print("$ zoo list")
    return cli.main(["list"])


if __name__ == "__main__":
    sys.exit(main())
