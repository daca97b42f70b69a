"""Captioning metrics (exact match, CIDEr-D, BLEU-4) and the baselines a captioning model must beat.

Metrics, all over a corpus of (hypothesis, references) pairs:

* :func:`exact_match`: the share of hypotheses equal, character for
  character, to one of their references.
* :func:`cider_d`: CIDEr-D (Vedantam, Zitnick and Parikh 2015, "CIDEr:
  Consensus-based Image Description Evaluation"), written from the paper's
  definition: for n = 1..4, each caption becomes a vector of n-gram counts
  weighted by the n-gram's inverse document frequency over the *reference*
  corpus (``log(number of images / number of images whose references hold
  the n-gram)``); a hypothesis and a reference are compared by a cosine in
  which each hypothesis weight is clipped to the reference's, times a
  Gaussian penalty on their length difference in tokens
  (``exp(-d**2 / (2 * 6**2))``); the four n-gram scores are averaged,
  averaged over an image's references and multiplied by 10. The corpus score
  is the mean over images, so a perfect caption scores 10 times the mean
  cosine of identical captions (up to 10).
  Tokenization (:func:`tokenize`): lower-case, then words (runs of letters,
  digits and underscores) and single punctuation marks, each a token:
  ``"kiss: woman, woman"`` -> ``kiss : woman , woman``. The COCO evaluation
  tool strips punctuation instead; here ``:`` and ``,`` are kept because they
  carry the structure of CLDR names.
* :func:`bleu4`: corpus BLEU-4 from sacrebleu (default ``13a`` tokenizer, case
  kept), one reference per image.

:func:`caption_scores` reports all three overall and per group (``base``,
``skin_tone``, ``flag``; see :func:`zoo.data.emoji.caption_group`).

Baselines:

* :func:`nearest_neighbour_pixels`: each query image gets the caption of the
  most similar training image: images are shrunk to 32x32 (box average),
  flattened, mean-centred per image and L2-normalised, and compared by cosine
  (a batched matrix product). Ties go to the earliest training image.
* :func:`best_constant_caption`: the one training caption that, given to
  every image, scores the highest CIDEr-D against a set of references. Choose
  it on the validation (or training) captions, never on the test captions,
  then score it on the test set like any system.

Nothing here imports TensorFlow or Keras; sacrebleu and scipy are imported
when first needed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import numpy as np

__all__ = [
    "CIDER_MAX_N",
    "CIDER_SIGMA",
    "best_constant_caption",
    "bleu4",
    "caption_scores",
    "cider_d",
    "cider_d_per_image",
    "exact_match",
    "nearest_neighbour_pixels",
    "pixel_features",
    "tokenize",
]

#: Longest n-gram CIDEr-D counts.
CIDER_MAX_N = 4
#: Standard deviation, in tokens, of CIDEr-D's length penalty.
CIDER_SIGMA = 6.0
#: CIDEr-D's overall scale factor.
CIDER_SCALE = 10.0
#: Side of the images the 1-NN baseline compares.
NEIGHBOUR_SIZE = 32

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(caption: str) -> list[str]:
    """Lower-cased words and punctuation marks of ``caption``, each mark its own token."""
    return _TOKEN.findall(caption.lower())


def _ngrams(tokens: Sequence[str], max_n: int = CIDER_MAX_N) -> list[Counter]:
    """Counts of the 1..max_n-grams of ``tokens``, one Counter per n."""
    return [
        Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        for n in range(1, max_n + 1)
    ]


def _as_reference_lists(references, argument: str) -> list[list[str]]:
    """Accept one string or a list of strings per image; return lists."""
    result = []
    for item in references:
        refs = [item] if isinstance(item, str) else list(item)
        if not refs or not all(isinstance(ref, str) for ref in refs):
            raise ValueError(
                f"{argument} must hold a caption string or a non-empty list of them per image, "
                f"got {item!r}"
            )
        result.append(refs)
    return result


def _check_lengths(hypotheses, references, argument: str = "references"):
    hypotheses = list(hypotheses)
    if not all(isinstance(h, str) for h in hypotheses):
        bad = next(h for h in hypotheses if not isinstance(h, str))
        raise ValueError(f"hypotheses must be strings, got {bad!r}")
    references = _as_reference_lists(references, argument)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses and {argument} must have the same length, got {len(hypotheses)} "
            f"and {len(references)}"
        )
    if not hypotheses:
        raise ValueError("hypotheses must not be empty, got 0 captions")
    return hypotheses, references


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def exact_match(hypotheses: Sequence[str], references) -> float:
    """Share of hypotheses identical to one of their references (strings compared as they are).

    Args:
        hypotheses: one caption per image.
        references: one reference caption, or a list of them, per image.
    """
    hypotheses, references = _check_lengths(hypotheses, references)
    return float(np.mean([h in refs for h, refs in zip(hypotheses, references)]))


def _document_frequency(reference_ngrams: list[list[list[Counter]]]) -> list[Counter]:
    """For each n, in how many images' reference sets each n-gram occurs."""
    frequency = [Counter() for _ in range(CIDER_MAX_N)]
    for image_refs in reference_ngrams:
        for n in range(CIDER_MAX_N):
            seen = set()
            for ref in image_refs:
                seen.update(ref[n])
            frequency[n].update(seen)
    return frequency


