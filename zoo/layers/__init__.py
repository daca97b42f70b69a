"""Recurrent cells and sequence layers that compute exactly our documented equations."""

from zoo.layers.gru import GRU, GRUCell
from zoo.layers.lstm import LSTM, LSTMCell
from zoo.layers.simple_rnn import SimpleRNN, SimpleRNNCell

__all__ = ["SimpleRNNCell", "LSTMCell", "GRUCell", "SimpleRNN", "LSTM", "GRU"]
