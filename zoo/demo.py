"""`make demo`: the zoo's main job in under a minute.

1. Loads the pretrained `sentiment-bilstm-mr` from the hub (checksums
   verified) and classifies a few sentences with its serving SavedModel,
   which takes raw strings.
2. Generates a short key-conditioned melody with the pretrained music model,
   when it is in the hub, and says where the MIDI file went.
3. Translates a few German sentences with the pretrained translation model
   (beam search inside its SavedModel), when it is in the hub, and draws the
   attention map of the first one.
4. Shows `zoo list`.
"""

from zoo import _backend  # noqa: F401

import sys

SENTENCES = [
    "A gorgeous, witty and deeply moving film.",
    "The plot is a tedious mess and the jokes fall flat.",
    "Not the best of the series, but it has its moments.",
    "I can't remember the last time a movie made me this angry about wasting two hours.",
]


def sentiment_demo(name="sentiment-bilstm-mr"):
    from zoo import hub
    from zoo.tasks import sentiment

    card = hub.info(name)
    serving = hub.load_serving(name)
    accuracy = card["metrics"]["test"]["accuracy"]
    print(f"{name}: {card['architecture']}")
    print(f"  test accuracy {accuracy:.3f} on {card['metrics']['test']['examples']} held-out "
          f"sentences (baseline {card['baseline']['name']}: {card['baseline']['accuracy']:.3f})\n")
    for text, probability in zip(SENTENCES, sentiment.serve_predictions(serving, SENTENCES)):
        print("  " + sentiment.format_prediction(text, float(probability)))
    print()


def music_demo(out_dir="demo-output"):
    from zoo import hub

    names = hub.list_models("music-*")
    if not names:
        return None
    from zoo.tasks import music

    path = music.demo(out_dir, name=names[0])
    print()
    return path


GERMAN = [
    "Ich bin in zehn Minuten da.",
    "Wo ist der nächste Bahnhof?",
    "Das Wetter ist heute sehr schön.",
    "Er hat seinen Schlüssel verloren.",
]


def translation_demo(out_dir="demo-output"):
    from pathlib import Path

    from zoo import hub

    names = hub.list_models("translation-*")
    if not names:
        return None
    from zoo.tasks import translation

    name = names[0]
    card = hub.info(name)
    test = card["metrics"]["test"]
    print(f"{name}: test BLEU {test['bleu_beam4']:.1f} (beam 4), chrF {test['chrf_beam4']:.1f} "
          f"on {test['sentences']} held-out sentence pairs")
    results = translation.translate(hub.load_serving(name), GERMAN, beam_width=4, details=True)
    for text, result in zip(GERMAN, results):
        print(f"  {text}  →  {result['translation']}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = translation.attention_map_png(results[0], Path(out_dir) / "attention.png",
                                         title=f"{GERMAN[0]} → {results[0]['translation']}")
    print(f"wrote the attention map of the first sentence to {path}\n")
    return path


def main():
    from zoo import cli
    from zoo._backend import import_tensorflow_quietly

    import_tensorflow_quietly()
    sentiment_demo()
    music_demo()
    translation_demo()
    print("$ zoo list")
    return cli.main(["list"])


if __name__ == "__main__":
    sys.exit(main())
