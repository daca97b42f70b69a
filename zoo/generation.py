"""One decoding engine for every generative model of the zoo.

A generative model supplies a single *step*; this module supplies every way
of turning steps into sequences. Music, translation and captioning differ
only in their step function (the lesson of keras-hub's samplers: one loop,
many ways of choosing the next token).

The step function::

    logits, new_state, extras = step_fn(tokens, state, context, t)

* ``tokens``: int32 ``[n]``, the previous token of each row (the start
  tokens at ``t = 0``);
* ``state``: a nest (list, tuple or dict) of tensors with leading dim ``n``,
  returned as ``new_state`` with the same structure;
* ``context``: a nest of tensors with leading dim ``n`` that stays constant
  over the steps (encoder outputs, masks, a key vector); an empty dict
  when `decode` was given none;
* ``t``: int32 scalar, the index of the token being chosen;
* ``logits``: float32 ``[n, vocab]``, unnormalised next-token scores;
* ``extras``: a dict (possibly empty) of float tensors with leading dim
  ``n`` that the caller wants back per step (attention weights, ...).

``n`` is the batch size, or ``batch * beam_width`` in beam search, where the
initial state, the start tokens and the context are tiled batch-major
(``tf.repeat(x, beam_width, axis=0)``: rows ``b * beam_width + i``).

`decode` runs the whole search in one `tf.while_loop` (beam search adds a
second loop that follows the parent pointers back), so no Python runs per
step: it works inside a `tf.function` with a dynamic batch, `max_length` and
`beam_width`, and exports in a SavedModel. Called eagerly it wraps itself in
a `tf.function`. The loop stops as soon as every row has produced
`end_token`; outputs are padded to `max_length`. `step_fn` is traced twice:
once in a throw-away graph that tells the engine the structure of its
outputs (nothing of it runs), once as the loop body; the layers it calls
should be built already (those of a trained model are).

The three methods:

* ``"greedy"``: the most likely token, ``argmax(logits + bias)``;
* ``"sample"``: a draw from ``softmax(logits / max(temperature, 1e-6) +
  bias)``, optionally restricted to the `top_k` most likely tokens and then
  to the nucleus of `top_p` (the fewest most likely tokens whose tempered
  probabilities sum to at least `top_p`, Holtzman et al. 2020); the draw
  at step ``t`` is ``tf.random.stateless_categorical(scaled, 1, seed=[seed,
  t])``, so the same seed gives the same output. ``temperature == 0`` is
  greedy;
* ``"beam"``: beam search over ``beam_width`` hypotheses per row. A
  hypothesis that has produced `end_token` stays in the beam with its score
  and extends only by `pad_token` at no cost, so a beam as wide as the set of
  candidate sequences is an exhaustive search. Hypotheses are ranked by
  ``sum of log-probabilities / ((5 + length) / 6) ** length_penalty`` (the
  GNMT length penalty; ``length`` counts the produced tokens including the
  end token; 0 = plain sums).

``bias`` is ``-1e9`` for `forbidden_tokens`, and for `end_token` while
``t < min_length``, 0 elsewhere.

Example:

    def step_fn(tokens, state, context, t):
        output, new_state = cell(embedding(tokens), state)
        return head(output), new_state, {}

    result = generation.decode(step_fn, initial_state, start_tokens,
                               method="beam", beam_width=4, max_length=50,
                               end_token=EOS)
    result["tokens"], result["lengths"], result["scores"]
"""

from zoo import _backend  # noqa: F401

import functools
import math
import numbers

import numpy as np
import tensorflow as tf

#: The decoding methods `decode` accepts.
METHODS = ("greedy", "sample", "beam")
#: The logit bias that keeps a token from being produced.
FORBIDDEN_LOGIT_BIAS = -1e9
#: Sampling divides the logits by ``max(temperature, MIN_TEMPERATURE)``.
MIN_TEMPERATURE = 1e-6


