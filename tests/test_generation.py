"""The decoding engine `zoo.generation` against exhaustive search and hand computations in NumPy.

The step function is a lookup table: the state is a number that identifies
the whole prefix produced so far (and which batch row it belongs to, through
the context), so every prefix has its own next-token distribution and beam
search has real choices to make.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from zoo import generation

VOCAB = 4
STEPS = 4
BATCH = 3
START = VOCAB          # the start token is outside the vocabulary: the table sees it as a digit
BASE = VOCAB + 2       # prefix ids are numbers in base VOCAB + 2 with digits token + 1
END, PAD = 1, 0


def _table(seed=0, scale=1.5, rows=BATCH):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rows, BASE ** (STEPS + 1), VOCAB)) * scale).astype(np.float32)


def _step_fn(table):
    table = tf.constant(table)

    def step(tokens, state, context, t):
        prefix = state["prefix"] * BASE + tf.cast(tokens, tf.float32) + 1.0
        index = tf.stack([tf.cast(context["row"], tf.int32), tf.cast(prefix, tf.int32)], axis=-1)
        logits = tf.gather_nd(table, index)
        return logits, {"prefix": prefix}, {"prefix": prefix, "logits": logits}

    return step


def _inputs(rows=BATCH):
    return dict(initial_state={"prefix": tf.zeros([rows])}, start_tokens=tf.fill([rows], START),
                context={"row": tf.range(rows, dtype=tf.float32)})


def _decode(table, rows=BATCH, **kwargs):
    result = generation.decode(_step_fn(table), **_inputs(rows), **kwargs)
    return {k: (v.numpy() if k != "extras" else {n: e.numpy() for n, e in v.items()})
            for k, v in result.items()}


def _log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _walk(table, row, tokens):
    """Prefix ids, logits and log-probabilities the step function sees along `tokens`."""
    prefix, previous, walked = 0.0, START, []
    for token in tokens:
        prefix = prefix * BASE + previous + 1
        logits = table[row, int(prefix)]
        walked.append((prefix, logits, _log_softmax(logits)))
        previous = token
    return walked


def _exhaustive(table, row, alpha=0.0, end_token=END, forbidden=(), min_length=0):
    """The best (tokens, score, length) over every sequence of up to STEPS tokens, by enumeration."""
    candidates = {}
    for tokens in itertools.product(range(VOCAB), repeat=STEPS):
        if end_token in tokens:
            tokens = tokens[: tokens.index(end_token) + 1]
        if any(t in forbidden for t in tokens) or end_token in tokens[:min_length]:
            continue
        log_probs = [lp[t] for (_, _, lp), t in zip(_walk(table, row, tokens), tokens)]
        candidates[tokens] = sum(log_probs) / ((5 + len(tokens)) / 6) ** alpha
    best = max(candidates, key=candidates.get)
    length = len(best) - 1 if best[-1] == end_token else len(best)
    return list(best) + [PAD] * (STEPS - len(best)), candidates[best], length


def _greedy(table, row, end_token=END):
    tokens, total, prefix, previous = [], 0.0, 0.0, START
    while len(tokens) < STEPS:
        prefix = prefix * BASE + previous + 1
        log_probs = _log_softmax(table[row, int(prefix)])
        previous = int(np.argmax(log_probs))
        tokens.append(previous)
        total += log_probs[previous]
        if previous == end_token:
            break
    return tokens + [PAD] * (STEPS - len(tokens)), total


# -- beam search against exhaustive enumeration --------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_width_beam_search_equals_exhaustive_search(alpha, seed):
    table = _table(seed)
    result = _decode(table, method="beam", beam_width=VOCAB ** STEPS, max_length=STEPS,
                     end_token=END, pad_token=PAD, length_penalty=alpha)
    for row in range(BATCH):
        tokens, score, length = _exhaustive(table, row, alpha=alpha)
        assert result["tokens"][row].tolist() == tokens
        assert result["scores"][row] == pytest.approx(score, abs=1e-4)
        assert result["lengths"][row] == length


def test_full_width_beam_search_with_constraints_equals_exhaustive_search():
    table = _table(5)
    result = _decode(table, method="beam", beam_width=VOCAB ** STEPS, max_length=STEPS,
                     end_token=END, pad_token=PAD, forbidden_tokens=(2,), min_length=2)
    for row in range(BATCH):
        tokens, score, length = _exhaustive(table, row, forbidden=(2,), min_length=2)
        assert result["tokens"][row].tolist() == tokens
        assert result["scores"][row] == pytest.approx(score, abs=1e-4)
        assert result["lengths"][row] == length


def test_a_stronger_length_penalty_prefers_longer_sequences():
    table = _table(3)
    plain = _decode(table, method="beam", beam_width=64, max_length=STEPS, end_token=END)
    long = _decode(table, method="beam", beam_width=64, max_length=STEPS, end_token=END,
                   length_penalty=3.0)
    # A stronger penalty never prefers shorter sequences.
    assert np.all(long["lengths"] >= plain["lengths"])
    assert (long["lengths"] != plain["lengths"]).any()
    for row in range(BATCH):
        assert long["tokens"][row].tolist() == _exhaustive(table, row, alpha=3.0)[0]


def test_beam_extras_are_those_of_the_chosen_hypothesis():
    table = _table(4)
    result = _decode(table, method="beam", beam_width=5, max_length=STEPS, end_token=END)
    for row in range(BATCH):
        tokens = result["tokens"][row].tolist()
        produced = tokens[: result["lengths"][row] + (END in tokens)]
        walked = _walk(table, row, produced)
        for t in range(STEPS):
            if t < len(produced):
                assert result["extras"]["prefix"][row, t] == walked[t][0]
                np.testing.assert_array_equal(result["extras"]["logits"][row, t], walked[t][1])
            else:  # after the end token: zeros
                assert result["extras"]["prefix"][row, t] == 0
                assert not result["extras"]["logits"][row, t].any()


def test_beam_width_one_is_greedy():
    table = _table(6)
    greedy = _decode(table, method="greedy", max_length=STEPS, end_token=END)
    beam = _decode(table, method="beam", beam_width=1, max_length=STEPS, end_token=END)
    np.testing.assert_array_equal(beam["tokens"], greedy["tokens"])
    np.testing.assert_array_equal(beam["lengths"], greedy["lengths"])
    np.testing.assert_allclose(beam["scores"], greedy["scores"], atol=1e-6)
    for name in ("prefix", "logits"):
        np.testing.assert_array_equal(beam["extras"][name], greedy["extras"][name])


def test_a_wider_beam_never_scores_worse():
    table = _table(7, scale=0.7)
    scores = [_decode(table, method="beam", beam_width=w, max_length=STEPS, end_token=END)["scores"]
              for w in (1, 2, 4, 16)]
    for narrow, wide in zip(scores, scores[1:]):
        assert np.all(wide >= narrow - 1e-6)


# -- greedy and sampling -------------------------------------------------------------------------


def test_greedy_tokens_and_scores_match_numpy():
    table = _table(8)
    result = _decode(table, method="greedy", max_length=STEPS, end_token=END)
    for row in range(BATCH):
        tokens, score = _greedy(table, row)
        assert result["tokens"][row].tolist() == tokens
        assert result["scores"][row] == pytest.approx(score, abs=1e-5)
        assert result["lengths"][row] == (tokens.index(END) if END in tokens else STEPS)


def test_without_an_end_token_every_row_runs_max_length():
    result = _decode(_table(9), method="greedy", max_length=STEPS)
    assert result["lengths"].tolist() == [STEPS] * BATCH
    assert result["tokens"].shape == (BATCH, STEPS)


def test_sampling_is_reproducible_under_a_seed_and_scores_the_drawn_tokens():
    table = _table(10, scale=0.5)
    rows = 3
    first = _decode(table, rows=rows, method="sample", max_length=STEPS, seed=11)
    again = _decode(table, rows=rows, method="sample", max_length=STEPS, seed=11)
    other = _decode(table, rows=rows, method="sample", max_length=STEPS, seed=12)
    np.testing.assert_array_equal(first["tokens"], again["tokens"])
    assert (first["tokens"] != other["tokens"]).any()
    for row in range(rows):
        tokens = first["tokens"][row].tolist()
        expected = sum(lp[t] for (_, _, lp), t in zip(_walk(table, row, tokens), tokens))
        assert first["scores"][row] == pytest.approx(expected, abs=1e-5)


def test_sampling_draws_with_the_stateless_seed_of_each_step():
    table = _table(11, scale=0.5)
    result = _decode(table, method="sample", max_length=STEPS, seed=5, temperature=0.8)
    for t in range(STEPS):
        scaled = tf.constant(result["extras"]["logits"][:, t]) / 0.8
        draw = tf.random.stateless_categorical(scaled, 1, seed=[5, t], dtype=tf.int32)[:, 0]
        np.testing.assert_array_equal(result["tokens"][:, t], draw.numpy())


@pytest.mark.parametrize("settings", [dict(top_k=1), dict(temperature=0.0),
                                      dict(temperature=tf.constant(0.0)),
                                      dict(top_k=tf.constant(1), temperature=2.0)])
def test_top_k_one_and_zero_temperature_are_greedy(settings):
    table = _table(12, scale=0.3)
    greedy = _decode(table, method="greedy", max_length=STEPS, end_token=END)
    sampled = _decode(table, method="sample", max_length=STEPS, end_token=END, seed=3, **settings)
    np.testing.assert_array_equal(sampled["tokens"], greedy["tokens"])
    np.testing.assert_allclose(sampled["scores"], greedy["scores"], atol=1e-6)


def test_top_k_draws_only_among_the_k_most_likely():
    table = _table(13, scale=0.2)
    rows = 16
    table = np.concatenate([table] * 6)[:rows]
    for seed in range(4):
        result = _decode(table, rows=rows, method="sample", max_length=STEPS, top_k=2, seed=seed)
        ranks = (result["extras"]["logits"] > np.take_along_axis(
            result["extras"]["logits"], result["tokens"][..., None], -1)).sum(-1)
        assert ranks.max() <= 1  # at most one token is more likely than the drawn one
    assert ranks.max() == 1  # and the second best is drawn too


def _nucleus(logits, top_p):
    """NumPy: the tokens of each row's nucleus (fewest most likely tokens holding >= top_p)."""
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    order = np.argsort(-probabilities, kind="stable")
    before = np.cumsum(np.take_along_axis(probabilities, order, -1), -1) - np.take_along_axis(
        probabilities, order, -1)
    return [set(row_order[row_before < top_p].tolist()) for row_order, row_before in zip(order, before)]