def _tfidf(counts: list[Counter], frequency: list[Counter], log_images: float):
    """TF-IDF vectors (dicts) of one caption and their norms, one per n."""
    vectors, norms = [], []
    for n in range(CIDER_MAX_N):
        vector = {
            gram: count * (log_images - math.log(max(1.0, frequency[n][gram])))
            for gram, count in counts[n].items()
        }
        vectors.append(vector)
        norms.append(math.sqrt(sum(value * value for value in vector.values())))
    return vectors, norms


def cider_d_per_image(hypotheses: Sequence[str], references_list) -> np.ndarray:
    """CIDEr-D of each image (module docstring); document frequencies come from all references.

    Args:
        hypotheses: one caption per image.
        references_list: a reference caption, or a list of them, per image.

    Returns:
        float64 ``[images]``.
    """
    hypotheses, references_list = _check_lengths(hypotheses, references_list, "references_list")
    hyp_tokens = [tokenize(h) for h in hypotheses]
    ref_tokens = [[tokenize(r) for r in refs] for refs in references_list]
    ref_ngrams = [[_ngrams(tokens) for tokens in refs] for refs in ref_tokens]
    frequency = _document_frequency(ref_ngrams)
    log_images = math.log(float(len(hypotheses)))
    scores = np.zeros(len(hypotheses))
    for i, tokens in enumerate(hyp_tokens):
        hyp_vectors, hyp_norms = _tfidf(_ngrams(tokens), frequency, log_images)
        total = 0.0
        for ref, ref_counts in zip(ref_tokens[i], ref_ngrams[i]):
            ref_vectors, ref_norms = _tfidf(ref_counts, frequency, log_images)
            penalty = math.exp(-((len(tokens) - len(ref)) ** 2) / (2 * CIDER_SIGMA**2))
            per_n = 0.0
            for n in range(CIDER_MAX_N):
                if hyp_norms[n] == 0.0 or ref_norms[n] == 0.0:
                    continue
                clipped = sum(
                    min(value, ref_vectors[n][gram]) * ref_vectors[n][gram]
                    for gram, value in hyp_vectors[n].items()
                    if gram in ref_vectors[n]
                )
                per_n += clipped / (hyp_norms[n] * ref_norms[n]) * penalty
            total += per_n / CIDER_MAX_N
        scores[i] = CIDER_SCALE * total / len(ref_tokens[i])
    return scores


def cider_d(hypotheses: Sequence[str], references_list) -> float:
    """Corpus CIDEr-D: the mean of :func:`cider_d_per_image` (0 to 10 for one reference per image).

    Example:
        >>> round(cider_d(["red apple", "flag: Japan"], ["red apple", "flag: France"]), 4)
        3.9583
    """
    return float(np.mean(cider_d_per_image(hypotheses, references_list)))


