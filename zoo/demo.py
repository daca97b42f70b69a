"""`make demo`: the zoo's main job in under a minute.

1. Loads the pretrained `sentiment-bilstm-mr` from the hub (checksums
   verified) and classifies a few sentences with its serving SavedModel,
   which takes raw strings.
2. Generates a short key-conditioned melody with the pretrained music model,
   when it is in the hub, and says where the MIDI file went.
3. Shows `zoo list`.
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


def main():
    from zoo import cli
    from zoo._backend import import_tensorflow_quietly

    import_tensorflow_quietly()
    sentiment_demo()
    music_demo()
    print("$ zoo list")
    return cli.main(["list"])


if __name__ == "__main__":
    sys.exit(main())