def decode(step_fn, initial_state, start_tokens, *, method="greedy", max_length, end_token=None,
           pad_token=0, context=None, temperature=1.0, top_k=0, top_p=1.0, seed=0, beam_width=1,
           length_penalty=0.0, forbidden_tokens=(), min_length=0, no_repeat_ngram_size=0):
    """Decode sequences from a step function by greedy search, sampling or beam search.

    Args:
        step_fn: ``(tokens int32 [n], state, context, t int32 scalar) ->
            (logits float32 [n, vocab], new_state, extras dict)`` (see the
            module docstring).
        initial_state: A nest of float tensors with leading dim ``batch``.
        start_tokens: int32 ``[batch]``, the first input token of each row.
        method: ``"greedy"``, ``"sample"`` or ``"beam"`` (a Python string).
        max_length: Steps to run at most, the width of the outputs (int or
            int32 scalar tensor, at least 1).
        end_token: A row is finished once it produces this token; it emits
            `pad_token` afterwards. None: every row runs `max_length` steps.
        pad_token: The token of finished rows and of the padding.
        context: A nest of tensors with leading dim ``batch``, passed to
            `step_fn` unchanged at every step (tiled for beams), or None.
        temperature: Sampling only: the logits are divided by
            ``max(temperature, 1e-6)``; 0 means greedy (float or scalar tensor).
        top_k: Sampling only: draw among the `top_k` most likely tokens
            (0 = all; int or scalar tensor).
        top_p: Sampling only: draw from the nucleus, the fewest most likely
            tokens (after temperature, bias and `top_k`) whose probabilities
            sum to at least `top_p` (tokens tied with its least likely one
            too); the most likely token is always in it.
            In (0, 1]; 1 = all (float or scalar tensor).
        seed: Sampling only: int64 scalar; the draw at step ``t`` uses the
            stateless seed ``[seed, t]``.
        beam_width: Beam search only: hypotheses kept per row (int or int32
            scalar tensor, at least 1).
        length_penalty: Beam search only: the GNMT exponent ``alpha`` of
            ``((5 + length) / 6) ** alpha`` (0 = summed log-probabilities).
        forbidden_tokens: Token ids that are never produced.
        min_length: `end_token` is not produced while ``t < min_length``.
        no_repeat_ngram_size: A Python int ``n``; when > 0, no row (no
            hypothesis, in beam search) produces the same n-gram of tokens
            twice: a token that would complete an n-gram already in the row is
            forbidden at that step (``n = 1``: no token twice). 0 = off.

    Returns:
        A dict:

        * ``"tokens"``: int32 ``[batch, max_length]``, the produced tokens
          (the end token included where produced), `pad_token` after it;
        * ``"lengths"``: int32 ``[batch]``, tokens before the end token (or
          `max_length` for a row that did not end);
        * ``"scores"``: float32 ``[batch]``, the summed log-probabilities of
          the produced tokens, end token included, under
          ``log_softmax(logits)`` of the step function as it returned them
          (before temperature, top-k and bias). For sampling too: the score
          is the model's log-probability of the drawn sequence, not that of
          the tempered distribution. Beam search divides it by the length
          penalty;
        * ``"extras"``: dict name -> ``[batch, max_length, ...]``, the step
          function's extras at each step (for beam search those of the
          chosen hypothesis), zeros once a row has finished.

    Raises:
        ValueError: An unknown method or a Python argument out of range.
            Tensor arguments are checked in the graph
            (`tf.errors.InvalidArgumentError`).
    """
    _check_arguments(step_fn, method, max_length, end_token, pad_token, temperature, top_k, seed,
                     beam_width, length_penalty, forbidden_tokens, min_length)
    if not _is_tensor(top_p) and not (_is_number(top_p) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be a number in (0, 1] (1 = all tokens) or a scalar tensor, "
                         f"received {top_p!r}")
    if not _is_int(no_repeat_ngram_size) or no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must be a whole number >= 0 (0 = off), "
                         f"received {no_repeat_ngram_size!r}")
    run = functools.partial(
        _decode_in_graph, step_fn, method=method,
        end_token=None if end_token is None else int(end_token), pad_token=int(pad_token),
        forbidden_tokens=tuple(int(token) for token in forbidden_tokens),
        length_penalty=length_penalty, no_repeat_ngram_size=int(no_repeat_ngram_size),
    )
    tensors = dict(initial_state=initial_state, start_tokens=start_tokens, context=context,
                   max_length=max_length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                   beam_width=beam_width, min_length=min_length)
    if tf.inside_function():
        return run(**tensors)
    # Eagerly, a tf.while_loop would run its body in Python once per step.
    return tf.function(run, autograph=False)(**tensors)


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, bool)


def _is_tensor(value):
    return tf.is_tensor(value) or isinstance(value, tf.Variable)


def _check_int(name, value, minimum, tensor_ok=True):
    if tensor_ok and _is_tensor(value):
        return
    if not _is_int(value) or value < minimum:
        kind = "an integer" + (" or a scalar int tensor" if tensor_ok else "")
        raise ValueError(f"{name} must be {kind} >= {minimum}, received {value!r}")