@pytest.mark.parametrize("top_p", [0.5, 0.8, tf.constant(0.8)])
def test_top_p_draws_only_from_the_nucleus(top_p):
    table = _table(15, scale=0.3)  # flat enough for nuclei of two or three tokens
    rows = 16
    table = np.concatenate([table] * 6)[:rows]
    drawn_outside_top, excluded = False, False
    for seed in range(4):
        result = _decode(table, rows=rows, method="sample", max_length=STEPS, top_p=top_p, seed=seed,
                         temperature=0.7)
        logits = result["extras"]["logits"] / 0.7
        for t in range(STEPS):
            nuclei = _nucleus(logits[:, t], float(top_p))
            tokens = result["tokens"][:, t]
            assert all(int(token) in nucleus for token, nucleus in zip(tokens, nuclei))
            drawn_outside_top |= bool((tokens != logits[:, t].argmax(-1)).any())
            excluded |= any(len(nucleus) < VOCAB for nucleus in nuclei)
    assert drawn_outside_top and excluded  # neither greedy nor unrestricted in disguise


def test_a_tiny_top_p_is_greedy():
    table = _table(12, scale=0.3)
    greedy = _decode(table, method="greedy", max_length=STEPS, end_token=END)
    sampled = _decode(table, method="sample", max_length=STEPS, end_token=END, seed=3, top_p=1e-6)
    np.testing.assert_array_equal(sampled["tokens"], greedy["tokens"])


