"""Deterministic, stratified train/validation/test splits."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["SPLIT_NAMES", "check_fractions", "split_counts", "stratified_split"]

#: The names of the three splits every loader returns, in order.
SPLIT_NAMES = ("train", "validation", "test")


def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """``fractions`` as floats, one per split of ``SPLIT_NAMES``, non-negative and summing to 1
    (``ValueError`` naming what is wrong otherwise)."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != len(SPLIT_NAMES):
        raise ValueError(f"need one fraction per split {SPLIT_NAMES}, got {fractions}")
    if any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0, atol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    return fractions


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """How many of ``n`` items each split receives.

    Every split after the first gets ``round(n * fraction)`` (halves round up);
    the first split takes the rest, so it absorbs the rounding. If rounding
    would hand out more than ``n`` items (only possible when the first
    fraction is small), the later splits give items back, last split first.
    """
    later = [int(np.floor(n * f + 0.5)) for f in fractions[1:]]
    excess = sum(later) - n
    for i in reversed(range(len(later))):
        if excess <= 0:
            break
        give = min(excess, later[i])
        later[i] -= give
        excess -= give
    return [n - sum(later)] + later


def stratified_split(
    labels,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[np.ndarray, ...]:
    """Split item indices into disjoint sets with the class mix of ``labels``.

    Each class is shuffled on its own with ``numpy.random.default_rng(seed)``
    and cut by :func:`split_counts`, so every split has (up to rounding) the
    class proportions of the whole. Classes are visited in sorted order, so the
    result depends only on ``labels``, ``fractions`` and ``seed``.

    Args:
        labels: one class label per item (any values ``numpy.unique`` can sort).
        fractions: the share of each split; non-negative, summing to 1.
        seed: seed of the random generator.

    Returns:
        One sorted ``int64`` index array per fraction (train, validation, test
        for the default). Together they cover ``range(len(labels))`` exactly once.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    fractions = [float(f) for f in fractions]
    if not fractions:
        raise ValueError("fractions must not be empty")
    if any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0, atol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")

    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    if labels.size:
        classes, inverse = np.unique(labels, return_inverse=True)
        for c in range(len(classes)):
            members = np.flatnonzero(inverse == c)
            members = members[rng.permutation(members.size)]
            start = 0
            for part, count in zip(parts, split_counts(members.size, fractions)):
                part.append(members[start : start + count])
                start += count
    return tuple(
        np.sort(np.concatenate(part)).astype(np.int64) if part else np.zeros(0, np.int64)
        for part in parts
    )
