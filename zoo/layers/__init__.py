"""Recurrent cells and sequence layers that compute exactly our documented equations."""

from zoo.layers.attention import (
    AdditiveAttention,
    AttentionDecoder,
    DotAttention,
    GeneralAttention,
    attention_layer,
)
from zoo.layers.gru import GRU, GRUCell
from zoo.layers.lstm import LSTM, LSTMCell
from zoo.layers.simple_rnn import SimpleRNN, SimpleRNNCell
from zoo.layers.subwords import HashedSubwordEmbedding
from zoo.layers.word_dropout import RareWordDropout, WordDropout

#: The sequence layers by the short names recipes use (`--cell lstm|gru|rnn`).
SEQUENCE_LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}


def sequence_layer_class(cell):
    """The zoo sequence layer class for a short cell name ("lstm", "gru" or "rnn")."""
    if cell not in SEQUENCE_LAYERS:
        raise ValueError(
            f"unknown cell {cell!r}; expected one of {', '.join(SEQUENCE_LAYERS)}"
        )
    return SEQUENCE_LAYERS[cell]


__all__ = [
    "SimpleRNNCell",
    "LSTMCell",
    "GRUCell",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "SEQUENCE_LAYERS",
    "sequence_layer_class",
    "AdditiveAttention",
    "DotAttention",
    "GeneralAttention",
    "attention_layer",
    "AttentionDecoder",
    "WordDropout",
    "RareWordDropout",
    "HashedSubwordEmbedding",
]
