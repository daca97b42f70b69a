"""A tiny tagger for tests: a few units trained on twelve short sentences."""


def train_tiny_tagger(epochs=2, learning_rate=2e-3, **options):
    """(model, split, training losses) of a tagger built with `options` (see tagging.build_model)."""
    from zoo.data import tagging as data
    from zoo.tasks import tagging

    sentences = [["The", "dog", "runs", "."], ["A", "cat", "sleeps", "."], ["Dogs", "run", "."]] * 4
    tags = {"universal": [["DET", "NOUN", "VERB", "."], ["DET", "NOUN", "VERB", "."], ["NOUN", "VERB", "."]] * 4}
    split = data.TaggedSentences(sentences, tags, ["d"] * 12, ["g"] * 12)
    sets = tagging.tag_vocabularies(split)
    model = tagging.build_model(split.words, sets, units=8, char_units=4, word_dim=8, char_dim=4, seed=1, **options)
    tagging.compile_model(model, learning_rate)
    history = model.fit(tagging.as_dataset(split, sets, 4, shuffle=True, seed=1), epochs=epochs, verbose=0)
    return model, split, history.history["loss"]
