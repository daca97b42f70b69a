"""Translation metrics (corpus BLEU and chrF) and the baselines a translation model must beat.

Metrics come from sacrebleu (the project's ``translation`` extra) with its
default settings: BLEU with the ``13a`` tokenizer, chrF with character
6-grams and beta 2. :func:`corpus_scores` returns sacrebleu's signature
strings next to the numbers, so a model card says exactly what was measured.

Baselines, all trained on the training pairs only (:func:`baselines` runs
them on any evaluation pairs):

* ``copy``: the output is the source sentence itself. German and English
  share names, numbers and punctuation, so this is not zero.
* ``ibm_model1``: word-by-word translation with IBM Model 1 (Brown et al.
  1993), see :class:`IBMModel1`.
* ``nearest_neighbour``: the English side of the training pair whose German
  side is most similar under TF-IDF (cosine), see
  :class:`NearestNeighbourBaseline`.

Nothing here imports TensorFlow or Keras; sacrebleu and scikit-learn are
imported when first needed.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

__all__ = [
    "IBMModel1",
    "NearestNeighbourBaseline",
    "baselines",
    "copy_baseline",
    "corpus_scores",
    "detokenize",
    "tokenize",
]

#: A word (letters, digits, underscores; inner apostrophes and hyphens join) or one other symbol.
_TOKEN = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")
#: Punctuation that attaches to the word before it when tokens are joined again.
_ATTACHES_LEFT = re.compile(r" ([.,;:!?%)\]}»“”])")
_ATTACHES_RIGHT = re.compile(r"([(\[{„«]) ")


def tokenize(text: str) -> list[str]:
    """Words and punctuation marks of ``text`` (case kept)."""
    return _TOKEN.findall(text)


def detokenize(tokens: Sequence[str]) -> str:
    """Join tokens with spaces, then attach punctuation to its neighbour."""
    text = " ".join(tokens)
    text = _ATTACHES_LEFT.sub(r"\1", text)
    return _ATTACHES_RIGHT.sub(r"\1", text)


def _is_word(token: str) -> bool:
    return bool(re.match(r"\w", token))


def _check_pairs(pairs, argument: str) -> list[tuple[str, str]]:
    pairs = [tuple(pair) for pair in pairs]
    if not pairs:
        raise ValueError(f"{argument} must hold at least one (source, target) pair, got none")
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(side, str) for side in pair):
            raise ValueError(f"{argument} must hold (source, target) string pairs, got {pair!r}")
    return pairs


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Corpus BLEU and chrF of ``hypotheses`` against one reference each.

    Args:
        hypotheses: system outputs, one string per sentence.
        references: the reference translations, aligned with ``hypotheses``.

    Returns:
        ``{"bleu", "chrf"}`` (0-100 floats), ``{"bleu_signature",
        "chrf_signature"}`` (sacrebleu's strings) and ``"sentences"``.

    Example:
        >>> corpus_scores(["The cat sat on the mat."], ["The cat sat on the mat."])["bleu"]
        100.00000000000004
    """
    from sacrebleu.metrics import BLEU, CHRF

    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses and references must have the same length, got {len(hypotheses)} "
            f"and {len(references)}"
        )
    if not hypotheses:
        raise ValueError("hypotheses must not be empty, got 0 sentences")
    bleu, chrf = BLEU(), CHRF()
    return {
        "bleu": float(bleu.corpus_score(hypotheses, [references]).score),
        "chrf": float(chrf.corpus_score(hypotheses, [references]).score),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "sentences": len(hypotheses),
    }


# --------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------


def copy_baseline(sources: Sequence[str]) -> list[str]:
    """The "translation" that repeats each source sentence unchanged."""
    return [str(source) for source in sources]