def _check_arguments(step_fn, method, max_length, end_token, pad_token, temperature, top_k, seed,
                     beam_width, length_penalty, forbidden_tokens, min_length):
    if not callable(step_fn):
        raise ValueError(f"step_fn must be callable, received {step_fn!r}")
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, received {method!r}")
    _check_int("max_length", max_length, 1)
    if end_token is not None:
        _check_int("end_token", end_token, 0, tensor_ok=False)
    _check_int("pad_token", pad_token, 0, tensor_ok=False)
    _check_int("top_k", top_k, 0)
    _check_int("beam_width", beam_width, 1)
    _check_int("min_length", min_length, 0)
    if not _is_tensor(temperature) and not (_is_number(temperature) and math.isfinite(temperature)
                                            and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy) or a scalar "
                         f"tensor, received {temperature!r}")
    if not _is_tensor(seed) and not (_is_int(seed) and -2**63 <= seed < 2**63):
        raise ValueError(f"seed must be a 64-bit integer or a scalar int64 tensor, received {seed!r}")
    if not _is_tensor(length_penalty) and not (_is_number(length_penalty)
                                               and math.isfinite(length_penalty)):
        raise ValueError(f"length_penalty must be a finite number or a scalar tensor, "
                         f"received {length_penalty!r}")
    if not isinstance(forbidden_tokens, (list, tuple, set, frozenset, range, np.ndarray)) or not all(
            _is_int(token) and token >= 0 for token in forbidden_tokens):
        raise ValueError(f"forbidden_tokens must be a sequence of token ids >= 0, "
                         f"received {forbidden_tokens!r}")


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------


def _relaxed_spec(tensor):
    """A `TensorSpec` of `tensor` with its leading (row) dimension unknown."""
    shape = tensor.shape
    if shape.rank is None or shape.rank == 0:
        return tf.TensorSpec(shape, tensor.dtype)
    return tf.TensorSpec([None] + shape.as_list()[1:], tensor.dtype)


def _probe_step(step_fn, tokens, state, context):
    """Trace `step_fn` once in a throw-away graph to learn the structure of its outputs.

    The loop must declare its variables (one `TensorArray` per extra) before
    the body runs; tracing the step separately gives their names, dtypes and
    shapes without adding a step's work to the decoding graph.
    """
    specs = tf.nest.map_structure(_relaxed_spec, (tokens, state, context))
    probe = tf.function(lambda tk, st, cx, t: step_fn(tk, st, cx, t), autograph=False)
    outputs = probe.get_concrete_function(*specs, tf.TensorSpec([], tf.int32)).structured_outputs
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 3:
        raise ValueError(f"step_fn must return (logits, new_state, extras), received {outputs!r}")
    logits, new_state, extras = outputs
    if not isinstance(logits, tf.Tensor) or logits.shape.rank != 2:
        raise ValueError(f"step_fn must return logits of shape [n, vocab], received {logits!r}")
    try:
        tf.nest.assert_same_structure(state, new_state)
    except (ValueError, TypeError) as error:
        raise ValueError(f"step_fn must return a new state with the structure of the initial "
                         f"state: {error}") from None
    if not isinstance(extras, dict):
        raise ValueError(f"step_fn must return its extras as a dict (possibly empty), "
                         f"received {extras!r}")
    return logits, extras


