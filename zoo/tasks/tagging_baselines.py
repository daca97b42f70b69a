"""The taggers a recurrent tagger must beat, trained on the same split, and the scores of all taggers.

* :class:`MostFrequentTag`: each word's most frequent training tag; a word
  never seen in training gets the most frequent open-class tag.
* :func:`train_perceptron`: NLTK's averaged perceptron
  (``PerceptronTagger(load=False)``, its own feature set), trained here; no
  NLTK data is downloaded.
* :func:`train_crf`: a linear-chain CRF (CRFsuite through ``python-crfsuite``,
  L-BFGS with elastic-net regularisation) over hand-made features of each
  word and its neighbours (:func:`crf_features`).

:func:`score` measures any tagger's output the same way: token accuracy
overall, on words unseen in training, and per group (genre or domain).
This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import collections
import os
import random
import tempfile
import time

#: The baselines, by the names the recipe and cards use, and how tables name them.
BASELINE_NAMES = {"most_frequent": "most frequent tag", "perceptron": "averaged perceptron", "crf": "CRF"}

#: Open-class tags (content words) of each tag set; an unknown word gets the most frequent of them.
OPEN_CLASSES = {
    "universal": {"NOUN", "VERB", "ADJ", "ADV"},
    "upos": {"NOUN", "PROPN", "VERB", "ADJ", "ADV"},
}


def open_class(tag, label_set):
    """Whether `tag` of `label_set` is an open-class tag (Brown tags through their universal tag)."""
    if label_set == "brown":
        from zoo.data.tagging import brown_to_universal

        return brown_to_universal(tag) in OPEN_CLASSES["universal"]
    return tag in OPEN_CLASSES.get(label_set, OPEN_CLASSES["upos"])


class MostFrequentTag:
    """The most frequent training tag of each word form (ties: the tag seen first)."""

    def __init__(self, sentences, tags, label_set):
        counts = collections.defaultdict(collections.Counter)
        totals = collections.Counter()
        for words, sentence_tags in zip(sentences, tags):
            for word, tag in zip(words, sentence_tags):
                counts[word][tag] += 1
                totals[tag] += 1
        self.best = {word: c.most_common(1)[0][0] for word, c in counts.items()}
        open_tags = [(n, t) for t, n in totals.items() if open_class(t, label_set)]
        self.unknown = max(open_tags)[1] if open_tags else totals.most_common(1)[0][0]

    def tag(self, sentences):
        return [[self.best.get(w, self.unknown) for w in words] for words in sentences]


def train_perceptron(sentences, tags, iterations=5, seed=0):
    """NLTK's averaged perceptron trained on (word, tag) sentences; returns its `tag` as a callable."""
    from nltk.tag.perceptron import PerceptronTagger

    tagger = PerceptronTagger(load=False)
    state = random.getstate()
    random.seed(seed)  # NLTK shuffles the sentences with the global generator between iterations
    try:
        tagger.train([list(zip(w, t)) for w, t in zip(sentences, tags)], nr_iter=iterations)
    finally:
        random.setstate(state)
    return lambda batch: [[t for _, t in tagger.tag(list(words))] if words else [] for words in batch]


def _shape(word):
    """A word's shape with runs collapsed: "McDonald's" -> "XxXx'x", "1,119" -> "d,d"."""
    out = []
    for ch in word:
        kind = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != kind:
            out.append(kind)
    return "".join(out)[:8]


def _word_features(word, prefix):
    lower = word.lower()
    return {
        f"{prefix}w": lower,
        f"{prefix}s3": lower[-3:],
        f"{prefix}s2": lower[-2:],
        f"{prefix}title": word[:1].isupper(),
        f"{prefix}shape": _shape(word),
    }


def crf_features(words):
    """CRFsuite features of every word of a sentence: the word (lower-cased), its prefixes and
    suffixes of 1-4 characters, its shape, capitalisation, digits and hyphens, and the lower-cased
    words, suffixes and shapes of its two neighbours on each side."""
    features = []
    for i, word in enumerate(words):
        lower = word.lower()
        f = {"bias": 1.0, "w": lower, "shape": _shape(word), "title": word[:1].isupper(),
             "upper": word.isupper(), "digit": any(c.isdigit() for c in word), "hyphen": "-" in word,
             "first": i == 0, "last": i == len(words) - 1, "len": min(len(word), 10)}
        for n in (1, 2, 3, 4):
            f[f"p{n}"] = lower[:n]
            f[f"s{n}"] = lower[-n:]
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if 0 <= j < len(words):
                f.update(_word_features(words[j], f"{offset:+d}:"))
            else:
                f[f"{offset:+d}:edge"] = True
        features.append({k: (v if isinstance(v, (bool, float)) else str(v)) for k, v in f.items()})
    return features