class IBMModel1:
    """Word-by-word translation with IBM Model 1 trained by EM.

    Training: sources and targets are tokenized (:func:`tokenize`) and
    lowercased, punctuation is left out, a NULL word is added to every source
    sentence, and ``iterations`` rounds of expectation-maximisation estimate
    the lexical probabilities ``t(target word | source word)`` from uniform
    ones (Brown et al. 1993, section 4). The E-step runs over all co-occurring
    (source position, target position) pairs of the corpus at once in numpy.

    Translation: each source token becomes one output token, in source order:

    * a known source word becomes its most probable target word
      ``argmax_e t(e | f)``, except when that word is better explained as
      coming from NULL (``t(e | NULL) > t(e | f)``): the source word then
      has no content of its own to carry over (typically German particles
      and function words such as "sich" or "zu" before an infinitive) and
      is dropped;
    * an unknown source word (never seen in training) is copied as it is
      (names, numbers, cognates);
    * punctuation is copied.

    Casing: each output word takes its most frequent written form among the
    training targets (so "i" becomes "I" and "london" becomes "London"), and
    the first letter of the sentence is upper-cased. Final punctuation is the
    source's own (copied with the other punctuation).

    Args:
        drop_null_words: apply the NULL rule above (default True).

    Example:
        >>> model = IBMModel1().fit([("das Haus", "the house"), ("das Buch", "the book")])
        >>> model.translate(["das Buch."])
        ['The book.']
    """

    NULL = "<null>"

    def __init__(self, drop_null_words: bool = True):
        self.drop_null_words = bool(drop_null_words)
        self.best_target: dict[str, str] = {}
        self.iterations = 0

    def fit(self, pairs, iterations: int = 8) -> "IBMModel1":
        """Estimate ``t(e | f)`` on ``(source, target)`` pairs; returns ``self``."""
        if not isinstance(iterations, (int, np.integer)) or iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        pairs = _check_pairs(pairs, "pairs")
        source_ids: dict[str, int] = {self.NULL: 0}
        target_ids: dict[str, int] = {}
        surface_forms: dict[str, Counter] = {}

        # One row per (sentence, target position, source position incl. NULL).
        rows_source, rows_target, rows_group = [], [], []
        group = 0
        for source, target in pairs:
            source_words = [w.lower() for w in tokenize(source) if _is_word(w)]
            target_tokens = [w for w in tokenize(target) if _is_word(w)]
            for position, word in enumerate(target_tokens):
                if position > 0:  # sentence-initial capitals say nothing about a word
                    surface_forms.setdefault(word.lower(), Counter())[word] += 1
            f_ids = [0] + [source_ids.setdefault(w, len(source_ids)) for w in source_words]
            for word in target_tokens:
                e_id = target_ids.setdefault(word.lower(), len(target_ids))
                rows_source.extend(f_ids)
                rows_target.extend([e_id] * len(f_ids))
                rows_group.extend([group] * len(f_ids))
                group += 1
        if group == 0:
            raise ValueError("pairs hold no target words to learn from")

        f = np.asarray(rows_source, dtype=np.int64)
        e = np.asarray(rows_target, dtype=np.int64)
        groups = np.asarray(rows_group, dtype=np.int64)
        # Each distinct (f, e) co-occurrence is one parameter t(e | f).
        pair_keys, pair_of_row = np.unique(f * len(target_ids) + e, return_inverse=True)
        pair_f = pair_keys // len(target_ids)
        pair_e = pair_keys % len(target_ids)
        t = np.ones(len(pair_keys))  # uniform start (normalisation makes the scale irrelevant)
        for _ in range(int(iterations)):
            p = t[pair_of_row]
            posterior = p / np.bincount(groups, weights=p, minlength=group)[groups]
            counts = np.bincount(pair_of_row, weights=posterior, minlength=len(pair_keys))
            totals = np.bincount(pair_f, weights=counts, minlength=len(source_ids))
            t = counts / totals[pair_f]
        self.iterations = int(iterations)

        # The best target word of each source word, and t(e | NULL) for the NULL rule.
        target_words = np.empty(len(target_ids), dtype=object)
        for word, index in target_ids.items():
            target_words[index] = word
        null_t = np.zeros(len(target_ids))
        is_null = pair_f == 0
        null_t[pair_e[is_null]] = t[is_null]
        order = np.lexsort((-t, pair_f))  # by source word, most probable target first
        first = order[np.r_[True, pair_f[order][1:] != pair_f[order][:-1]]]
        source_words = [None] * len(source_ids)
        for word, index in source_ids.items():
            source_words[index] = word
        self.best_target = {}
        for row in first:
            source_word_id, target_word_id = pair_f[row], pair_e[row]
            if source_word_id == 0:
                continue  # NULL is never translated
            drop = self.drop_null_words and null_t[target_word_id] > t[row]
            self.best_target[source_words[source_word_id]] = (
                "" if drop else str(target_words[target_word_id])
            )
        self.truecase = {
            word: forms.most_common(1)[0][0] for word, forms in surface_forms.items()
        }
        return self

    def translate(self, sources: Sequence[str]) -> list[str]:
        """Translate each source sentence word by word (see the class docstring)."""
        if not self.iterations:
            raise ValueError("IBMModel1.translate called before fit")
        outputs = []
        for source in sources:
            tokens = []
            for token in tokenize(source):
                if not _is_word(token):
                    tokens.append(token)
                    continue
                target = self.best_target.get(token.lower())
                if target is None:
                    tokens.append(token)  # unknown: copy
                elif target:
                    tokens.append(self.truecase.get(target, target))
            text = detokenize(tokens)
            outputs.append(text[:1].upper() + text[1:])
        return outputs