def test_a_top_p_tensor_out_of_range_fails_in_the_graph():
    with pytest.raises(tf.errors.InvalidArgumentError, match="top_p must be in"):
        _decode(_table(), method="sample", max_length=STEPS, top_p=tf.constant(1.5))


# -- constraints -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method, settings", [("greedy", {}), ("sample", dict(seed=1)),
                                              ("beam", dict(beam_width=3))])
def test_forbidden_tokens_never_appear(method, settings):
    table = _table(14)
    table[..., 3] += 50.0  # the favourite everywhere
    result = _decode(table, method=method, max_length=STEPS, end_token=END, forbidden_tokens=(3,),
                     **settings)
    assert not (result["tokens"] == 3).any()
    unconstrained = _decode(table, method=method, max_length=STEPS, end_token=END, **settings)
    assert (unconstrained["tokens"] == 3).all()


@pytest.mark.parametrize("method, settings", [("greedy", {}), ("sample", dict(seed=1)),
                                              ("beam", dict(beam_width=3))])
def test_min_length_holds_the_end_token_back(method, settings):
    table = _table(15)
    table[..., END] += 50.0  # ends at once when allowed
    result = _decode(table, method=method, max_length=STEPS, end_token=END, min_length=2,
                     **settings)
    assert result["lengths"].tolist() == [2] * BATCH
    assert (result["tokens"][:, :2] != END).all() and (result["tokens"][:, 2] == END).all()
    assert (result["tokens"][:, 3] == PAD).all()