def _decode_in_graph(step_fn, *, initial_state, start_tokens, context, max_length, temperature,
                     top_k, top_p, seed, beam_width, min_length, method, end_token, pad_token,
                     forbidden_tokens, length_penalty, no_repeat_ngram_size=0):
    start_tokens = tf.cast(tf.convert_to_tensor(start_tokens), tf.int32)
    initial_state = tf.nest.map_structure(tf.convert_to_tensor, initial_state)
    # a step without context gets an empty dict (tf.nest cannot convert a None)
    context = {} if context is None else tf.nest.map_structure(tf.convert_to_tensor, context)
    max_length = tf.cast(max_length, tf.int32)
    min_length = tf.cast(min_length, tf.int32)
    beam = method == "beam"
    width = tf.cast(beam_width, tf.int32) if beam else tf.constant(1)
    checks = [
        tf.debugging.assert_rank(start_tokens, 1, message="start_tokens must have shape [batch]"),
        tf.debugging.assert_greater_equal(max_length, 1, message="max_length must be >= 1"),
        tf.debugging.assert_greater_equal(min_length, 0, message="min_length must be >= 0"),
        tf.debugging.assert_greater_equal(width, 1, message="beam_width must be >= 1"),
    ]
    static_top_k = None if _is_tensor(top_k) else int(top_k)
    static_top_p = None if _is_tensor(top_p) else float(top_p)
    if method == "sample":
        temperature = tf.cast(temperature, tf.float32)
        top_k = tf.cast(top_k, tf.int32)
        top_p = tf.cast(top_p, tf.float32)
        seed = tf.cast(seed, tf.int64)
        checks += [
            tf.debugging.assert_greater_equal(temperature, 0.0,
                                              message="temperature must be >= 0 (0 = greedy)"),
            tf.debugging.assert_greater_equal(top_k, 0, message="top_k must be >= 0 (0 = all)"),
            tf.debugging.assert_greater(top_p, 0.0, message="top_p must be in (0, 1]"),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1]"),
        ]
    with tf.control_dependencies(checks):
        batch = tf.shape(start_tokens)[0]
    rows = batch * width

    def tile(x):
        return tf.repeat(x, width, axis=0) if beam else x

    tokens = tile(start_tokens)
    state = tf.nest.map_structure(tile, initial_state)
    context = tf.nest.map_structure(tile, context)
    probe_logits, probe_extras = _probe_step(step_fn, tokens, state, context)
    vocab = probe_logits.shape[-1]
    if vocab is None:
        raise ValueError(f"step_fn must return logits whose vocabulary dimension is known when "
                         f"traced, received shape {probe_logits.shape}")
    for name, token in (("end_token", end_token), ("pad_token", pad_token)):
        if token is not None and token >= vocab:
            raise ValueError(f"{name} must be < the vocabulary size {vocab}, received {token}")
    if any(token >= vocab for token in forbidden_tokens):
        raise ValueError(f"forbidden_tokens must be < the vocabulary size {vocab}, "
                         f"received {forbidden_tokens!r}")
    forbidden_bias = tf.zeros([vocab], tf.float32)
    if forbidden_tokens:
        forbidden_bias = tf.reduce_sum(
            tf.one_hot(list(forbidden_tokens), vocab, on_value=FORBIDDEN_LOGIT_BIAS), axis=0)
    end_bias = (tf.one_hot(end_token, vocab, on_value=FORBIDDEN_LOGIT_BIAS)
                if end_token is not None else None)

    def logit_bias(t):
        if end_bias is None:
            return forbidden_bias
        return forbidden_bias + tf.where(t < min_length, end_bias, tf.zeros_like(end_bias))

    def penalty(lengths):
        if not _is_tensor(length_penalty) and length_penalty == 0:
            return None
        lengths = tf.cast(lengths, tf.float32)
        return tf.pow((5.0 + lengths) / 6.0, tf.cast(length_penalty, tf.float32))

    def choose_greedy(logits, bias):
        return tf.argmax(logits + bias, axis=-1, output_type=tf.int32)

    def choose_sample(logits, bias, t):
        def sampled():
            scaled = logits / tf.maximum(temperature, MIN_TEMPERATURE) + bias

            def keep_top_k():
                k = tf.minimum(top_k, tf.shape(scaled)[-1])
                kth = tf.math.top_k(scaled, k=k).values[:, -1:]
                return tf.where(scaled >= kth, scaled, tf.fill(tf.shape(scaled), -np.inf))

            def keep_nucleus():
                # sorted, a token is in the nucleus while the tokens before it hold less than top_p;
                # like top-k, keep every token at least as likely as the last one in it
                ranked = tf.sort(scaled, axis=-1, direction="DESCENDING")
                before = tf.cumsum(tf.nn.softmax(ranked), axis=-1, exclusive=True)
                size = tf.reduce_sum(tf.cast(before < top_p, tf.int32), axis=-1)
                last = tf.gather(ranked, size - 1, batch_dims=1)[:, None]
                return tf.where(scaled >= last, scaled, tf.fill(tf.shape(scaled), -np.inf))

            if static_top_k is None:
                scaled = tf.cond(top_k > 0, keep_top_k, lambda: scaled)
            elif static_top_k > 0:
                scaled = keep_top_k()
            if static_top_p is None:
                scaled = tf.cond(top_p < 1.0, keep_nucleus, lambda: scaled)
            elif static_top_p < 1.0:
                scaled = keep_nucleus()
            draw = tf.random.stateless_categorical(
                scaled, 1, seed=tf.stack([seed, tf.cast(t, tf.int64)]), dtype=tf.int32)
            return draw[:, 0]

        return tf.cond(temperature > 0.0, sampled, lambda: choose_greedy(logits, bias))

    pad_only = tf.where(tf.range(vocab) == pad_token, 0.0, -np.inf)  # a finished row's step
    n = no_repeat_ngram_size

    def repeat_bias(history, t):
        """[rows, vocab]: FORBIDDEN_LOGIT_BIAS for each token that would complete an n-gram the
        row has produced before (its last n - 1 tokens followed, earlier, by that token)."""
        starts = tf.maximum(t - n + 1, 0)  # earlier n-grams start at 0 .. t - n
        match = tf.ones([rows, starts], tf.bool)
        for k in range(n - 1):
            latest = tf.gather(history, tf.maximum(t - n + 1 + k, 0), axis=1)
            match &= tf.equal(history[:, k:k + starts], latest[:, None])
        banned = history[:, n - 1:n - 1 + starts]
        row_ids = tf.broadcast_to(tf.range(rows)[:, None], tf.shape(banned))
        indices = tf.reshape(tf.stack([row_ids, tf.maximum(banned, 0)], axis=-1), [-1, 2])
        updates = tf.reshape(tf.where(match, FORBIDDEN_LOGIT_BIAS, 0.0), [-1])
        return tf.tensor_scatter_nd_min(tf.zeros([rows, vocab], tf.float32), indices, updates)

    def remember(history, chosen, t):
        if n == 0:
            return history
        where = tf.stack([tf.range(rows), tf.fill([rows], t)], axis=1)
        return tf.tensor_scatter_nd_update(history, where, chosen)

    def body(t, tokens, state, finished, log_prob_sums, ranking_sums, scored_lengths,
             token_steps, parent_steps, extras_steps, history):
        logits, new_state, extras = step_fn(tokens, state, context, t)
        logits = tf.cast(logits, tf.float32)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        bias = logit_bias(t)
        if n > 0:
            bias = bias + repeat_bias(history, t)
        extras = {name: tf.where(tf.reshape(finished, [-1] + [1] * (value.shape.rank - 1)),
                                 tf.zeros_like(value), value)
                  for name, value in extras.items()}
        if beam:
            step_log_probs = tf.where(finished[:, None], pad_only, log_probs)
            step_ranking = tf.where(finished[:, None], pad_only, log_probs + bias)
            log_prob_totals = log_prob_sums[:, None] + step_log_probs
            ranking_totals = ranking_sums[:, None] + step_ranking
            lengths = scored_lengths + tf.where(finished, 0, 1)
            ranked = ranking_totals
            divisor = penalty(lengths)
            if divisor is not None:
                ranked = ranking_totals / divisor[:, None]
            _, best = tf.math.top_k(tf.reshape(ranked, [batch, width * vocab]), k=width)
            parents = tf.reshape(best // vocab + tf.range(batch)[:, None] * width, [-1])
            chosen = tf.reshape(best % vocab, [-1])
            picked = parents * vocab + chosen
            log_prob_sums = tf.gather(tf.reshape(log_prob_totals, [-1]), picked)
            ranking_sums = tf.gather(tf.reshape(ranking_totals, [-1]), picked)
            scored_lengths = tf.gather(lengths, parents)
            finished = tf.gather(finished, parents)
            new_state = tf.nest.map_structure(lambda s: tf.gather(s, parents), new_state)
            extras = {name: tf.gather(value, parents) for name, value in extras.items()}
            parent_steps = parent_steps.write(t, parents)
            if n > 0:
                history = tf.gather(history, parents)
        else:
            if method == "greedy":
                chosen = choose_greedy(logits, bias)
            else:
                chosen = choose_sample(logits, bias, t)
            chosen = tf.where(finished, tf.constant(pad_token, tf.int32), chosen)
            step_log_prob = tf.gather(log_probs, chosen, batch_dims=1)
            log_prob_sums += tf.where(finished, 0.0, step_log_prob)
            scored_lengths += tf.where(finished, 0, 1)
        if end_token is not None:
            finished = finished | (chosen == end_token)
        token_steps = token_steps.write(t, chosen)
        extras_steps = {name: extras_steps[name].write(t, value) for name, value in extras.items()}
        history = remember(history, chosen, t)
        return (t + 1, chosen, new_state, finished, log_prob_sums, ranking_sums, scored_lengths,
                token_steps, parent_steps, extras_steps, history)

    def keep_going(t, tokens, state, finished, *_):
        return (t < max_length) & ~tf.reduce_all(finished)

    def steps_array(dtype, element_shape):
        return tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=element_shape)

    first_in_row = tf.equal(tf.range(rows) % width, 0)
    loop_vars = (
        tf.constant(0),
        tokens,
        state,
        tf.zeros([rows], tf.bool),
        tf.zeros([rows], tf.float32),
        # Beam search starts from one live hypothesis per row: the copies are impossible.
        tf.where(first_in_row, 0.0, -np.inf),
        tf.zeros([rows], tf.int32),
        steps_array(tf.int32, tf.TensorShape([None])),
        steps_array(tf.int32, tf.TensorShape([None])),
        {name: steps_array(value.dtype, _relaxed_spec(value).shape)
         for name, value in probe_extras.items()},
        # the tokens each row has produced (for no_repeat_ngram_size; empty when it is off)
        tf.fill([rows, max_length if n > 0 else 0], tf.constant(-1, tf.int32)),
    )
    invariants = tf.nest.map_structure(
        lambda x: _relaxed_spec(x).shape if isinstance(x, tf.Tensor) else tf.TensorShape(None),
        loop_vars)
    invariants = (tf.TensorShape([]),) + tuple(invariants[1:])
    (steps, _, _, finished, log_prob_sums, ranking_sums, scored_lengths, token_steps,
     parent_steps, extras_steps, _) = tf.while_loop(
        keep_going, body, loop_vars, shape_invariants=invariants, maximum_iterations=max_length)

    if beam:
        ranked = ranking_sums
        divisor = penalty(scored_lengths)
        if divisor is not None:
            ranked = ranking_sums / divisor
        best = tf.argmax(tf.reshape(ranked, [batch, width]), axis=-1, output_type=tf.int32)
        best += tf.range(batch) * width
        tokens, extras = _follow_parents(best, steps, token_steps, parent_steps, extras_steps)
        scores = tf.gather(log_prob_sums, best)
        if divisor is not None:
            scores /= tf.gather(divisor, best)
        finished = tf.gather(finished, best)
        scored_lengths = tf.gather(scored_lengths, best)
    else:
        tokens = _rows_first(token_steps.stack())
        extras = {name: _rows_first(ta.stack()) for name, ta in extras_steps.items()}
        scores = log_prob_sums
    missing = max_length - steps
    tokens = tf.pad(tokens, [[0, 0], [0, missing]], constant_values=pad_token)
    extras = {name: tf.pad(value, [[0, 0], [0, missing]] + [[0, 0]] * (value.shape.rank - 2))
              for name, value in extras.items()}
    static_length = tf.get_static_value(max_length)
    if static_length is not None:
        tokens.set_shape([None, int(static_length)])
        for value in extras.values():
            value.set_shape([None, int(static_length)] + value.shape.as_list()[2:])
    lengths = tf.where(finished, scored_lengths - 1, scored_lengths)
    return {"tokens": tokens, "lengths": lengths, "scores": scores, "extras": extras}


def _rows_first(stacked):
    """`[steps, rows, ...]` → `[rows, steps, ...]`."""
    rank = stacked.shape.rank
    return tf.transpose(stacked, [1, 0] + list(range(2, rank)))


def _follow_parents(best, steps, token_steps, parent_steps, extras_steps):
    """The tokens and extras of hypotheses `best`, read back from the last step to the first."""

    def back(t, rows, tokens, extras):
        tokens = tokens.write(t, tf.gather(token_steps.read(t), rows))
        extras = {name: extras[name].write(t, tf.gather(ta.read(t), rows))
                  for name, ta in extras_steps.items()}
        return t - 1, tf.gather(parent_steps.read(t), rows), tokens, extras

    tokens = tf.TensorArray(tf.int32, size=steps, element_shape=tf.TensorShape([None]))
    extras = {name: tf.TensorArray(ta.dtype, size=steps, element_shape=ta.element_shape)
              for name, ta in extras_steps.items()}
    _, _, tokens, extras = tf.while_loop(
        lambda t, *_: t >= 0, back, (steps - 1, best, tokens, extras),
        maximum_iterations=steps)
    return (_rows_first(tokens.stack()),
            {name: _rows_first(ta.stack()) for name, ta in extras.items()})
