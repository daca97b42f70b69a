"""Interpolated modified Kneser–Ney: hand-computed probabilities, normalisation, discounts."""

import math

import pytest

from zoo.tasks.ngram import KneserNey, modified_discounts


def test_bigram_probabilities_equal_the_hand_computed_values():
    # a b a b c: bigrams ab x2, ba, bc; every unigram has one distinct predecessor (a: the stream
    # start), so P1 is uniform (1/3); too few counts of counts: every discount is 0.75.
    model = KneserNey("a b a b c".split(), order=2)
    assert model.discounts[2] == (0.75, 0.75, 0.75)
    assert model.prob(["a"], "b") == pytest.approx((2 - 0.75) / 2 + (0.75 * 1 / 2) / 3)   # 0.75
    assert model.prob(["a"], "a") == pytest.approx(0.125)
    assert model.prob(["b"], "a") == pytest.approx((1 - 0.75) / 2 + (0.75 * 2 / 2) / 3)   # 0.375
    assert model.prob(["b"], "b") == pytest.approx(0.25)
    assert model.prob(["c"], "a") == pytest.approx(1 / 3)  # unseen history: the unigram level
    assert model.prob([], "c") == pytest.approx(1 / 3)


def test_modified_discounts_follow_chen_and_goodman():
    counts = [1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [9]
    y = 10 / (10 + 2 * 5)
    assert modified_discounts(counts) == pytest.approx((1 - 2 * y * 5 / 10, 2 - 3 * y * 3 / 5, 3 - 4 * y * 2 / 3))
    assert modified_discounts([1, 1, 2]) == (0.75, 0.75, 0.75)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one_for_seen_and_unseen_histories(order):
    text = list("the cat sat on the mat and the rat sat on the cat " * 3)
    model = KneserNey(text, order=order, vocabulary=set(text) | {"z"})
    for history in (list("the c"), list("on th"), list("zzzz"), []):
        total = sum(model.prob(history, token) for token in model.vocabulary)
        assert total == pytest.approx(1.0, abs=1e-9)
    assert model.prob(list("the c"), "z") > 0


def test_evaluate_reports_consistent_perplexity_and_bits():
    text = list("abracadabra " * 20)
    model = KneserNey(text, order=3)
    result = model.evaluate(list("abracadabra"))
    assert result["tokens"] == 11
    assert result["perplexity"] == pytest.approx(math.exp(result["nll_per_token"]))
    assert result["bits_per_token"] == pytest.approx(result["nll_per_token"] / math.log(2))
    assert result["perplexity"] < 2.0  # a highly regular text is easy


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="order must be at least 1"):
        KneserNey(["a"], order=0)
    with pytest.raises(ValueError, match="tokens must not be empty"):
        KneserNey([], order=2)


def test_with_order_equals_a_model_built_at_that_order():
    text = "the cat sat on the mat and the dog sat on the log while the cat ran".split() * 3
    full = KneserNey(text, order=4, keep_lower_orders=True)
    held_out = "the dog sat on the mat and the cat ran on the log".split()
    for order in (1, 2, 3):
        direct = KneserNey(text, order=order)
        cut = full.with_order(order)
        assert cut.discounts == direct.discounts
        assert cut.evaluate(held_out)["perplexity"] == pytest.approx(direct.evaluate(held_out)["perplexity"], rel=1e-12)
    assert full.with_order(4) is full
    with pytest.raises(ValueError, match="keep_lower_orders"):
        KneserNey(text, order=3).with_order(2)
    with pytest.raises(ValueError, match="order must be in"):
        full.with_order(0)