def test_the_loop_stops_once_every_row_has_ended():
    table = _table(16)
    table[..., END] += 50.0
    calls = tf.Variable(0)
    step = _step_fn(table)

    def counting_step(tokens, state, context, t):
        calls.assign_add(1)
        return step(tokens, state, context, t)

    result = generation.decode(counting_step, **_inputs(), max_length=STEPS, end_token=END,
                               min_length=1)
    assert result["lengths"].numpy().tolist() == [1] * BATCH
    assert int(calls.numpy()) == 2


# -- graphs and SavedModels ----------------------------------------------------------------------


class _Decoder(tf.Module):
    def __init__(self, table):
        super().__init__()
        self.table = tf.Variable(table)

    def step(self, tokens, state, context, t):
        prefix = state["prefix"] * BASE + tf.cast(tokens, tf.float32) + 1.0
        index = tf.stack([tf.cast(context["row"], tf.int32), tf.cast(prefix, tf.int32)], axis=-1)
        logits = tf.gather_nd(self.table, index)
        return logits, {"prefix": prefix}, {"logits": logits}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="rows"),
                                  tf.TensorSpec([], tf.int32, name="max_length"),
                                  tf.TensorSpec([], tf.int32, name="beam_width"),
                                  tf.TensorSpec([], tf.float32, name="alpha")])
    def beam(self, rows, max_length, beam_width, alpha):
        batch = tf.shape(rows)[0]
        result = generation.decode(
            self.step, {"prefix": tf.zeros([batch])}, tf.fill([batch], START), method="beam",
            max_length=max_length, end_token=END, beam_width=beam_width, length_penalty=alpha,
            context={"row": tf.cast(rows, tf.float32)})
        return {"tokens": result["tokens"], "scores": result["scores"],
                "logits": result["extras"]["logits"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="rows"),
                                  tf.TensorSpec([], tf.int32, name="max_length"),
                                  tf.TensorSpec([], tf.int64, name="seed")])
    def sample(self, rows, max_length, seed):
        batch = tf.shape(rows)[0]
        result = generation.decode(
            self.step, {"prefix": tf.zeros([batch])}, tf.fill([batch], START), method="sample",
            max_length=max_length, seed=seed, context={"row": tf.cast(rows, tf.float32)})
        return {"tokens": result["tokens"], "scores": result["scores"]}