def bleu4(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (sacrebleu defaults, 0-100) against one reference per image."""
    from sacrebleu.metrics import BLEU

    hypotheses, references = _check_lengths(hypotheses, references)
    if any(len(refs) != 1 for refs in references):
        raise ValueError("references must hold exactly one caption per image for bleu4")
    return float(BLEU().corpus_score(hypotheses, [[refs[0] for refs in references]]).score)


def bleu_signature() -> str:
    """sacrebleu's signature string of the BLEU settings :func:`bleu4` uses."""
    from sacrebleu.metrics import BLEU

    return str(BLEU().get_signature())


def caption_scores(hypotheses: Sequence[str], references: Sequence[str], groups=None) -> dict:
    """Exact match, CIDEr-D and BLEU-4, overall and per group.

    CIDEr-D's document frequencies come from the whole reference corpus; a
    group's CIDEr-D is the mean of its images' scores, its BLEU-4 a corpus
    BLEU over its images only.

    Args:
        hypotheses: one caption per image.
        references: one reference caption per image.
        groups: optional group name per image (e.g. from
            :func:`zoo.data.emoji.caption_group`).

    Returns:
        ``{"overall": {"exact_match", "cider_d", "bleu4", "count"},
        "groups": {name: {...}}}``; ``"groups"`` is empty without ``groups``.
    """
    hypotheses, reference_lists = _check_lengths(hypotheses, references)
    if any(len(refs) != 1 for refs in reference_lists):
        raise ValueError("references must hold exactly one caption per image")
    flat_references = [refs[0] for refs in reference_lists]
    per_image_cider = cider_d_per_image(hypotheses, reference_lists)
    matches = np.array([h == r for h, r in zip(hypotheses, flat_references)], dtype=np.float64)

    def summary(indices) -> dict:
        return {
            "exact_match": float(matches[indices].mean()),
            "cider_d": float(per_image_cider[indices].mean()),
            "bleu4": bleu4([hypotheses[i] for i in indices], [flat_references[i] for i in indices]),
            "count": int(len(indices)),
        }

    result = {"overall": summary(np.arange(len(hypotheses))), "groups": {}}
    if groups is not None:
        groups = list(groups)
        if len(groups) != len(hypotheses):
            raise ValueError(
                f"groups must have one entry per hypothesis ({len(hypotheses)}), got {len(groups)}"
            )
        for name in sorted(set(groups)):
            indices = np.array([i for i, g in enumerate(groups) if g == name])
            result["groups"][name] = summary(indices)
    return result


# --------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------


def _check_images(images, argument: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(
            f"{argument} must be a non-empty [batch, height, width, 3] array, "
            f"got shape {images.shape}"
        )
    return images


def pixel_features(images, size: int = NEIGHBOUR_SIZE) -> np.ndarray:
    """Images as the unit vectors the 1-NN baseline compares.

    Each image is shrunk to ``size x size`` (box average: exact block means
    when the sides are multiples of ``size``, PIL's box filter otherwise),
    flattened, mean-centred (over all its values) and L2-normalised; a flat
    image becomes the zero vector.

    Returns:
        float32 ``[batch, size * size * 3]``.
    """
    images = _check_images(images, "images")
    batch, height, width, _ = images.shape
    if height % size == 0 and width % size == 0:
        small = images.astype(np.float32).reshape(
            batch, size, height // size, size, width // size, 3
        ).mean(axis=(2, 4))
    else:
        from PIL import Image

        small = np.stack(
            [
                np.asarray(
                    Image.fromarray(image.astype(np.uint8)).resize((size, size), Image.BOX),
                    dtype=np.float32,
                )
                for image in images
            ]
        )
    flat = small.reshape(batch, -1)
    flat -= flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 0)


def nearest_neighbour_pixels(
    train_images,
    train_captions: Sequence[str],
    query_images,
    batch_size: int = 512,
) -> list[str]:
    """Caption each query image with the caption of its nearest training image (cosine on pixels).

    Args:
        train_images: uint8 ``[n, height, width, 3]``.
        train_captions: one caption per training image.
        query_images: ``[m, height, width, 3]`` (any size; see :func:`pixel_features`).
        batch_size: query images compared per matrix product.

    Returns:
        ``m`` captions.
    """
    train_images = _check_images(train_images, "train_images")
    train_captions = list(train_captions)
    if len(train_captions) != len(train_images):
        raise ValueError(
            f"train_captions must have one caption per training image ({len(train_images)}), "
            f"got {len(train_captions)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    query_images = _check_images(query_images, "query_images")
    train_features = pixel_features(train_images)
    nearest = np.empty(len(query_images), dtype=np.int64)
    for start in range(0, len(query_images), batch_size):
        query = pixel_features(query_images[start : start + batch_size])
        nearest[start : start + len(query)] = np.argmax(query @ train_features.T, axis=1)
    return [train_captions[i] for i in nearest]


def _ngram_counts(token_lists, vocabulary: dict, n: int):
    """Sparse n-gram counts of each caption; new n-grams get new ``vocabulary`` columns."""
    from scipy import sparse

    rows, cols, values = [], [], []
    for row, tokens in enumerate(token_lists):
        for gram, count in _ngrams(tokens)[n].items():
            rows.append(row)
            cols.append(vocabulary.setdefault(gram, len(vocabulary)))
            values.append(count)
    return sparse.csr_matrix(
        (np.array(values, dtype=np.float64), (rows, cols)),
        shape=(len(token_lists), len(vocabulary)),
    )


def _row_norms(matrix) -> np.ndarray:
    return np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())


def _constant_caption_scores(candidates: list[str], references: list[str]) -> np.ndarray:
    """Corpus CIDEr-D of giving each candidate to every reference image (one reference each).

    Same definition as :func:`cider_d_per_image`, vectorised: both weights of
    an n-gram share its idf, so the clipped product ``min(h_g, r_g) * r_g``
    equals ``idf_g**2 * r_count * sum_k [h_count >= k][r_count >= k]``, a sum
    of sparse matrix products over count levels ``k``.
    """
    ref_tokens = [tokenize(r) for r in references]
    cand_tokens = [tokenize(c) for c in candidates]
    log_images = math.log(float(len(references)))
    length_gap = np.subtract.outer(
        np.array([len(t) for t in cand_tokens], dtype=np.float64),
        np.array([len(t) for t in ref_tokens], dtype=np.float64),
    )
    penalty = np.exp(-(length_gap**2) / (2 * CIDER_SIGMA**2))
    totals = np.zeros((len(candidates), len(references)))
    for n in range(CIDER_MAX_N):
        vocabulary: dict = {}
        ref_counts = _ngram_counts(ref_tokens, vocabulary, n)
        cand_counts = _ngram_counts(cand_tokens, vocabulary, n)
        ref_counts.resize((len(references), len(vocabulary)))
        document_frequency = np.asarray((ref_counts > 0).sum(axis=0)).ravel()
        idf = log_images - np.log(np.maximum(1.0, document_frequency))
        ref_norms = _row_norms(ref_counts.multiply(idf).tocsr())
        cand_norms = _row_norms(cand_counts.multiply(idf).tocsr())
        clipped = np.zeros((len(candidates), len(references)))
        counts = [matrix.max() for matrix in (ref_counts, cand_counts) if matrix.nnz]
        highest_count = int(max(counts, default=0))
        for level in range(1, highest_count + 1):
            cand_at_least = (cand_counts >= level).astype(np.float64)
            ref_part = (ref_counts >= level).multiply(ref_counts).multiply(idf**2).tocsr()
            clipped += (cand_at_least @ ref_part.T).toarray()
        denominator = np.outer(cand_norms, ref_norms)
        cosine = np.divide(clipped, denominator, out=np.zeros_like(clipped), where=denominator > 0)
        totals += cosine * penalty
    return CIDER_SCALE * totals.mean(axis=1) / CIDER_MAX_N


def best_constant_caption(
    train_captions: Sequence[str], references: Sequence[str]
) -> tuple[str, float]:
    """The training caption with the highest CIDEr-D when given to every image of ``references``.

    Pass validation (or training) captions as ``references``, never test
    captions; then score the chosen caption on the test set like any system.
    Ties go to the caption seen first in ``train_captions``.

    Args:
        train_captions: the candidates (duplicates are scored once).
        references: one reference caption per image of the selection set.

    Returns:
        ``(caption, cider_d_on_references)``.
    """
    candidates = list(dict.fromkeys(train_captions))
    references = list(references)
    if not candidates:
        raise ValueError("train_captions must hold at least one caption, got none")
    if not references or not all(isinstance(r, str) for r in references):
        raise ValueError("references must be a non-empty list of caption strings")
    scores = np.concatenate(
        [
            _constant_caption_scores(candidates[start : start + 256], references)
            for start in range(0, len(candidates), 256)
        ]
    )
    best = int(np.argmax(scores))
    return candidates[best], float(scores[best])