class NearestNeighbourBaseline:
    """Retrieval: the English side of the most similar training source.

    Sources are compared by cosine similarity of TF-IDF vectors (scikit-learn's
    ``TfidfVectorizer``: lowercased word unigrams and bigrams, sublinear term
    frequency) fitted on the training sources. A source that shares no term
    with any training source is copied instead. Ties go to the earlier
    training pair, so a training source returns its own (first) translation.

    Example:
        >>> nn = NearestNeighbourBaseline().fit([("das Haus ist rot.", "The house is red.")])
        >>> nn.translate(["Das Haus ist blau."])
        ['The house is red.']
    """

    def __init__(self):
        self.vectorizer = None
        self.targets: list[str] = []
        self.train_vectors = None

    def fit(self, pairs) -> "NearestNeighbourBaseline":
        """Index the ``(source, target)`` training pairs; returns ``self``."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        pairs = _check_pairs(pairs, "pairs")
        self.vectorizer = TfidfVectorizer(
            lowercase=True, ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
        )
        self.train_vectors = self.vectorizer.fit_transform([source for source, _ in pairs])
        self.targets = [target for _, target in pairs]
        return self

    def translate(self, sources: Sequence[str], batch_size: int = 1024) -> list[str]:
        """The nearest training source's target for each of ``sources``."""
        if self.vectorizer is None:
            raise ValueError("NearestNeighbourBaseline.translate called before fit")
        sources = list(sources)
        outputs: list[str] = []
        for start in range(0, len(sources), batch_size):
            batch = sources[start : start + batch_size]
            similarity = (self.vectorizer.transform(batch) @ self.train_vectors.T).toarray()
            nearest = similarity.argmax(axis=1)  # first maximum: ties go to earlier pairs
            for source, row, index in zip(batch, similarity, nearest):
                outputs.append(self.targets[index] if row[index] > 0 else source)
        return outputs


def baselines(train_pairs, eval_pairs, ibm_iterations: int = 8) -> dict[str, dict]:
    """Train the three baselines on ``train_pairs`` and score them on ``eval_pairs``.

    Args:
        train_pairs: ``(source, target)`` training pairs.
        eval_pairs: ``(source, reference)`` pairs to translate and score.
        ibm_iterations: EM iterations of :class:`IBMModel1`.

    Returns:
        ``{"copy": scores, "ibm_model1": scores, "nearest_neighbour": scores}``,
        each as returned by :func:`corpus_scores`.
    """
    return baselines_by_split(train_pairs, {"eval": eval_pairs}, ibm_iterations)["eval"]


def baselines_by_split(train_pairs, eval_sets, ibm_iterations: int = 8) -> dict[str, dict[str, dict]]:
    """:func:`baselines` on several evaluation sets ``{name: pairs}``, each baseline trained once.

    Returns:
        ``{name: {"copy": scores, "ibm_model1": scores, "nearest_neighbour": scores}}``.
    """
    train_pairs = _check_pairs(train_pairs, "train_pairs")
    eval_sets = {name: _check_pairs(pairs, f"eval pairs of {name!r}") for name, pairs in eval_sets.items()}
    ibm = IBMModel1().fit(train_pairs, iterations=ibm_iterations)
    nearest = NearestNeighbourBaseline().fit(train_pairs)
    scores = {}
    for name, pairs in eval_sets.items():
        sources = [source for source, _ in pairs]
        references = [reference for _, reference in pairs]
        scores[name] = {
            "copy": corpus_scores(copy_baseline(sources), references),
            "ibm_model1": corpus_scores(ibm.translate(sources), references),
            "nearest_neighbour": corpus_scores(nearest.translate(sources), references),
        }
    return scores