def _check_decoder(decoder, table):
    for batch, max_length, width in ((1, STEPS, 1), (3, STEPS, 7), (2, 2, 3)):
        rows = tf.range(batch)
        got = decoder.beam(rows, tf.constant(max_length), tf.constant(width), tf.constant(0.5))
        expected = _decode(table[:batch], rows=batch, method="beam", max_length=max_length,
                           end_token=END, beam_width=width, length_penalty=0.5)
        assert got["tokens"].shape == (batch, max_length)
        np.testing.assert_array_equal(got["tokens"].numpy(), expected["tokens"])
        np.testing.assert_allclose(got["scores"].numpy(), expected["scores"], atol=1e-6)
        np.testing.assert_array_equal(got["logits"].numpy(), expected["extras"]["logits"])
    sampled = decoder.sample(tf.range(3), tf.constant(STEPS), tf.constant(9, tf.int64))
    expected = _decode(table, method="sample", max_length=STEPS, seed=9)
    np.testing.assert_array_equal(sampled["tokens"].numpy(), expected["tokens"])


def test_runs_in_a_tf_function_with_dynamic_batch_length_and_width():
    table = _table(17)
    _check_decoder(_Decoder(table), table)


def test_survives_a_saved_model_round_trip(tmp_path):
    table = _table(18)
    tf.saved_model.save(_Decoder(table), str(tmp_path / "decoder"))
    _check_decoder(tf.saved_model.load(str(tmp_path / "decoder")), table)


# -- argument checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    (dict(method="nucleus"), "method must be one of"),
    (dict(max_length=0), "max_length must be an integer"),
    (dict(max_length=2.5), "max_length"),
    (dict(beam_width=0, method="beam"), "beam_width must be"),
    (dict(top_k=-1, method="sample"), "top_k must be"),
    (dict(temperature=-0.5, method="sample"), "temperature must be"),
    (dict(temperature=float("nan"), method="sample"), "temperature must be"),
    (dict(min_length=-1), "min_length must be"),
    (dict(forbidden_tokens="12"), "forbidden_tokens must be"),
    (dict(end_token=VOCAB), "end_token must be < the vocabulary size 4"),
    (dict(forbidden_tokens=(VOCAB + 1,)), "forbidden_tokens must be < the vocabulary size"),
    (dict(seed=2**63), "seed must be"),
    (dict(top_p=0.0, method="sample"), "top_p must be a number in"),
    (dict(top_p=1.5, method="sample"), "top_p must be a number in"),
    (dict(top_p="0.9", method="sample"), "top_p must be a number in"),
])
def test_rejects_bad_arguments(settings, message):
    arguments = {"max_length": STEPS, **settings}
    with pytest.raises(ValueError, match=message):
        generation.decode(_step_fn(_table()), **_inputs(), **arguments)


def test_rejects_a_step_function_that_changes_the_state_structure():
    def step(tokens, state, context, t):
        return tf.zeros([tf.shape(tokens)[0], VOCAB]), [state["prefix"]], {}

    with pytest.raises(ValueError, match="structure of the initial state"):
        generation.decode(step, **_inputs(), max_length=STEPS)


