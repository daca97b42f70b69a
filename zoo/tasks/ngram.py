"""Interpolated modified Kneser–Ney n-gram language models: the baseline a recurrent LM must beat.

Chen & Goodman (1998)'s interpolated modified Kneser–Ney over any sequence of
hashable tokens (words with ``<eos>``, or characters), treated as one stream:

    P_n(w | h) = max(c_n(h w) - D_n(c_n(h w)), 0) / c_n(h)  +  gamma_n(h) * P_{n-1}(w | h')
    gamma_n(h) = (D_n1 * N1(h .) + D_n2 * N2(h .) + D_n3+ * N3+(h .)) / c_n(h)

where ``h'`` drops the oldest token of ``h``, ``c_n`` is the raw count at the
highest order and the *continuation count* ``N1+(. h w)`` (how many distinct
tokens precede ``h w``) below it, ``N_k(h .)`` counts the tokens that follow
``h`` with count exactly ``k`` (``3+``: at least 3), and the three discounts of
each order come from that order's counts of counts ``n_1..n_4``:

    Y = n1 / (n1 + 2 n2),  D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3

A history never seen at an order (``c_n(h) = 0``) passes all its mass to the
order below. The unigram level interpolates the discounted continuation counts
with the uniform distribution over the vocabulary, so every vocabulary token
has a probability above zero. :meth:`KneserNey.log_prob` returns natural
logarithms; :meth:`KneserNey.evaluate` perplexity and bits per token.
No TensorFlow.
"""

from __future__ import annotations

import collections
import math

__all__ = ["KneserNey", "modified_discounts"]


def modified_discounts(counts) -> tuple:
    """(D1, D2, D3+) from an iterable of n-gram counts (Chen & Goodman's estimates).

    Falls back to the usual single discount 0.75 for all three where the counts
    of counts are too few to estimate them (tiny corpora)."""
    n = collections.Counter(c for c in counts if 1 <= c <= 4)
    n1, n2, n3, n4 = (n[k] for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return 0.75, 0.75, 0.75
    y = n1 / (n1 + 2 * n2)
    discounts = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    return tuple(min(max(d, 0.0), float(k)) for d, k in zip(discounts, (1, 2, 3)))


class KneserNey:
    """An interpolated modified Kneser–Ney model of `order` over `tokens` (one stream)."""

    def __init__(self, tokens, order=5, vocabulary=None, keep_lower_orders=False):
        if order < 1:
            raise ValueError(f"order must be at least 1, received {order}")
        tokens = list(tokens)
        if not tokens:
            raise ValueError("tokens must not be empty")
        self.order = int(order)
        self.vocabulary = set(vocabulary) if vocabulary is not None else set(tokens)
        self.vocabulary.update(tokens)
        # raw[n]: n-gram -> count; counts[n]: the count used at order n (raw at the top order,
        # continuation counts below)
        raw = [collections.Counter() for _ in range(self.order + 1)]
        for i in range(len(tokens)):
            for n in range(1, self.order + 1):
                if i - n + 1 < 0:
                    break
                raw[n][tuple(tokens[i - n + 1:i + 1])] += 1
        # with `keep_lower_orders` the raw counts stay, so that `with_order` can cut the model down
        self._raw = raw if keep_lower_orders else None
        self.counts = [None] * (self.order + 1)
        self.counts[self.order] = raw[self.order]
        for n in range(1, self.order):
            # continuation counts: distinct tokens preceding each n-gram
            continuation = collections.Counter()
            for gram in raw[n + 1]:
                continuation[gram[1:]] += 1
            # n-grams at the very start of the stream have no predecessor: count them once
            start = tuple(tokens[:n])
            if len(start) == n and continuation[start] == 0:
                continuation[start] = 1
            self.counts[n] = continuation
        self._summarise(range(1, self.order + 1))

    def _summarise(self, orders):
        """The discounts of each order in `orders`, and per history its total count and how many
        followers have count 1, 2 and 3+."""
        if not hasattr(self, "discounts"):
            self.discounts = [None] * (self.order + 1)
            self.history_totals = [None] * (self.order + 1)
            self.history_types = [None] * (self.order + 1)
        for n in orders:
            self.discounts[n] = modified_discounts(self.counts[n].values())
            totals = collections.Counter()
            types = collections.defaultdict(lambda: [0, 0, 0])
            for gram, count in self.counts[n].items():
                history = gram[:-1]
                totals[history] += count
                types[history][min(count, 3) - 1] += 1
            self.history_totals[n] = totals
            self.history_types[n] = dict(types)

    def with_order(self, order):
        """The model of a lower `order` on the same tokens, sharing this one's lower-order counts
        (built with `keep_lower_orders=True`): what `KneserNey(tokens, order)` gives, without
        counting again. Choosing an order on validation data builds the highest one once."""
        if order == self.order:
            return self
        if not 1 <= order < self.order:
            raise ValueError(f"order must be in 1..{self.order}, received {order}")
        if self._raw is None:
            raise ValueError("this model kept no lower-order counts: build it with keep_lower_orders=True")
        lower = object.__new__(KneserNey)
        lower.order, lower.vocabulary, lower._raw = order, self.vocabulary, None
        lower.counts = self.counts[:order] + [self._raw[order]]
        lower.discounts = self.discounts[:order] + [None]
        lower.history_totals = self.history_totals[:order] + [None]
        lower.history_types = self.history_types[:order] + [None]
        lower._summarise([order])
        return lower

    def _discount(self, n, count):
        if count <= 0:
            return 0.0
        return self.discounts[n][min(count, 3) - 1]

    def prob(self, history, token) -> float:
        """P(token | the last order-1 tokens of `history`)."""
        history = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        probability = 1.0 / len(self.vocabulary)  # the uniform floor below the unigrams
        for n in range(1, self.order + 1):
            if n - 1 > len(history):
                break
            h = history[len(history) - (n - 1):] if n > 1 else ()
            total = self.history_totals[n].get(h, 0)
            if total == 0:
                continue  # unseen history: the lower order's probability stands
            count = self.counts[n].get(h + (token,), 0)
            d1, d2, d3 = self.discounts[n]
            k1, k2, k3 = self.history_types[n][h]
            gamma = (d1 * k1 + d2 * k2 + d3 * k3) / total
            probability = max(count - self._discount(n, count), 0.0) / total + gamma * probability
        return probability

    def log_prob(self, history, token) -> float:
        return math.log(self.prob(history, token))

    def evaluate(self, tokens, context=()) -> dict:
        """Perplexity, bits per token and mean negative log-likelihood of `tokens`, each predicted
        from the tokens before it (the first ones also from `context`)."""
        stream = list(context) + list(tokens)
        offset = len(context)
        nll = 0.0
        for i in range(offset, len(stream)):
            nll -= self.log_prob(stream[max(0, i - self.order + 1):i], stream[i])
        count = max(len(stream) - offset, 1)
        mean = nll / count
        return {"perplexity": math.exp(mean), "bits_per_token": mean / math.log(2),
                "nll_per_token": mean, "tokens": len(stream) - offset}