def _crfsuite_items(features):
    """python-crfsuite's item format: string features as 'name=value' keys with weight 1."""
    items = []
    for f in features:
        item = {}
        for key, value in f.items():
            if isinstance(value, bool):
                if value:
                    item[key] = 1.0
            elif isinstance(value, float):
                item[key] = value
            else:
                item[f"{key}={value}"] = 1.0
        items.append(item)
    return items


def train_crf(sentences, tags, iterations=100, c1=0.1, c2=0.01, model_path=None):
    """A CRFsuite linear-chain CRF (L-BFGS, `iterations` at most); returns its `tag` as a callable."""
    import pycrfsuite

    trainer = pycrfsuite.Trainer(verbose=False)
    for words, sentence_tags in zip(sentences, tags):
        if words:
            trainer.append(_crfsuite_items(crf_features(words)), list(sentence_tags))
    trainer.set_params({"c1": c1, "c2": c2, "max_iterations": iterations,
                        "feature.possible_transitions": True})
    directory = None
    if model_path is None:
        directory = tempfile.TemporaryDirectory(prefix="zoo-crf-")
        model_path = os.path.join(directory.name, "crf.crfsuite")
    trainer.train(model_path)
    tagger = pycrfsuite.Tagger()
    tagger.open(model_path)

    def tag(batch):
        return [tagger.tag(_crfsuite_items(crf_features(list(words)))) if words else [] for words in batch]

    tag.directory = directory  # kept alive as long as the tagger
    return tag


def score(predicted, split, label_set, train_words):
    """Accuracy of `predicted` tags against `split` (overall, on words unseen in training, per group).

    `train_words` is the set of word forms of the training split (exact form).
    """
    correct = total = unseen_correct = unseen_total = 0
    groups = collections.defaultdict(lambda: [0, 0])
    for words, gold, guess, group in zip(split.words, split.tags[label_set], predicted, split.groups):
        if len(guess) != len(gold):
            raise ValueError(f"a tagger returned {len(guess)} tags for a sentence of {len(gold)} words")
        for word, g, p in zip(words, gold, guess):
            hit = g == p
            correct += hit
            total += 1
            groups[group][0] += hit
            groups[group][1] += 1
            if word not in train_words:
                unseen_correct += hit
                unseen_total += 1
    return {
        "accuracy": round(correct / max(total, 1), 6),
        "unseen_word_accuracy": round(unseen_correct / max(unseen_total, 1), 6),
        "tokens": total,
        "unseen_tokens": unseen_total,
        "per_group": {g: round(c / n, 6) for g, (c, n) in sorted(groups.items())},
    }


def comparison_table(rows):
    """Markdown table of comparison rows (a split and tag set each: the model's accuracy and
    unseen-word accuracy beside each baseline's); rows of the genre-transfer model are marked."""
    kinds = [k for k in BASELINE_NAMES if any(k in r for r in rows)]
    lines = ["| split | tag set | zoo tagger (unseen words) | " + " | ".join(BASELINE_NAMES[k] for k in kinds) + " |",
             "|---|---|---|" + "---|" * len(kinds)]
    for r in rows:
        split = r["split"] + (" (transfer model)" if r.get("by") else "")
        cells = [f"{r[k]:.4f} ({r[k + '_unseen']:.4f})" if k in r else "–" for k in kinds]
        lines.append(f"| {split} | {r['tag_set']} | **{r['model']:.4f}** ({r['model_unseen']:.4f}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_baselines(train, evaluation_splits, label_set, kinds=("most_frequent", "perceptron", "crf"),
                  perceptron_iterations=5, crf_iterations=100, log=print):
    """Train each baseline on `train` and score it on every split in `evaluation_splits`."""
    train_words = train.word_forms()
    results = {}
    for kind in kinds:
        started = time.time()
        if kind == "most_frequent":
            tagger = MostFrequentTag(train.words, train.tags[label_set], label_set).tag
        elif kind == "perceptron":
            tagger = train_perceptron(train.words, train.tags[label_set], perceptron_iterations)
        elif kind == "crf":
            tagger = train_crf(train.words, train.tags[label_set], crf_iterations)
        else:
            raise ValueError(f"unknown baseline {kind!r}")
        trained = time.time() - started
        results[kind] = {name: score(tagger(split.words), split, label_set, train_words)
                         for name, split in evaluation_splits.items()}
        results[kind]["seconds"] = round(time.time() - started, 1)
        results[kind]["training_seconds"] = round(trained, 1)
        log(f"[zoo]   {kind} ({label_set}): " + ", ".join(
            f"{name} {results[kind][name]['accuracy']:.4f} (unseen {results[kind][name]['unseen_word_accuracy']:.4f})"
            for name in evaluation_splits) + f" [{results[kind]['seconds']:.0f} s]")
    return results