def test_checks_tensor_arguments_in_the_graph():
    with pytest.raises(tf.errors.InvalidArgumentError, match="beam_width must be >= 1"):
        generation.decode(_step_fn(_table()), **_inputs(), method="beam", max_length=STEPS,
                          beam_width=tf.constant(0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_length must be >= 1"):
        generation.decode(_step_fn(_table()), **_inputs(), max_length=tf.constant(0))


# -- no repeated n-grams --------------------------------------------------------------------


def _repeats_an_ngram(tokens, n):
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


def _exhaustive_without_repeats(table, row, n):
    """The best sequence (by summed log-probability) among those with no n-gram twice."""
    best, best_score = None, -np.inf
    for tokens in itertools.product(range(VOCAB), repeat=STEPS):
        if END in tokens:
            tokens = tokens[: tokens.index(END) + 1]
        if _repeats_an_ngram(tokens, n):
            continue
        score = sum(lp[t] for (_, _, lp), t in zip(_walk(table, row, tokens), tokens))
        if score > best_score:
            best, best_score = tokens, score
    return list(best) + [PAD] * (STEPS - len(best)), best_score


def _greedy_without_repeats(table, row, n):
    tokens, prefix, previous = [], 0.0, START
    while len(tokens) < STEPS:
        prefix = prefix * BASE + previous + 1
        log_probs = _log_softmax(table[row, int(prefix)]).copy()
        for token in range(VOCAB):
            if _repeats_an_ngram(tokens + [token], n):
                log_probs[token] = -np.inf
        previous = int(np.argmax(log_probs))
        tokens.append(previous)
        if previous == END:
            break
    return tokens + [PAD] * (STEPS - len(tokens))


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 3])
def test_no_repeat_ngrams_full_width_beam_equals_exhaustive_search(n, seed):
    table = _table(seed, scale=3.0)
    result = _decode(table, method="beam", beam_width=VOCAB ** STEPS, max_length=STEPS,
                     end_token=END, pad_token=PAD, no_repeat_ngram_size=n)
    for row in range(BATCH):
        tokens, score = _exhaustive_without_repeats(table, row, n)
        assert result["tokens"][row].tolist() == tokens
        assert result["scores"][row] == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngrams_in_greedy_search_match_numpy(n):
    table = _table(4, scale=3.0)
    result = _decode(table, method="greedy", max_length=STEPS, end_token=END, pad_token=PAD,
                     no_repeat_ngram_size=n)
    for row in range(BATCH):
        assert result["tokens"][row].tolist() == _greedy_without_repeats(table, row, n)


def test_a_looping_model_stops_repeating_itself():
    """A step function that always prefers the token after the previous one, in a cycle of 3:
    plain greedy search repeats the cycle; with trigram blocking no trigram comes twice."""
    vocab = 6

    def step(tokens, state, context, t):
        preferred = (tokens + 1) % 3 + 2  # 2 → 3 → 4 → 2 ...
        logits = tf.one_hot(preferred, vocab) * 5.0 + tf.cast(tf.range(vocab), tf.float32)[None] * 0.01
        return logits, state, {}

    inputs = dict(initial_state={"s": tf.zeros([2])}, start_tokens=tf.constant([2, 3]),
                  context={"unused": tf.zeros([2])})
    plain = generation.decode(step, **inputs, method="greedy", max_length=12, pad_token=0)["tokens"].numpy()
    assert all(_repeats_an_ngram(list(row), 3) for row in plain)
    for method, extra in (("greedy", {}), ("beam", {"beam_width": 3}),
                          ("sample", {"temperature": 1.0, "seed": 7})):
        blocked = generation.decode(step, **inputs, method=method, max_length=12, pad_token=0,
                                    no_repeat_ngram_size=3, **extra)["tokens"].numpy()
        for row in blocked:
            assert not _repeats_an_ngram(list(row), 3), (method, row)


@pytest.mark.parametrize("value", [-1, 1.5, "2", None])
def test_no_repeat_ngram_size_must_be_a_whole_number(value):
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        _decode(_table(), method="greedy", max_length=STEPS, no_repeat_ngram_size=value)
