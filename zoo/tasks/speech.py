"""Speech recognition with CTC: raw audio in, characters out.

The Keras model (`build_model`) takes the audio itself, so the exported model
needs no preprocessing code:

    waveforms float32 [batch, samples] at 16 kHz, lengths int32 [batch]
      → training only: random leading silence, gain and white noise (`WaveformAugment`)
      → log-mel features in the graph (`LogMel`): 25 ms Hann windows every 10 ms,
        a 512-point FFT, `mel_bins` triangular filters from 60 Hz to `max_frequency`
        (4 kHz by default, the band of telephone audio, so 8 kHz and wideband
        recordings look alike), log, then each utterance's mean and variance
        normalised per bin over its own frames; training only: vocal-tract-length
        perturbation (a random frequency warp per clip)
      → training only: SpecAugment-style frequency and time masks (`SpecAugment`)
      → 2 (or 1) × `ConvSubsample` (Conv1D, stride 2: 40 ms, or 20 ms, per output frame)
      → `layers` × Bidirectional(zoo GRU or LSTM), masked past each clip's end
      → Dense over ALPHABET + blank → `BlankPadding`: every frame past a clip's
        end is a certain blank (log-probability 0)

Output: character logits [batch, frames, 29]; index i < 28 is `ALPHABET[i]`
(space, apostrophe, a-z), index 28 (`BLANK`, the last) is the CTC blank.
Because padded frames are certain blanks, the CTC loss over the whole padded
length equals the loss over each clip's own frames, and so does every decoder.

Training loss: `CTCLoss` (`tf.nn.ctc_loss`, batch-major logits, blank last),
one value per utterance, averaged over the batch.

Decoding happens in the graph too: greedy best-path decoding (`greedy_decode`)
and CTC prefix beam search (`beam_decode`, `tf.nn.ctc_beam_search_decoder`),
character ids → text (repeated spaces collapsed, ends trimmed).

The serving SavedModel (`write_serving`, `Transcriber`) also resamples: any
rate from 4 kHz to 96 kHz goes to the model's 16 kHz in the graph
(`resample_waveforms`: band-limited resampling by FFT), and `transcribe_bytes`
decodes 16-bit PCM WAV files in the graph. Work per call is bounded
(`MAX_BATCH` clips of at most `MAX_SECONDS` seconds); an empty batch gives an
empty result.

Evaluation: character and word error rates (`error_rates`, with our own edit
distance) on the synthetic held-out test split and on the real Asterisk
prompts (all, and without the prompts whose transcript carries a caveat), and
accuracy on the isolated Asterisk digits and letters. Baselines: PocketSphinx
(`pocketsphinx_transcribe`, optional) and 1-NN DTW over MFCCs (`mfcc`,
`DTWClassifier`) for the isolated words.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time

from zoo._backend import import_tensorflow_quietly

tf = import_tensorflow_quietly()  # after zoo._backend has chosen the Keras backend

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo.data.speech import ALPHABET  # noqa: E402

TASK = "speech"
IO_TYPE = "many-to-many (unsynchronised: audio samples in, characters out; CTC)"

#: The model's sample rate; the serving signatures resample other rates to it.
SAMPLE_RATE = 16000
#: Analysis frames: 25 ms Hann windows every 10 ms, a 512-point FFT.
FRAME_LENGTH = 400
FRAME_STEP = 160
FFT_LENGTH = 512
#: The mel filter bank's band (Hz) by default: 60 Hz to 4 kHz, the band of 8 kHz (telephone) audio.
MIN_FREQUENCY = 60.0
MAX_FREQUENCY = 4000.0
#: Added to the mel energies before the log (the waveforms are in [-1, 1]).
LOG_FLOOR = 1e-6
#: The CTC classes: ALPHABET then the blank, which is last (what `tf.nn.ctc_beam_search_decoder` assumes).
BLANK = len(ALPHABET)
CLASSES = len(ALPHABET) + 1
#: The logit of every non-blank class at frames past a clip's end (the blank's is 0).
PADDING_LOGIT = -1e4

#: Bounds of one call of a serving signature.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 96000
MAX_SECONDS = 30
MAX_BATCH = 64
#: Beam widths: the serving default, and the largest a caller may ask for (1 = greedy best path).
DEFAULT_BEAM_WIDTH = 8
MAX_BEAM_WIDTH = 16
#: Zeros appended before resampling by FFT, so that a clip's end does not wrap onto its start.
RESAMPLE_MARGIN = 2048
#: Clips per call when the Python helpers and the command line transcribe many.
BATCH_SIZE = 16


# ---------------------------------------------------------------------------
# Lengths


def frame_counts(sample_lengths):
    """Analysis frames of clips of `sample_lengths` samples: ceil(length / FRAME_STEP) (the last
    frames read zeros past the end, as `tf.signal.stft(pad_end=True)` does)."""
    if isinstance(sample_lengths, (tf.Tensor, tf.Variable)):
        return (sample_lengths + FRAME_STEP - 1) // FRAME_STEP
    return (np.asarray(sample_lengths, np.int64) + FRAME_STEP - 1) // FRAME_STEP


def halved(lengths):
    """Frames after one stride-2 `ConvSubsample`: ceil(frames / 2)."""
    return (lengths + 1) // 2


def output_frame_counts(sample_lengths, subsampling_layers=2):
    """Output frames (characters' time steps) of clips of `sample_lengths` samples."""
    frames = frame_counts(sample_lengths)
    for _ in range(subsampling_layers):
        frames = halved(frames)
    return frames


def required_frames(ids):
    """The fewest CTC frames that can emit the label sequence `ids`: one per label, plus a blank
    between each pair of equal neighbours."""
    ids = list(ids)
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


def encode_text(text):
    """Character ids (indices into ALPHABET) of a normalised transcript.

    Raises:
        ValueError: a character outside ALPHABET (normalise with
            `zoo.data.speech.normalize_transcript` first).
    """
    index = {c: i for i, c in enumerate(ALPHABET)}
    try:
        return [index[c] for c in text]
    except KeyError as error:
        raise ValueError(f"transcript {text[:60]!r} holds {error.args[0]!r}, which is not in the "
                         f"alphabet {ALPHABET!r}; normalise it first "
                         f"(zoo.data.speech.normalize_transcript)") from None


# ---------------------------------------------------------------------------
# Layers


def _valid(lengths, size):
    return tf.sequence_mask(lengths, size)


_MEL_WEIGHTS = {}


def mel_weights(bins, sample_rate, low, high, fft_length=FFT_LENGTH):
    """`tf.signal.linear_to_mel_weight_matrix` as a NumPy array (computed once per setting)."""
    key = (int(bins), int(sample_rate), float(low), float(high), int(fft_length))
    if key not in _MEL_WEIGHTS:
        with tf.init_scope():  # eagerly, also while a graph is being traced
            _MEL_WEIGHTS[key] = tf.signal.linear_to_mel_weight_matrix(
                key[0], key[4] // 2 + 1, key[1], key[2], key[3]).numpy()
    return _MEL_WEIGHTS[key]


@keras.saving.register_keras_serializable(package="zoo")
class LogMel(keras.layers.Layer):
    """Waveforms [batch, samples] and their lengths [batch] → normalised log-mel features
    [batch, frames, mel_bins] and the frame counts [batch].

    Samples past a clip's length are ignored (treated as zeros); frames past a
    clip's end are zeros. Each bin of a clip is shifted and scaled to mean 0
    and variance 1 over the clip's own frames.

    `cepstra` > 0 gives mel-frequency cepstral coefficients instead: the
    first `cepstra` coefficients of the DCT-II (orthonormal) of each frame's
    log-mel energies, which keep the spectral envelope (the vocal tract) and
    drop the fine structure (the voice's pitch harmonics, the synthesiser's
    own texture); then the same per-clip normalisation.

    `warp` > 0 adds vocal-tract-length perturbation while training (Jaitly &
    Hinton 2013): each clip's power spectrum is read at frequencies scaled by
    a factor drawn uniformly from [1 - warp, 1 + warp] (linear interpolation
    between FFT bins), as if a longer or shorter vocal tract had spoken it.
    Inference never warps.
    """

    def __init__(self, sample_rate=SAMPLE_RATE, frame_length=FRAME_LENGTH, frame_step=FRAME_STEP,
                 fft_length=FFT_LENGTH, mel_bins=40, min_frequency=MIN_FREQUENCY,
                 max_frequency=MAX_FREQUENCY, warp=0.0, cepstra=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= int(cepstra) <= int(mel_bins):
            raise ValueError(f"cepstra must be from 0 (log-mel features) to mel_bins ({mel_bins}), "
                             f"received {cepstra!r}")
        self.cepstra = int(cepstra)
        if not 0.0 <= float(warp) < 0.5:
            raise ValueError(f"warp must be in [0, 0.5), received {warp!r}")
        self.warp, self.seed = float(warp), seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.warp else None
        if not 0 < min_frequency < max_frequency <= sample_rate / 2:
            raise ValueError(f"the mel band must satisfy 0 < min_frequency < max_frequency <= sample_rate/2, "
                             f"received {min_frequency!r}, {max_frequency!r} at {sample_rate!r} Hz")
        if int(mel_bins) < 1:
            raise ValueError(f"mel_bins must be >= 1, received {mel_bins!r}")
        self.sample_rate, self.frame_length, self.frame_step = int(sample_rate), int(frame_length), int(frame_step)
        self.fft_length, self.mel_bins = int(fft_length), int(mel_bins)
        self.min_frequency, self.max_frequency = float(min_frequency), float(max_frequency)

    def mel_matrix(self):
        """The triangular filters [fft_length // 2 + 1, mel_bins] (`tf.signal.linear_to_mel_weight_matrix`)."""
        return tf.constant(mel_weights(self.mel_bins, self.sample_rate, self.min_frequency, self.max_frequency,
                                       self.fft_length), tf.float32)

    def _warped(self, power):
        """`power` [batch, frames, bins] read at bin × factor, one random factor per clip."""
        batch, bins = tf.shape(power)[0], tf.shape(power)[2]
        factor = keras.random.uniform((batch, 1), 1.0 - self.warp, 1.0 + self.warp, seed=self.seed_generator)
        position = tf.minimum(tf.range(tf.cast(bins, tf.float32))[None, :] * factor, tf.cast(bins - 1, tf.float32))
        below = tf.cast(tf.floor(position), tf.int32)
        above = tf.minimum(below + 1, bins - 1)
        weight = (position - tf.floor(position))[:, None, :]
        return (tf.gather(power, below, axis=2, batch_dims=1) * (1.0 - weight)
                + tf.gather(power, above, axis=2, batch_dims=1) * weight)

    def call(self, waveforms, lengths, training=False):
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        lengths = tf.cast(lengths, tf.int32)
        samples = tf.maximum(tf.shape(waveforms)[1], 1)  # at least one frame, even for empty clips
        waveforms = tf.pad(waveforms, [[0, 0], [0, samples - tf.shape(waveforms)[1]]])
        waveforms = waveforms * tf.cast(_valid(lengths, samples), tf.float32)
        spectra = tf.signal.stft(waveforms, self.frame_length, self.frame_step, self.fft_length,
                                 window_fn=tf.signal.hann_window, pad_end=True)
        power = tf.math.real(spectra * tf.math.conj(spectra))
        if training and self.warp:
            power = self._warped(power)
        log_mel = tf.math.log(tf.tensordot(power, self.mel_matrix(), 1) + LOG_FLOOR)
        if self.cepstra:
            log_mel = tf.signal.dct(log_mel, type=2, norm="ortho")[..., :self.cepstra]
        frames = frame_counts(lengths)
        valid = tf.cast(_valid(frames, tf.shape(log_mel)[1]), tf.float32)[:, :, None]
        count = tf.maximum(tf.reduce_sum(valid, axis=1, keepdims=True), 1.0)
        mean = tf.reduce_sum(log_mel * valid, axis=1, keepdims=True) / count
        variance = tf.reduce_sum(tf.square(log_mel - mean) * valid, axis=1, keepdims=True) / count
        return (log_mel - mean) * tf.math.rsqrt(variance + 1e-5) * valid, frames

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "frame_length": self.frame_length,
                "frame_step": self.frame_step, "fft_length": self.fft_length, "mel_bins": self.mel_bins,
                "min_frequency": self.min_frequency, "max_frequency": self.max_frequency, "warp": self.warp,
                "cepstra": self.cepstra, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class WaveformAugment(keras.layers.Layer):
    """Training only: (waveforms, lengths) → (waveforms, lengths), augmented.

    Each clip first gets a random stretch of silence, up to `lead_samples`
    long (uniform), before it (the synthesiser starts speaking at the first
    sample, recorded speech rarely does); its length grows by as much. Then
    its gain changes by a random ±`gain_db` dB, and with probability
    `noise_probability` white noise is added over the whole clip, silence
    included, at a signal-to-noise ratio drawn uniformly from `snr_db` (dB,
    against the clip's RMS). Samples past a clip's length stay zero.
    Inference returns its inputs unchanged."""

    def __init__(self, gain_db=6.0, noise_probability=0.5, snr_db=(10.0, 40.0), lead_samples=0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        if gain_db < 0 or not 0 <= noise_probability <= 1 or len(snr_db) != 2 or snr_db[0] > snr_db[1]:
            raise ValueError(f"WaveformAugment needs gain_db >= 0, noise_probability in [0, 1] and "
                             f"snr_db = (low, high), received {gain_db!r}, {noise_probability!r}, {snr_db!r}")
        if int(lead_samples) < 0:
            raise ValueError(f"lead_samples must be >= 0, received {lead_samples!r}")
        self.gain_db, self.noise_probability = float(gain_db), float(noise_probability)
        self.snr_db, self.seed = (float(snr_db[0]), float(snr_db[1])), seed
        self.lead_samples = int(lead_samples)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _delayed(self, waveforms, lengths):
        """Each clip moved later by a random 0..lead_samples samples (zeros before it)."""
        batch, samples = tf.shape(waveforms)[0], tf.shape(waveforms)[1]
        lead = tf.cast(tf.floor(keras.random.uniform((batch,), seed=self.seed_generator)
                                * (self.lead_samples + 1.0)), tf.int32)
        source = tf.range(samples + self.lead_samples)[None, :] - lead[:, None]
        inside = tf.logical_and(source >= 0, source < lengths[:, None])
        moved = tf.gather(waveforms, tf.clip_by_value(source, 0, tf.maximum(samples - 1, 0)), axis=1, batch_dims=1)
        return tf.where(inside, moved, 0.0), lengths + lead

    def call(self, waveforms, lengths, training=False):
        lengths = tf.cast(lengths, tf.int32)
        if not training:
            return waveforms, lengths
        if self.lead_samples:
            waveforms, lengths = self._delayed(waveforms, lengths)
        batch = tf.shape(waveforms)[0]
        valid = tf.cast(_valid(lengths, tf.shape(waveforms)[1]), tf.float32)
        count = tf.maximum(tf.reduce_sum(valid, axis=1, keepdims=True), 1.0)
        rms = tf.sqrt(tf.reduce_sum(tf.square(waveforms) * valid, axis=1, keepdims=True) / count)
        snr = keras.random.uniform((batch, 1), self.snr_db[0], self.snr_db[1], seed=self.seed_generator)
        noisy = tf.cast(keras.random.uniform((batch, 1), seed=self.seed_generator) < self.noise_probability,
                        tf.float32)
        noise = keras.random.normal(tf.shape(waveforms), seed=self.seed_generator)
        noise = noise * noisy * rms * tf.pow(10.0, -snr / 20.0)
        gain = tf.pow(10.0, keras.random.uniform((batch, 1), -self.gain_db, self.gain_db,
                                                 seed=self.seed_generator) / 20.0)
        return tf.clip_by_value((waveforms + noise) * gain, -1.0, 1.0) * valid, lengths

    def get_config(self):
        return {**super().get_config(), "gain_db": self.gain_db, "noise_probability": self.noise_probability,
                "snr_db": list(self.snr_db), "lead_samples": self.lead_samples, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class SpecAugment(keras.layers.Layer):
    """Training only: `frequency_masks` bands of up to `frequency_width` mel bins and `time_masks`
    spans of up to `time_fraction` of each clip's frames are set to zero (the features' mean), at
    random places (Park et al. 2019, without time warping)."""

    def __init__(self, frequency_masks=2, frequency_width=6, time_masks=2, time_fraction=0.08, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        if min(frequency_masks, frequency_width, time_masks) < 0 or not 0 <= time_fraction < 1:
            raise ValueError("SpecAugment needs non-negative mask counts and widths and time_fraction in [0, 1)")
        self.frequency_masks, self.frequency_width = int(frequency_masks), int(frequency_width)
        self.time_masks, self.time_fraction, self.seed = int(time_masks), float(time_fraction), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _spans(self, count, widest, extent, size):
        """A [batch, size] float mask, 1 inside `count` random spans (each < `widest` + 1 long) of
        the first `extent` [batch] positions."""
        batch = tf.shape(extent)[0]
        positions = tf.range(size, dtype=tf.float32)[None, :]
        keep = tf.ones([batch, size], tf.float32)
        extent = tf.cast(extent, tf.float32)[:, None]
        for _ in range(count):
            width = tf.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * (widest + 1.0))
            width = tf.minimum(width, extent)
            start = tf.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * (extent - width + 1.0))
            inside = tf.logical_and(positions >= start, positions < start + width)
            keep = keep * (1.0 - tf.cast(inside, tf.float32))
        return keep

    def call(self, features, frame_lengths, training=False):
        if not training:
            return features
        shape = tf.shape(features)
        batch, frames, bins = shape[0], shape[1], shape[2]
        if self.frequency_masks and self.frequency_width:
            keep = self._spans(self.frequency_masks, float(self.frequency_width), tf.fill([batch], bins), bins)
            features = features * keep[:, None, :]
        if self.time_masks and self.time_fraction > 0:
            widest = tf.floor(tf.cast(frame_lengths, tf.float32) * self.time_fraction)[:, None]
            keep = self._spans(self.time_masks, widest, frame_lengths, frames)
            features = features * keep[:, :, None]
        return features

    def get_config(self):
        return {**super().get_config(), "frequency_masks": self.frequency_masks,
                "frequency_width": self.frequency_width, "time_masks": self.time_masks,
                "time_fraction": self.time_fraction, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class ConvSubsample(keras.layers.Layer):
    """Features [batch, frames, channels] and frame counts → a Conv1D with stride 2 and ReLU
    ([batch, ceil(frames / 2), filters]) and the new counts ceil(count / 2).

    The input is padded by kernel_size // 2 zeros on each side, so output frame
    j always reads input frames 2j - k//2 .. 2j + k//2, whatever the padded
    length of the batch; outputs past a clip's end are zeros.
    """

    def __init__(self, filters, kernel_size=5, **kwargs):
        super().__init__(**kwargs)
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, received {kernel_size!r}")
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.conv = keras.layers.Conv1D(self.filters, self.kernel_size, strides=2, padding="valid",
                                        activation="relu", name="conv")

    def build(self, features_shape, frame_lengths_shape=None):
        self.conv.build((None, None, features_shape[-1]))
        self.built = True

    def call(self, features, frame_lengths):
        pad = self.kernel_size // 2
        out = self.conv(tf.pad(features, [[0, 0], [pad, pad], [0, 0]]))
        lengths = halved(frame_lengths)
        return out * tf.cast(_valid(lengths, tf.shape(out)[1]), out.dtype)[:, :, None], lengths

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="zoo")
class ValidFrames(keras.layers.Layer):
    """The padding mask of frames [batch, frames, ...] with counts [batch]: True before each clip's end."""

    def call(self, frames, frame_lengths):
        return _valid(frame_lengths, tf.shape(frames)[1])


@keras.saving.register_keras_serializable(package="zoo")
class BlankPadding(keras.layers.Layer):
    """Logits [batch, frames, classes] with every frame past a clip's end made a certain blank:
    the blank's logit 0, every other PADDING_LOGIT (so its log-probability is 0, and a CTC loss or
    decoder run over the padded length gives what it gives over the clip's own frames). It takes
    the recurrent layers' padding mask and passes none on: the padding is in the values now."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, logits, frame_lengths):
        logits = tf.cast(logits, tf.float32)
        classes = tf.shape(logits)[2]
        padding = tf.where(tf.range(classes) == classes - 1, 0.0, PADDING_LOGIT)
        valid = _valid(frame_lengths, tf.shape(logits)[1])[:, :, None]
        return tf.where(valid, logits, tf.broadcast_to(padding, tf.shape(logits)))


# ---------------------------------------------------------------------------
# The model and its loss


#: Training augmentation of `build_model(augment=True)` (see `WaveformAugment`, `LogMel`, `SpecAugment`).
AUGMENTATION = dict(gain_db=6.0, noise_probability=0.5, snr_db=(10.0, 40.0), lead_seconds=0.3, warp=0.1,
                    frequency_masks=2, frequency_width=6, time_masks=2, time_fraction=0.08)


def build_model(mel_bins=40, max_frequency=MAX_FREQUENCY, conv_filters=128, conv_kernel=5, subsampling=4,
                cell="gru", units=160, layers=3, dropout=0.2, augment=True, cepstra=0, seed=None):
    """The recogniser (see the module notes): {"waveforms", "lengths"} → character logits.

    Args:
        mel_bins: mel filters of the features (40-80 make sense).
        max_frequency: upper edge of the mel filter bank in Hz (at most 8000).
        conv_filters, conv_kernel: each subsampling convolution's channels and width.
        subsampling: 2 or 4: time reduction (one or two stride-2 convolutions).
        cell: "gru" or "lstm" (zoo layers), `layers` bidirectional layers of `units` per direction.
        dropout: after the convolutions and after every recurrent layer.
        augment: waveform gain/noise and SpecAugment masks while training.
        cepstra: 0 for log-mel features, else this many cepstral coefficients (`LogMel`).
        seed: seeds the augmentation and dropout.
    """
    from zoo import layers as zoo_layers

    if subsampling not in (2, 4):
        raise ValueError(f"subsampling must be 2 or 4, received {subsampling!r}")
    if cell not in ("gru", "lstm"):
        raise ValueError(f"cell must be 'gru' or 'lstm', received {cell!r}")
    waveforms = keras.Input(shape=(None,), dtype="float32", name="waveforms")
    lengths = keras.Input(shape=(), dtype="int32", name="lengths")
    audio, audio_lengths = waveforms, lengths
    a = AUGMENTATION
    if augment:
        audio, audio_lengths = WaveformAugment(
            a["gain_db"], a["noise_probability"], a["snr_db"], round(a["lead_seconds"] * SAMPLE_RATE), seed=seed,
            name="waveform_augment")(audio, lengths)
    x, frames = LogMel(mel_bins=mel_bins, max_frequency=max_frequency, warp=a["warp"] if augment else 0.0,
                       cepstra=cepstra, seed=None if seed is None else seed + 3 + layers, name="log_mel")(audio, audio_lengths)
    if augment:
        x = SpecAugment(a["frequency_masks"], a["frequency_width"], a["time_masks"], a["time_fraction"],
                        seed=None if seed is None else seed + 1, name="spec_augment")(x, frames)
    for i in range(1 if subsampling == 2 else 2):
        x, frames = ConvSubsample(conv_filters, conv_kernel, name=f"subsample_{i + 1}")(x, frames)
    x = keras.layers.Dropout(dropout, seed=seed, name="conv_dropout")(x)
    present = ValidFrames(name="valid_frames")(x, frames)
    for i in range(layers):
        x = keras.layers.Bidirectional(
            zoo_layers.sequence_layer_class(cell)(units, return_sequences=True),
            name=f"bi{cell}_{i + 1}")(x, mask=present)
        x = keras.layers.Dropout(dropout, seed=None if seed is None else seed + 2 + i, name=f"dropout_{i + 1}")(x)
    logits = keras.layers.Dense(CLASSES, name="characters")(x)
    logits = BlankPadding(name="blank_padding")(logits, frames)
    return keras.Model({"waveforms": waveforms, "lengths": lengths}, logits, name=f"speech_bi{cell}_ctc")


def subsampling_layers(model):
    """How many stride-2 `ConvSubsample` layers `model` has (its time reduction is 2 ** that)."""
    return sum(isinstance(layer, ConvSubsample) for layer in model.layers)


def ctc_loss(labels, logits):
    """Per-utterance CTC loss: labels int [batch, label_time] (-1 pads), logits [batch, frames, CLASSES]
    (blank last; frames past a clip's end as `BlankPadding` makes them).

    An utterance that no alignment can emit (fewer real frames than `required_frames` of its
    labels) gets loss 0 and no gradient, rather than the huge value `tf.nn.ctc_loss` gives it
    (`make_dataset` leaves such clips out anyway)."""
    labels = tf.cast(labels, tf.int32)
    present = labels >= 0
    label_length = tf.reduce_sum(tf.cast(present, tf.int32), axis=1)
    repeats = tf.reduce_sum(tf.cast(tf.equal(labels[:, 1:], labels[:, :-1]) & present[:, 1:], tf.int32), axis=1)
    logits = tf.cast(logits, tf.float32)
    frames = tf.reduce_sum(tf.cast(logits[:, :, 0] > PADDING_LOGIT / 2, tf.int32), axis=1)  # not padding
    logit_length = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
    loss = tf.nn.ctc_loss(tf.maximum(labels, 0), logits, label_length, logit_length,
                          logits_time_major=False, blank_index=BLANK)
    usable = tf.logical_and(label_length + repeats <= frames, tf.math.is_finite(loss))
    return tf.where(usable, loss, tf.zeros_like(loss))


@keras.saving.register_keras_serializable(package="zoo")
class CTCLoss(keras.losses.Loss):
    """`ctc_loss` as a Keras loss: y_true are character ids padded with -1, y_pred the model's logits."""

    def __init__(self, reduction="sum_over_batch_size", name="ctc_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return ctc_loss(y_true, y_pred)


def cosine_schedule(peak, steps_per_epoch, epochs, warmup_epochs=1.0):
    """Learning rate by optimizer step: linear warm-up from 0 to `peak` over `warmup_epochs`, then a
    cosine decay to 0 at the end of `epochs` (it follows the optimizer's step count, so a resumed run
    continues where it stopped)."""
    total = max(int(steps_per_epoch * epochs), 1)
    warmup = min(int(round(steps_per_epoch * warmup_epochs)), total - 1)
    return keras.optimizers.schedules.CosineDecay(0.0 if warmup else peak, total - warmup, alpha=0.0,
                                                  warmup_target=peak if warmup else None, warmup_steps=warmup)


def compile_model(model, learning_rate=1e-3, clipnorm=5.0):
    """Adam with global-norm clipping, CTC loss. `learning_rate`: a number or a schedule."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm), loss=CTCLoss())
    return model


def register_custom_objects():
    importlib.import_module("zoo.layers")  # registers the zoo recurrent layers

    return LogMel, WaveformAugment, SpecAugment, ConvSubsample, ValidFrames, BlankPadding, CTCLoss


def describe_architecture(model, mel_bins, max_frequency, conv_filters, conv_kernel, cell, units, layers,
                          dropout, augment):
    convolutions = subsampling_layers(model)
    text = (f"waveform (16 kHz) → log-mel ({FRAME_LENGTH / 16:.0f} ms Hann windows every "
            f"{FRAME_STEP / 16:.0f} ms, {FFT_LENGTH}-point FFT, {mel_bins} mel bins {MIN_FREQUENCY:.0f}-"
            f"{max_frequency:.0f} Hz"
            + (f", the first {model.get_layer('log_mel').cepstra} cepstral coefficients (DCT-II)"
               if model.get_layer("log_mel").cepstra else "")
            + ", per-utterance mean/variance normalisation) → "
            f"{convolutions} × Conv1D({conv_filters}, width {conv_kernel}, stride 2, ReLU) "
            f"(time ×{2 ** convolutions}: {10 * 2 ** convolutions} ms per output frame) → Dropout({dropout}) → "
            f"{layers} × Bidirectional(zoo {cell.upper()}({units}), masked) with Dropout({dropout}) → "
            f"Dense({CLASSES}: {len(ALPHABET)} characters + blank, blank last) → CTC")
    if augment:
        a = AUGMENTATION
        text += (f"; training only: up to {a['lead_seconds']} s of silence before each clip, gain "
                 f"±{a['gain_db']:g} dB, white noise at {a['snr_db'][0]:g}-{a['snr_db'][1]:g} dB SNR on "
                 f"{a['noise_probability']:.0%} of the clips, vocal-tract-length perturbation (frequency × "
                 f"{1 - a['warp']:g}-{1 + a['warp']:g}), {a['frequency_masks']} frequency masks of ≤ "
                 f"{a['frequency_width']} bins and {a['time_masks']} time masks of ≤ {a['time_fraction']:.0%} of "
                 f"the frames")
    return text


# ---------------------------------------------------------------------------
# Decoding (graph)


def _character_table():
    return tf.constant(list(ALPHABET) + [""])


def ids_to_texts(ids):
    """Character ids [batch, length] (-1 or BLANK pads) → texts [batch]: runs of spaces collapsed,
    leading and trailing spaces dropped."""
    ids = tf.where(tf.logical_and(ids >= 0, ids < BLANK), ids, BLANK)
    texts = tf.strings.reduce_join(tf.gather(_character_table(), ids), axis=-1)
    return tf.strings.strip(tf.strings.regex_replace(texts, " +", " "))


def greedy_decode(log_probs, frame_lengths):
    """Best-path CTC decoding: the most likely class of every frame, repeats merged, blanks dropped.

    Returns `(ids [batch, frames] with -1 where nothing is emitted, scores [batch])`; a score is
    the log-probability of the best path (the sum of each frame's largest log-probability).
    """
    best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    valid = _valid(frame_lengths, tf.shape(best)[1])
    previous = tf.concat([tf.fill([tf.shape(best)[0], 1], -1), best[:, :-1]], axis=1)
    keep = valid & tf.not_equal(best, BLANK) & tf.not_equal(best, previous)
    scores = tf.reduce_sum(tf.where(valid, tf.reduce_max(log_probs, axis=-1), 0.0), axis=1)
    return tf.where(keep, best, -1), scores


def beam_decode(log_probs, frame_lengths, beam_width):
    """CTC prefix beam search (`tf.nn.ctc_beam_search_decoder`, blank last) of width `beam_width`
    (a Python int). Returns `(ids [batch, length] with -1 pads, scores [batch])`; a score is the
    beam's log-probability of the text."""
    decoded, log_probability = tf.nn.ctc_beam_search_decoder(
        tf.transpose(log_probs, [1, 0, 2]), tf.cast(frame_lengths, tf.int32), beam_width=int(beam_width),
        top_paths=1)
    ids = tf.sparse.to_dense(decoded[0], default_value=-1)
    return tf.cast(ids, tf.int32), log_probability[:, 0]


def decode(log_probs, frame_lengths, beam_width):
    """Texts and scores: greedy when `beam_width` is 1, else prefix beam search. `beam_width` may
    be a Python int or an int32 scalar tensor in 1..MAX_BEAM_WIDTH (one branch per width: the
    decoder op takes its width as an attribute)."""

    def ids_and_scores(width):
        if width == 1:
            return greedy_decode(log_probs, frame_lengths)
        return beam_decode(log_probs, frame_lengths, width)

    if isinstance(beam_width, (int, np.integer)):
        ids, scores = ids_and_scores(int(beam_width))
    else:
        ids, scores = tf.switch_case(beam_width - 1, [lambda w=w: ids_and_scores(w)
                                                      for w in range(1, MAX_BEAM_WIDTH + 1)])
    return ids_to_texts(ids), scores


# ---------------------------------------------------------------------------
# Resampling (graph)


def _gcd(a, b):
    a, b = tf.cast(a, tf.int64), tf.cast(b, tf.int64)
    _, divisor = tf.while_loop(lambda x, y: tf.not_equal(x, 0), lambda x, y: (tf.math.floormod(y, x), x),
                               (tf.math.floormod(a, b), b))
    return divisor


def resample_waveforms(waveforms, lengths, sample_rate, target_rate=SAMPLE_RATE):
    """Waveforms [batch, samples] at `sample_rate` (an int32 scalar) → `target_rate`, in the graph.

    Band-limited resampling by FFT, clip by clip: each padded clip (plus
    RESAMPLE_MARGIN zeros, padded to a multiple of rate / gcd) is transformed,
    its spectrum cut (or zero-padded) at the lower Nyquist frequency (that
    bin dropped) and transformed back at the new length. A clip of n samples
    gives ceil(n · target / rate) samples, as `scipy.signal.resample_poly`
    (and `zoo.data.speech.resample`) give; values are clipped to [-1, 1].

    Returns `(waveforms [batch, new samples], lengths [batch] int32)`.
    """
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    rate = tf.cast(sample_rate, tf.int64)
    target = tf.constant(int(target_rate), tf.int64)
    divisor = _gcd(rate, target)
    up, down = target // divisor, rate // divisor
    samples = tf.cast(tf.shape(waveforms)[1], tf.int64)
    out_samples = (samples * up + down - 1) // down
    padded = (samples + RESAMPLE_MARGIN + down - 1) // down * down
    out_padded = padded // down * up
    keep = tf.minimum(padded, out_padded) // 2  # bins 0 .. keep - 1 (the lower Nyquist bin is dropped)
    scale = tf.cast(out_padded, tf.float32) / tf.cast(padded, tf.float32)

    def one(clip):
        clip = tf.pad(clip, [[0, padded - samples]])
        spectrum = tf.signal.rfft(clip, fft_length=tf.cast(padded, tf.int32)[None])[:keep]
        spectrum = tf.pad(spectrum, [[0, out_padded // 2 + 1 - keep]])
        out = tf.signal.irfft(spectrum, fft_length=tf.cast(out_padded, tf.int32)[None]) * scale
        return out[:out_samples]

    out = tf.map_fn(one, waveforms, fn_output_signature=tf.TensorSpec([None], tf.float32), parallel_iterations=4)
    out = tf.reshape(out, [tf.shape(waveforms)[0], tf.cast(out_samples, tf.int32)])
    new_lengths = tf.cast((tf.cast(lengths, tf.int64) * up + down - 1) // down, tf.int32)
    out = out * tf.cast(_valid(new_lengths, tf.shape(out)[1]), tf.float32)
    return tf.clip_by_value(out, -1.0, 1.0), new_lengths


def to_model_rate(waveforms, lengths, sample_rate):
    """`resample_waveforms` to SAMPLE_RATE, skipped when the audio is at that rate already."""
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    return tf.cond(tf.equal(sample_rate, SAMPLE_RATE), lambda: (waveforms, lengths),
                   lambda: resample_waveforms(waveforms, lengths, sample_rate))


# ---------------------------------------------------------------------------
# WAV files (graph)


def _little_endian(data, start, length):
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8), tf.int64)
    return tf.reduce_sum(raw * tf.constant([256 ** i for i in range(length)], tf.int64))


def decode_wav_bytes(data):
    """One WAV file (a string scalar) → its mono waveform float32 [samples] and sample rate int32.

    Reads 16-bit PCM (what `tf.audio.decode_wav` reads); several channels are
    averaged. Anything else fails with an InvalidArgumentError that says what
    was wrong (not RIFF/WAVE, another encoding or sample size).
    """
    size = tf.strings.length(data)
    header = tf.strings.substr(tf.strings.join([data, tf.constant(b"\x00" * 44)]), 0, 44)  # short files too
    is_wav = tf.logical_and(size >= 44, tf.logical_and(tf.equal(tf.strings.substr(header, 0, 4), "RIFF"),
                                                       tf.equal(tf.strings.substr(header, 8, 4), "WAVE")))
    with tf.control_dependencies([tf.debugging.assert_equal(
            is_wav, True, message="transcribe_bytes: an input is not a WAV file (no RIFF/WAVE header of "
                                  "44 bytes or more)")]):
        data = tf.identity(data)
    fmt_first = tf.equal(tf.strings.substr(header, 12, 4), "fmt ")
    encoding = _little_endian(header, 20, 2)
    bits = _little_endian(header, 34, 2)
    pcm16 = tf.logical_or(tf.logical_not(fmt_first), tf.logical_and(tf.equal(encoding, 1), tf.equal(bits, 16)))
    with tf.control_dependencies([tf.debugging.assert_equal(
            pcm16, True, message="transcribe_bytes reads 16-bit PCM WAV files only; this one has another "
                                 "encoding or sample size (convert it first, e.g. `sox in.wav -b 16 -e "
                                 "signed-integer out.wav`, or decode it yourself and call serving_default)")]):
        data = tf.identity(data)
    audio, rate = tf.audio.decode_wav(data)
    return tf.reduce_mean(audio, axis=1), tf.cast(rate, tf.int32)


# ---------------------------------------------------------------------------
# Serving


def _bounds(waveforms, lengths, sample_rate):
    """In-graph checks of a serving call's inputs (InvalidArgumentErrors naming the bound broken)."""
    shape = tf.shape(waveforms)
    longest = tf.cast(MAX_SECONDS, tf.int64) * tf.cast(sample_rate, tf.int64)
    return [
        tf.debugging.assert_equal(tf.shape(lengths)[0], shape[0],
                                  message="lengths must hold one entry per waveform (row of waveforms)"),
        tf.debugging.assert_less_equal(shape[0], MAX_BATCH, message=f"at most {MAX_BATCH} clips per call"),
        tf.debugging.assert_greater_equal(
            sample_rate, MIN_SAMPLE_RATE,
            message=f"sample_rate must be from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"),
        tf.debugging.assert_less_equal(
            sample_rate, MAX_SAMPLE_RATE,
            message=f"sample_rate must be from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"),
        tf.debugging.assert_less_equal(
            tf.cast(shape[1], tf.int64), longest,
            message=f"clips of at most {MAX_SECONDS} s: the waveforms hold more samples than "
                    f"{MAX_SECONDS} s at sample_rate (split longer audio first)"),
        tf.debugging.assert_non_negative(lengths, message="lengths must be >= 0"),
        tf.debugging.assert_less_equal(lengths, shape[1],
                                       message="a length is larger than the waveforms' number of samples"),
        tf.debugging.assert_all_finite(waveforms, message="waveforms must be finite (no NaN or infinity)"),
    ]


class Transcriber(tf.Module):
    """Transcribe audio with a model of `build_model`, entirely in TensorFlow (the serving graph).

    `decode_batch` is the unbounded core that evaluation uses; the serving
    functions (`serve`, `transcribe`, `transcribe_bytes`) check their inputs'
    bounds first and answer an empty batch with an empty result.
    """

    def __init__(self, model, beam_width=DEFAULT_BEAM_WIDTH):
        super().__init__(name="transcriber")
        from zoo.tasks.word_decoding import hold_model

        hold_model(self, model)  # every weight saved once, restorable by TF1 session loaders too
        if not 1 <= int(beam_width) <= MAX_BEAM_WIDTH:
            raise ValueError(f"beam_width must be in 1..{MAX_BEAM_WIDTH}, received {beam_width!r}")
        self.beam_width = int(beam_width)
        self.subsampling_layers = subsampling_layers(model)

    def log_probabilities(self, waveforms, lengths, sample_rate):
        """Per-frame log-probabilities [batch, frames, CLASSES] and frame counts [batch]."""
        waveforms, lengths = to_model_rate(waveforms, lengths, sample_rate)
        logits = self.model({"waveforms": waveforms, "lengths": lengths}, training=False)
        return tf.nn.log_softmax(tf.cast(logits, tf.float32)), output_frame_counts(lengths, self.subsampling_layers)

    def decode_batch(self, waveforms, lengths, sample_rate, beam_widths):
        """{"texts_<w>", "scores_<w>"} for every width of `beam_widths` (Python ints), no bounds checked."""
        log_probs, frames = self.log_probabilities(waveforms, lengths, sample_rate)
        out = {}
        for width in beam_widths:
            out[f"texts_{width}"], out[f"scores_{width}"] = decode(log_probs, frames, width)
        return out

    def _guarded(self, waveforms, lengths, sample_rate, body, empty):
        """`body(waveforms, lengths, sample_rate)` once every bound holds; `empty()` for no clips."""
        with tf.control_dependencies(_bounds(waveforms, lengths, sample_rate)):
            checked = [tf.identity(waveforms), tf.identity(lengths), tf.identity(sample_rate)]
        return tf.cond(tf.shape(checked[0])[0] > 0, lambda: body(*checked), empty)

    def _serve(self, waveforms, lengths, sample_rate):
        def body(waveforms, lengths, sample_rate):
            log_probs, frames = self.log_probabilities(waveforms, lengths, sample_rate)
            texts, scores = decode(log_probs, frames, self.beam_width)
            return {"texts": texts, "scores": scores}

        return self._guarded(waveforms, lengths, sample_rate, body,
                             lambda: {"texts": tf.zeros([0], tf.string), "scores": tf.zeros([0], tf.float32)})

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveforms"),
                                  tf.TensorSpec([None], tf.int32, name="lengths"),
                                  tf.TensorSpec([], tf.int32, name="sample_rate")])
    def serve(self, waveforms, lengths, sample_rate):
        return self._serve(waveforms, lengths, sample_rate)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveforms"),
                                  tf.TensorSpec([None], tf.int32, name="lengths"),
                                  tf.TensorSpec([], tf.int32, name="sample_rate"),
                                  tf.TensorSpec([], tf.int32, name="beam_width")])
    def transcribe(self, waveforms, lengths, sample_rate, beam_width):
        with tf.control_dependencies([
                tf.debugging.assert_greater_equal(beam_width, 1, message="beam_width must be >= 1"),
                tf.debugging.assert_less_equal(beam_width, MAX_BEAM_WIDTH,
                                               message=f"beam_width must be <= {MAX_BEAM_WIDTH}")]):
            beam_width = tf.identity(beam_width)

        def body(waveforms, lengths, sample_rate):
            log_probs, frames = self.log_probabilities(waveforms, lengths, sample_rate)
            texts, scores = decode(log_probs, frames, beam_width)
            return {"texts": texts, "scores": scores, "probabilities": tf.exp(log_probs),
                    "frame_lengths": tf.cast(frames, tf.int32)}

        def empty():
            return {"texts": tf.zeros([0], tf.string), "scores": tf.zeros([0], tf.float32),
                    "probabilities": tf.zeros([0, 0, CLASSES], tf.float32),
                    "frame_lengths": tf.zeros([0], tf.int32)}

        return self._guarded(waveforms, lengths, sample_rate, body, empty)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="wav_bytes")])
    def transcribe_bytes(self, wav_bytes):
        with tf.control_dependencies([tf.debugging.assert_less_equal(
                tf.shape(wav_bytes)[0], MAX_BATCH, message=f"at most {MAX_BATCH} clips per call")]):
            wav_bytes = tf.identity(wav_bytes)

        def one(data):
            audio, rate = decode_wav_bytes(data)
            samples = tf.shape(audio)[0]
            checks = [
                tf.debugging.assert_greater_equal(
                    rate, MIN_SAMPLE_RATE, message=f"transcribe_bytes: a WAV file's sample rate is not from "
                                                   f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"),
                tf.debugging.assert_less_equal(
                    rate, MAX_SAMPLE_RATE, message=f"transcribe_bytes: a WAV file's sample rate is not from "
                                                   f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"),
                tf.debugging.assert_less_equal(
                    tf.cast(samples, tf.int64), tf.cast(MAX_SECONDS, tf.int64) * tf.cast(rate, tf.int64),
                    message=f"transcribe_bytes: a WAV file is longer than {MAX_SECONDS} s (split it first)"),
            ]
            with tf.control_dependencies(checks):
                audio, rate = tf.identity(audio), tf.identity(rate)
            resampled, _ = to_model_rate(audio[None], samples[None], rate)
            return resampled[0]

        clips = tf.map_fn(one, wav_bytes, fn_output_signature=tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0))
        return self._serve(clips.to_tensor(0.0), tf.cast(clips.row_lengths(), tf.int32),
                           tf.constant(SAMPLE_RATE, tf.int32))


def write_serving(model, path, beam_width=DEFAULT_BEAM_WIDTH):
    """SavedModel with three signatures (every weight stored once; TF1 session loaders run it too):

    * ``serving_default``: ``waveforms`` float32 [batch, samples] in [-1, 1] (zeros pad),
      ``lengths`` int32 [batch], ``sample_rate`` int32 scalar (4000..96000 Hz, the whole batch)
      → ``texts`` string [batch], ``scores`` float32 [batch] (log-probability of the text under
      beam search of the card's width);
    * ``transcribe``: the same inputs and ``beam_width`` int32 (1 = greedy best path, up to 16) →
      ``texts``, ``scores``, ``probabilities`` float32 [batch, frames, 29] (per 40 ms frame:
      ALPHABET then the blank) and ``frame_lengths`` int32 [batch];
    * ``transcribe_bytes``: ``wav_bytes`` string [batch], whole 16-bit PCM WAV files at any rate
      from 4 to 96 kHz (channels averaged) → ``texts``, ``scores``.

    Bounds: at most MAX_BATCH clips per call, each at most MAX_SECONDS seconds.
    """
    transcriber = Transcriber(model, beam_width=beam_width)
    tf.saved_model.save(transcriber, str(path), signatures={
        "serving_default": transcriber.serve.get_concrete_function(),
        "transcribe": transcriber.transcribe.get_concrete_function(),
        "transcribe_bytes": transcriber.transcribe_bytes.get_concrete_function()})


def wav_bytes(waveform, sample_rate):
    """A float waveform in [-1, 1] as the bytes of a mono 16-bit PCM WAV file."""
    import io
    import wave

    samples = np.round(np.clip(np.asarray(waveform, np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(int(sample_rate))
        handle.writeframes(samples.tobytes())
    return buffer.getvalue()


def _example_tone(seconds, sample_rate, pitch=220.0):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * pitch * t) * np.exp(-3 * t)).astype(np.float32)


def serving_examples():
    """Small valid inputs for every signature, as plain Python values (WAV files as "base64:<text>")."""
    import base64

    first, second = _example_tone(0.2, 8000), _example_tone(0.1, 8000, 330.0)
    waveforms = np.zeros((2, len(first)), np.float32)
    waveforms[0], waveforms[1, :len(second)] = first, second
    files = [wav_bytes(_example_tone(0.15, 8000), 8000), wav_bytes(_example_tone(0.1, 22050, 440.0), 22050)]
    return {
        "serving_default": {"waveforms": waveforms.tolist(), "lengths": [len(first), len(second)],
                            "sample_rate": 8000},
        "transcribe": {"waveforms": waveforms.tolist(), "lengths": [len(first), len(second)],
                       "sample_rate": 8000, "beam_width": 2},
        "transcribe_bytes": {"wav_bytes": ["base64:" + base64.b64encode(f).decode("ascii") for f in files]},
    }


# ---------------------------------------------------------------------------
# Data


def load_data(seed=None, size=None, max_examples=None, asterisk=True, flite=True):
    """The synthetic splits at 16 kHz, (with `flite`, when flite is installed) the validation texts
    spoken by another synthesiser (`validation_flite`, 16 kHz; `zoo.data.speech.build_flite_set`)
    and (with `asterisk`) the real Asterisk prompts at 8 kHz. Without flite, `validation_flite`
    is left out, with a printed reason.

    `max_examples` keeps the first N clips of each synthetic split and of each
    kind of Asterisk prompt (smoke runs). Returns ``{"train", "validation",
    "test": {"waveforms", "texts", "kinds", "ids"}, "asterisk": {"waveforms",
    "sample_rate", "texts", "kinds", "caveats", "names"}}``.

    Raises:
        DataUnavailableError: espeak-ng or a source package is unavailable.
    """
    from zoo.data import speech

    seed = speech.SPLIT_SEED if seed is None else seed
    size = speech.DEFAULT_SIZE if size is None else size
    splits = speech.speech_splits(seed=seed, size=size)
    data = {}
    for name, records in splits.items():
        records = records[:max_examples] if max_examples else records
        data[name] = {"waveforms": speech.load_waveforms(records, SAMPLE_RATE),
                      "texts": [r["text"] for r in records], "kinds": [r["kind"] for r in records],
                      "ids": [r["id"] for r in records]}
    if flite:
        try:
            flite_set = speech.build_flite_set(seed=seed, size=size)
        except speech.DataUnavailableError as error:
            print(f"[zoo] no held-out-synthesiser set (validation_flite): {error}")
        else:
            records = flite_set["records"][:max_examples] if max_examples else flite_set["records"]
            data["validation_flite"] = {"waveforms": speech.load_waveforms(records, SAMPLE_RATE),
                                        "texts": [r["text"] for r in records],
                                        "kinds": [r["kind"] for r in records],
                                        "voices": [r["voice"] for r in records],
                                        "flite": flite_set["flite"]}
    if asterisk:
        real = speech.load_asterisk_prompts()
        keep = list(range(len(real["names"])))
        if max_examples:
            taken, keep = {}, []
            for i, kind in enumerate(real["kinds"]):
                if taken.get(kind, 0) < max_examples:
                    taken[kind] = taken.get(kind, 0) + 1
                    keep.append(i)
        data["asterisk"] = {"waveforms": [real["waveforms"][i] for i in keep],
                            "texts": [real["transcripts"][i] for i in keep],
                            "kinds": [real["kinds"][i] for i in keep],
                            "caveats": [real["caveats"][i] for i in keep],
                            "names": [real["names"][i] for i in keep],
                            "sample_rate": real["sample_rate"]}
    return data


def _batches_by_length(lengths, batch_size, seed=None):
    lengths = np.asarray(lengths)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(len(lengths)), lengths))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def make_dataset(waveforms, texts, batch_size=32, shuffle=False, seed=0, subsampling_layers=2):
    """(({"waveforms", "lengths"}, character ids padded with -1)) batches of clips of similar length.

    Clips whose transcript needs more CTC frames than the model gives them
    (`required_frames`) are left out. `shuffle` reorders the batches every
    epoch (seeded). Returns `(dataset, number of clips left out)`.
    """
    ids = [encode_text(t) for t in texts]
    lengths = np.array([len(w) for w in waveforms], np.int64)
    frames = output_frame_counts(lengths, subsampling_layers)
    usable = [i for i in range(len(ids)) if ids[i] and required_frames(ids[i]) <= frames[i]]
    dropped = len(ids) - len(usable)
    if not usable:
        raise ValueError("no clip is long enough for its transcript (or every transcript is empty)")
    flat = np.concatenate([np.asarray(waveforms[i], np.float32) for i in usable])
    audio = tf.RaggedTensor.from_row_lengths(tf.constant(flat), lengths[usable])
    labels = tf.RaggedTensor.from_row_lengths(
        tf.constant(np.array([c for i in usable for c in ids[i]], np.int32)), [len(ids[i]) for i in usable])
    batches = _batches_by_length(lengths[usable], batch_size, seed)
    rows = tf.ragged.constant([b.tolist() for b in batches], dtype=tf.int64)

    def make_batch(i):
        chosen = rows[i]
        clips = tf.gather(audio, chosen)
        inputs = {"waveforms": clips.to_tensor(0.0), "lengths": tf.cast(clips.row_lengths(), tf.int32)}
        return inputs, tf.gather(labels, chosen).to_tensor(-1)

    data = tf.data.Dataset.range(len(batches))
    if shuffle:
        data = data.shuffle(len(batches), seed=seed, reshuffle_each_iteration=True)
    return data.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2), dropped


# ---------------------------------------------------------------------------
# Transcribing many clips (Python)


def _padded(clips):
    longest = max(len(c) for c in clips)
    batch = np.zeros((len(clips), max(longest, 1)), np.float32)
    for row, clip in enumerate(clips):
        batch[row, :len(clip)] = clip
    return batch, np.array([len(c) for c in clips], np.int32)


def _decoder(transcriber, beam_widths):
    key = tuple(beam_widths)
    functions = transcriber.__dict__.setdefault("_zoo_decoders", {})
    if key not in functions:
        functions[key] = tf.function(
            lambda audio, lengths, rate: transcriber.decode_batch(audio, lengths, rate, key), reduce_retracing=True,
            input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32),
                             tf.TensorSpec([], tf.int32)])
    return functions[key]


def transcribe_many(source, waveforms, sample_rate, beam_widths=(DEFAULT_BEAM_WIDTH,), batch_size=BATCH_SIZE):
    """Texts of many clips (1-D float arrays at `sample_rate`), decoded with each of `beam_widths`.

    `source`: a Keras model of `build_model` or a `Transcriber`. Clips are
    batched by length; no bound applies (evaluation of long prompts). Returns
    ``{width: [text, ...]}`` in the order of `waveforms`.
    """
    transcriber = source if isinstance(source, Transcriber) else Transcriber(source)
    function = _decoder(transcriber, beam_widths)
    texts = {w: [None] * len(waveforms) for w in beam_widths}
    for batch in _batches_by_length([len(w) for w in waveforms], batch_size):
        audio, lengths = _padded([np.asarray(waveforms[i], np.float32) for i in batch])
        out = function(tf.constant(audio), tf.constant(lengths), tf.constant(int(sample_rate), tf.int32))
        for width in beam_widths:
            for i, text in zip(batch, out[f"texts_{width}"].numpy()):
                texts[width][i] = text.decode("utf-8")
    return texts


def transcribe(source, waveforms, sample_rate, beam_width=DEFAULT_BEAM_WIDTH):
    """Transcribe clips (1-D float arrays in [-1, 1], all at `sample_rate`): one
    ``{"text", "score"}`` per clip, through the `transcribe` signature of a loaded SavedModel or
    a `Transcriber` (bounds apply: at most MAX_SECONDS per clip)."""
    from zoo.tasks.word_decoding import check_whole_number

    beam_width = check_whole_number("beam_width", beam_width, 1, MAX_BEAM_WIDTH)
    sample_rate = check_whole_number("sample_rate", sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, " Hz")
    if hasattr(source, "signatures"):
        function = source.signatures["transcribe"]
    else:
        transcriber = source if isinstance(source, Transcriber) else Transcriber(source)
        function = transcriber.transcribe  # `transcriber` stays referenced: the tf.function holds it weakly
    results = []
    for start in range(0, len(waveforms), BATCH_SIZE):
        clips = [np.asarray(w, np.float32).reshape(-1) for w in waveforms[start:start + BATCH_SIZE]]
        for number, clip in enumerate(clips, start + 1):
            if len(clip) > MAX_SECONDS * sample_rate:
                raise ValueError(f"clip {number} lasts {len(clip) / sample_rate:.1f} s; at most {MAX_SECONDS} s "
                                 f"(split longer audio first)")
        audio, lengths = _padded(clips)
        arguments = dict(waveforms=tf.constant(audio), lengths=tf.constant(lengths),
                         sample_rate=tf.constant(sample_rate, tf.int32), beam_width=tf.constant(beam_width, tf.int32))
        out = function(**arguments)
        results += [{"text": t.decode("utf-8"), "score": float(s)}
                    for t, s in zip(out["texts"].numpy(), out["scores"].numpy())]
    return results


# ---------------------------------------------------------------------------
# Metrics


def edit_distance(reference, hypothesis):
    """Levenshtein distance between two sequences (strings, word lists): the fewest insertions,
    deletions and substitutions that turn `hypothesis` into `reference`."""
    reference, hypothesis = list(reference), list(hypothesis)
    if len(reference) < len(hypothesis):
        reference, hypothesis = hypothesis, reference
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i]
        for j, h in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def error_rates(references, hypotheses):
    """Corpus character and word error rates: edits summed over utterances / reference length summed.

    CER counts characters including spaces; WER counts words split at
    spaces. Also the share of utterances transcribed exactly.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    characters = sum(len(r) for r in references)
    words = sum(len(r.split()) for r in references)
    character_edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    word_edits = sum(edit_distance(r.split(), h.split()) for r, h in zip(references, hypotheses))
    exact = sum(r == h for r, h in zip(references, hypotheses))
    return {"cer": round(character_edits / max(characters, 1), 6), "wer": round(word_edits / max(words, 1), 6),
            "exact_match": round(exact / max(len(references), 1), 6), "count": len(references),
            "reference_characters": characters, "reference_words": words}


def word_accuracy(references, hypotheses, kinds=None):
    """Isolated words: the share answered exactly (overall, and per kind when `kinds` is given)."""
    out = {"accuracy": round(float(np.mean([r == h for r, h in zip(references, hypotheses)])), 6)
           if references else 0.0, "count": len(references)}
    for kind in sorted(set(kinds or ())):
        chosen = [r == h for r, h, k in zip(references, hypotheses, kinds) if k == kind]
        out[f"{kind}_accuracy"] = round(float(np.mean(chosen)), 6)
    return out


def test_sets(data):
    """The sets every model and baseline is scored on: ``{name: (source, indices)}``, the clips
    `data[source]["waveforms"][i]` for i in indices. Sets overlap (the isolated words of the test
    split, the Asterisk prompts with and without caveats), so each source is decoded once."""
    sets = {}
    for split in ("validation", "test"):
        sets[split] = (split, list(range(len(data[split]["texts"]))))
    sets["test_isolated_words"] = ("test", [i for i, k in enumerate(data["test"]["kinds"]) if k in ("digit", "letter")])
    if "validation_flite" in data:
        sets["validation_flite"] = ("validation_flite", list(range(len(data["validation_flite"]["texts"]))))
    if "asterisk" in data:
        real = data["asterisk"]
        sets["asterisk"] = ("asterisk", list(range(len(real["texts"]))))
        sets["asterisk_without_caveats"] = ("asterisk", [i for i, c in enumerate(real["caveats"]) if not c])
        sets["asterisk_digits_letters"] = ("asterisk", [i for i, k in enumerate(real["kinds"]) if k in ("digit", "letter")])
    return {name: chosen for name, chosen in sets.items() if chosen[1]}


def sample_rate_of(data, source):
    return data[source].get("sample_rate", SAMPLE_RATE)


#: Sets scored as isolated words (accuracy) rather than by error rates.
WORD_SETS = ("test_isolated_words", "asterisk_digits_letters")


def score_sets(data, hypotheses, names=None):
    """Scores of `hypotheses` (``{source: {index: text}}``) on each set of `test_sets(data)` (or
    of `names`): error rates, and for WORD_SETS word accuracy with CER."""
    results = {}
    for name, (source, indices) in test_sets(data).items():
        if names is not None and name not in names:
            continue
        references = [data[source]["texts"][i] for i in indices]
        found = [hypotheses[source][i] for i in indices]
        kinds = [data[source]["kinds"][i] for i in indices] if "kinds" in data[source] else None
        if name in WORD_SETS:
            results[name] = {**word_accuracy(references, found, kinds), "cer": error_rates(references, found)["cer"]}
        else:
            results[name] = error_rates(references, found)
            if kinds and len(set(kinds)) > 1:
                results[name]["by_kind"] = error_rates_by_kind(references, found, kinds)
    return results


def error_rates_by_kind(references, hypotheses, kinds):
    """`error_rates` of each kind of text (digit, number, word, sentence, ...) on its own:
    ``{kind: {...}}``, kinds sorted. Where a set's errors come from: a sentence of words never
    heard is spelt from its sound, a digit string is not."""
    return {kind: error_rates([r for r, k in zip(references, kinds) if k == kind],
                              [h for h, k in zip(hypotheses, kinds) if k == kind])
            for kind in sorted(set(kinds))}


def decoding_label(beam_width):
    """The metrics' key of a decoding: "greedy" for width 1, else "beam<width>"."""
    return "greedy" if beam_width == 1 else f"beam{beam_width}"


def evaluate(model, data, beam_width=DEFAULT_BEAM_WIDTH, batch_size=BATCH_SIZE):
    """The model's scores on every set of `test_sets`, greedy and with beam search of `beam_width`:
    ``{set: {"greedy": {...}, "beam<w>": {...}}}``. Each clip is decoded once per method. The
    isolated-word sets are also scored choosing among the training split's digits and letters
    (`choose_words`; key "closed_vocabulary"), as the DTW baseline chooses."""
    transcriber = Transcriber(model, beam_width=beam_width)
    widths = (1, beam_width) if beam_width != 1 else (1,)
    sets = test_sets(data)
    hypotheses = {w: {} for w in widths}
    for source in sorted({source for source, _ in sets.values()}):
        chosen = sorted({i for s, indices in sets.values() if s == source for i in indices})
        texts = transcribe_many(transcriber, [data[source]["waveforms"][i] for i in chosen],
                                sample_rate_of(data, source), widths, batch_size)
        for w in widths:
            hypotheses[w][source] = dict(zip(chosen, texts[w]))
    scored = {w: score_sets(data, hypotheses[w]) for w in widths}
    results = {name: {decoding_label(w): scored[w][name] for w in widths} for name in sets}
    vocabulary = isolated_word_vocabulary(data)
    if vocabulary:
        chosen = {}
        for name, (source, indices) in sets.items():
            if name in WORD_SETS:
                words = choose_words(transcriber, [data[source]["waveforms"][i] for i in indices],
                                     sample_rate_of(data, source), vocabulary, batch_size)
                chosen.setdefault(source, {}).update(zip(indices, words))
        for name, scores in score_sets(data, chosen, WORD_SETS).items():
            results[name][CLOSED_VOCABULARY] = {**scores, "vocabulary": len(vocabulary)}
    return results


# ---------------------------------------------------------------------------
# Isolated words from a closed vocabulary


def isolated_word_vocabulary(data):
    """The words a closed-vocabulary decoding chooses from: every isolated digit and letter of the
    synthetic training split (the DTW baseline's template labels), sorted."""
    train = data["train"]
    return sorted({text for text, kind in zip(train["texts"], train["kinds"]) if kind in ("digit", "letter")})


def _vocabulary_labels(vocabulary):
    if not vocabulary:
        raise ValueError("a closed vocabulary needs at least one word")
    encoded = [encode_text(word) for word in vocabulary]
    for word, ids in zip(vocabulary, encoded):
        if not len(ids):
            raise ValueError(f"vocabulary word {word!r} has no character the model can write")
    labels = np.zeros((len(vocabulary), max(len(ids) for ids in encoded)), np.int32)
    for i, ids in enumerate(encoded):
        labels[i, : len(ids)] = ids
    return labels, np.array([len(ids) for ids in encoded], np.int32), np.array([required_frames(ids) for ids in encoded])


def word_log_likelihoods(source, waveforms, sample_rate, vocabulary, batch_size=BATCH_SIZE):
    """`[clips, words]`: log p(word | clip) under the CTC model, summed over every alignment
    (`tf.nn.ctc_loss`), for each clip (1-D float arrays at `sample_rate`) and each word of `vocabulary`.
    A word too long for a clip's frames gets -inf."""
    transcriber = source if hasattr(source, "log_probabilities") else Transcriber(source)
    labels, label_lengths, needed = _vocabulary_labels(vocabulary)
    words = len(vocabulary)
    scores = np.full((len(waveforms), words), -np.inf)
    for batch in _batches_by_length([len(w) for w in waveforms], batch_size):
        audio, lengths = _padded([np.asarray(waveforms[i], np.float32) for i in batch])
        log_probs, frames = transcriber.log_probabilities(tf.constant(audio), tf.constant(lengths),
                                                          tf.constant(int(sample_rate), tf.int32))
        clips = len(batch)
        nll = tf.nn.ctc_loss(  # every clip against every word: clips * words pairs
            tf.constant(np.tile(labels, (clips, 1))), tf.repeat(log_probs, words, axis=0),
            tf.constant(np.tile(label_lengths, clips)), tf.repeat(frames, words),
            logits_time_major=False, blank_index=BLANK).numpy().reshape(clips, words)
        possible = frames.numpy()[:, None] >= needed[None, :]  # else no alignment: tf.nn.ctc_loss gives a finite
        scores[np.asarray(batch)] = np.where(possible & np.isfinite(nll), -nll, -np.inf)  # but meaningless loss
    return scores


def choose_words(source, waveforms, sample_rate, vocabulary, batch_size=BATCH_SIZE):
    """Isolated-word recognition with a closed vocabulary: for each clip, the word of `vocabulary`
    the model gives the highest probability (`word_log_likelihoods`), as the DTW baseline chooses
    among its templates' words."""
    scores = word_log_likelihoods(source, waveforms, sample_rate, vocabulary, batch_size)
    return [vocabulary[int(i)] for i in np.argmax(scores, axis=1)]


#: The metrics' key of the closed-vocabulary decoding of isolated words.
CLOSED_VOCABULARY = "closed_vocabulary"


# ---------------------------------------------------------------------------
# Baseline: 1-NN DTW over MFCCs (isolated words)


def mfcc(waveform, sample_rate=SAMPLE_RATE, coefficients=13, mel_bins=40, max_frequency=MAX_FREQUENCY,
         trim_db=35.0, deltas=True):
    """MFCC frames [frames, coefficients (× 2 with deltas)] of one clip, in NumPy.

    25 ms Hann windows every 10 ms (a 16 kHz clip), 512-point FFT, `mel_bins`
    filters from 60 Hz to `max_frequency`, log, orthonormal DCT-II, the first
    `coefficients`; frames quieter than the loudest by more than `trim_db` dB
    are trimmed from both ends; cepstral mean removed; first differences appended.
    """
    from scipy.fft import dct

    if sample_rate != SAMPLE_RATE:
        from zoo.data.speech import resample

        waveform = resample(waveform, sample_rate, SAMPLE_RATE)
    x = np.asarray(waveform, np.float64)
    x = np.concatenate([x, np.zeros(max(FRAME_LENGTH - len(x), 0) + (-len(x)) % FRAME_STEP)])
    count = 1 + (len(x) - FRAME_LENGTH) // FRAME_STEP
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME_LENGTH)[::FRAME_STEP][:count]
    window = np.hanning(FRAME_LENGTH + 1)[:-1]
    power = np.abs(np.fft.rfft(frames * window, FFT_LENGTH)) ** 2
    weights = mel_weights(mel_bins, SAMPLE_RATE, MIN_FREQUENCY, max_frequency).astype(np.float64)
    log_mel = np.log(power @ weights + LOG_FLOOR)
    energy = 10 * np.log10(power.sum(axis=1) + 1e-10)
    loud = np.flatnonzero(energy >= energy.max() - trim_db)
    if len(loud):
        log_mel = log_mel[loud[0]:loud[-1] + 1]
    cepstra = dct(log_mel, type=2, norm="ortho", axis=1)[:, :coefficients]
    cepstra = cepstra - cepstra.mean(axis=0, keepdims=True)
    if deltas:
        delta = np.diff(cepstra, axis=0, prepend=cepstra[:1])
        cepstra = np.concatenate([cepstra, delta], axis=1)
    return cepstra.astype(np.float32)


def dtw_distance(a, b):
    """Dynamic time warping distance between frame sequences a [n, d] and b [m, d]: the least sum
    of Euclidean frame distances along a monotone path from (0, 0) to (n-1, m-1) with steps
    (1, 0), (0, 1), (1, 1), divided by n + m. Plain dynamic programming (the reference)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            total[i, j] = cost[i - 1, j - 1] + min(total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
    return float(total[n, m] / (n + m))


def dtw_distances(query, templates):
    """`dtw_distance(query, t)` for every template at once: all frame distances in one matrix
    product, then one pass per query frame over every template (row i of the table is a prefix sum
    plus a running minimum, which is the recurrence's horizontal step solved in closed form)."""
    query = np.asarray(query, np.float64)
    sizes = np.array([len(t) for t in templates])
    longest = sizes.max()
    stacked = np.zeros((len(templates), longest, query.shape[1]))
    for k, template in enumerate(templates):
        stacked[k, :len(template)] = template
    flat = stacked.reshape(-1, query.shape[1])
    squared = (np.square(query).sum(1)[:, None] + np.square(flat).sum(1)[None, :] - 2.0 * query @ flat.T)
    costs = np.sqrt(np.maximum(squared, 0.0)).reshape(len(query), len(templates), longest)
    costs[:, np.arange(longest)[None, :] >= sizes[:, None]] = 1e12  # past a template's end: never used
    row = np.cumsum(costs[0], axis=1)
    for cost in costs[1:]:
        arrive = np.minimum(np.concatenate([np.full((len(templates), 1), np.inf), row[:, :-1]], axis=1), row)
        prefix = np.cumsum(cost, axis=1)  # D[i, j] = prefix_j + min over k <= j of (arrive_k - prefix_(k-1))
        row = prefix + np.minimum.accumulate(arrive - (prefix - cost), axis=1)
    return row[np.arange(len(templates)), sizes - 1] / (len(query) + sizes)


class DTWClassifier:
    """1-nearest-neighbour isolated-word recogniser: MFCC frames compared by `dtw_distances`."""

    def __init__(self, templates, labels):
        if not templates or len(templates) != len(labels):
            raise ValueError("DTWClassifier needs as many labels as templates, and at least one")
        self.templates, self.labels = list(templates), list(labels)

    def predict(self, queries):
        return [self.labels[int(np.argmin(dtw_distances(q, self.templates)))] for q in queries]


def dtw_baseline(data):
    """1-NN DTW over MFCCs, templates from the synthetic training digits and letters; scored on
    the isolated words of the synthetic test split and of the Asterisk prompts."""
    started = time.perf_counter()
    train = data["train"]
    chosen = [i for i, kind in enumerate(train["kinds"]) if kind in ("digit", "letter")]
    if not chosen:
        return {"available": False, "reason": "no isolated digit or letter in the training clips"}
    classifier = DTWClassifier([mfcc(train["waveforms"][i]) for i in chosen], [train["texts"][i] for i in chosen])
    results = {"available": True, "templates": len(chosen),
               "description": "1-nearest neighbour by dynamic time warping (steps (1,0), (0,1), (1,1); "
                              "Euclidean frame distance; divided by the two lengths) over 13 MFCCs and "
                              "their first differences (25 ms / 10 ms frames, 40 mel bins 60-4000 Hz, "
                              "silence below 35 dB under the peak trimmed, cepstral mean removed); "
                              "templates: every isolated digit and letter of the synthetic training split"}
    predicted = {}
    for name, (source, indices) in test_sets(data).items():
        if name in WORD_SETS:
            rate = sample_rate_of(data, source)
            found = classifier.predict([mfcc(data[source]["waveforms"][i], rate) for i in indices])
            predicted.setdefault(source, {}).update(zip(indices, found))
    for name, scores in score_sets(data, predicted, WORD_SETS).items():
        results[name] = {key: value for key, value in scores.items() if key != "cer"}
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


# ---------------------------------------------------------------------------
# Baseline: PocketSphinx


def pocketsphinx_status():
    """(True, version) when PocketSphinx 5 imports with its bundled US English models, else (False, why)."""
    try:
        from importlib.metadata import version

        importlib.import_module("pocketsphinx")
        return True, version("pocketsphinx")
    except ImportError as error:
        return False, (f"PocketSphinx is not installed ({error}); `pip install pocketsphinx==5.1.1` "
                       f"adds it (its wheel carries the en-US models)")
    except Exception as error:  # a broken install: say so, do not fail the run
        return False, f"PocketSphinx did not load: {error}"


#: The PocketSphinx worker: decodes the raw 16 kHz 16-bit files named on stdin, one JSON line
#: (the words, or "") per file on stdout. It imports neither zoo nor TensorFlow.
POCKETSPHINX_WORKER = """
import json, sys
from pocketsphinx import Decoder
decoder = Decoder(samprate=16000, loglevel="FATAL")
for line in sys.stdin:
    with open(line.rstrip("\\n"), "rb") as handle:
        pcm = handle.read()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    found = decoder.hyp()
    print(json.dumps(found.hypstr if found is not None else ""), flush=True)
"""


def pocketsphinx_transcribe(waveforms, sample_rate, workers=None):
    """PocketSphinx's transcripts (normalised like ours) of clips at `sample_rate`, each resampled
    to 16 kHz and decoded as one utterance with its bundled US English acoustic model, language
    model and dictionary. `workers` processes decode at once (default: one per CPU core, at most 8;
    PocketSphinx holds Python's GIL, so threads would not help).

    Raises:
        RuntimeError: a worker failed (its error output is in the message).
    """
    import concurrent.futures
    import os
    import tempfile
    from pathlib import Path

    from zoo.data.speech import normalize_transcript, resample

    if not len(waveforms):
        return []
    workers = max(1, min(workers or min(os.cpu_count() or 1, 8), len(waveforms)))
    with tempfile.TemporaryDirectory(prefix="zoo-pocketsphinx-") as scratch:
        paths, seconds = [], 0.0
        for number, waveform in enumerate(waveforms):
            audio = resample(np.asarray(waveform, np.float32), sample_rate, SAMPLE_RATE)
            seconds += len(audio) / SAMPLE_RATE
            path = Path(scratch) / f"{number}.raw"
            path.write_bytes(np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())
            paths.append(str(path))
        shares = [list(range(k, len(paths), workers)) for k in range(workers)]

        def run(share):
            done = subprocess.run([sys.executable, "-c", POCKETSPHINX_WORKER], cwd=scratch, text=True,
                                  input="".join(paths[i] + "\n" for i in share), capture_output=True,
                                  timeout=120 + 2 * seconds)
            lines = done.stdout.splitlines()
            if done.returncode != 0 or len(lines) != len(share):
                raise RuntimeError(f"the PocketSphinx worker exited with status {done.returncode} after "
                                   f"{len(lines)} of {len(share)} clips: {done.stderr[-1500:]}")
            return [json.loads(line) for line in lines]

        texts = [""] * len(paths)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for share, found in zip(shares, pool.map(run, shares)):
                for i, words in zip(share, found):
                    texts[i] = normalize_transcript(words)
    return texts


def pocketsphinx_baseline(data, sets=("asterisk", "asterisk_without_caveats", "asterisk_digits_letters")):
    """PocketSphinx scored on `sets` of `test_sets(data)` (each clip decoded once)."""
    available, detail = pocketsphinx_status()
    if not available:
        return {"available": False, "reason": detail}
    started = time.perf_counter()
    results = {"available": True, "version": detail,
               "description": "PocketSphinx (pip pocketsphinx) with its bundled en-us acoustic model, "
                              "en-us.lm.bin language model and cmudict-en-us.dict, each clip resampled "
                              "to 16 kHz and decoded as one utterance; its words normalised like our "
                              "transcripts; scored on the real Asterisk sets only"}
    chosen = {}
    for name, (source, indices) in test_sets(data).items():
        if name in sets:
            chosen.setdefault(source, set()).update(indices)
    decoded = {}
    try:
        for source, indices in chosen.items():
            indices = sorted(indices)
            texts = pocketsphinx_transcribe([data[source]["waveforms"][i] for i in indices],
                                            sample_rate_of(data, source))
            decoded[source] = dict(zip(indices, texts))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        return {"available": False, "reason": f"PocketSphinx failed: {error}"}
    results.update(score_sets(data, decoded, sets))
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


# ---------------------------------------------------------------------------
# zoo verify


def remeasure(model, card):
    """Re-measure every set of the card's metrics (`zoo verify`)."""
    dataset = card["dataset"]
    data = load_data(dataset["seed"], dataset["size"], dataset.get("max_examples_per_split"),
                     asterisk=any(name.startswith("asterisk") for name in card["metrics"]),
                     flite="validation_flite" in card["metrics"])
    results = evaluate(model, data, beam_width=card["decoding"]["beam_width"])
    return {name: results[name] for name in card["metrics"] if name in results}


# ---------------------------------------------------------------------------
# zoo transcribe


def read_audio_file(path):
    """A WAV file → (mono float32 waveform, sample rate), checked against the serving bounds.

    Raises:
        ValueError: no such file, not a PCM WAV file, no samples, a rate
            outside MIN_SAMPLE_RATE..MAX_SAMPLE_RATE, or longer than MAX_SECONDS.
    """
    from pathlib import Path

    from zoo.data.speech import read_wav

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty")
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file (no RIFF/WAVE header); convert it to PCM WAV first")
    waveform, rate = read_wav(path)  # ValueError naming the file when it is not PCM WAV
    if waveform.size == 0:
        raise ValueError(f"{path}: the WAV file holds no audio samples")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"{path}: sample rate {rate} Hz; expected {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
    if waveform.size > MAX_SECONDS * rate:
        raise ValueError(f"{path}: lasts {waveform.size / rate:.1f} s; at most {MAX_SECONDS} s (split it first)")
    return waveform, rate


def alignment_png(serving, waveform, sample_rate, path, beam_width=DEFAULT_BEAM_WIDTH, title=None):
    """Draw one clip's spectrogram (log power, 0-4 kHz, 10 ms frames) over its CTC alignment: for each
    40 ms output frame, the probability of the blank and of the most likely character, that character
    written where it is the best path's pick. Runs the SavedModel's `transcribe` signature; returns the
    transcript."""
    from zoo.figures import new_figure, write_png

    clip = np.asarray(waveform, np.float32).reshape(-1)
    out = serving.signatures["transcribe"](
        waveforms=tf.constant(clip[None]), lengths=tf.constant([len(clip)], tf.int32),
        sample_rate=tf.constant(int(sample_rate), tf.int32), beam_width=tf.constant(int(beam_width), tf.int32))
    text = out["texts"].numpy()[0].decode("utf-8")
    frames = int(out["frame_lengths"].numpy()[0])
    probabilities = out["probabilities"].numpy()[0, :frames]
    audio, _ = to_model_rate(tf.constant(clip[None]), tf.constant([len(clip)], tf.int32),
                             tf.constant(int(sample_rate), tf.int32))
    spectra = tf.abs(tf.signal.stft(audio[0], FRAME_LENGTH, FRAME_STEP, FFT_LENGTH, pad_end=True)).numpy()
    top_bin = int(MAX_FREQUENCY / (SAMPLE_RATE / 2) * (FFT_LENGTH // 2))
    power = 20 * np.log10(spectra[:, :top_bin].T + 1e-6)
    seconds = len(clip) / sample_rate
    fig = new_figure(max(6.0, 2.5 * seconds), 4.5)
    top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    top.imshow(power, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, MAX_FREQUENCY),
               vmin=power.max() - 80, vmax=power.max())
    top.set_ylabel("Hz")
    top.set_title(title or repr(text), fontsize=9)
    step = seconds / max(frames, 1)
    times = (np.arange(frames) + 0.5) * step
    best = probabilities[:, :BLANK].argmax(axis=1)
    bottom.plot(times, probabilities[:, BLANK], color="0.6", label="blank")
    bottom.plot(times, probabilities[np.arange(frames), best], color="tab:blue", label="best character")
    picks = probabilities.argmax(axis=1)
    for t, (pick, before) in enumerate(zip(picks, np.concatenate([[BLANK], picks[:-1]]))):
        if pick != BLANK and pick != before:  # where the best path emits a character
            bottom.text(times[t], 1.02, ALPHABET[pick] if ALPHABET[pick] != " " else "␣", ha="center",
                        fontsize=8)
    bottom.set_xlim(0, seconds)
    bottom.set_ylim(0, 1.12)
    bottom.set_xlabel("seconds")
    bottom.set_ylabel("probability")
    bottom.legend(loc="lower right", fontsize=7)
    write_png(fig, path)
    return text


def transcribe_cli(name, paths, beam_width=DEFAULT_BEAM_WIDTH, batch_size=BATCH_SIZE, plot=None):
    """`zoo transcribe NAME a.wav b.wav ... [--beam N] [--plot out.png]`: one `text<TAB>file` line per
    file, in order; `plot` draws the first file's spectrogram and CTC alignment (`alignment_png`).

    Every file is read and checked first (a bad one stops the command before
    any output); then the clips are transcribed `batch_size` at a time,
    grouped by sample rate.
    """
    from zoo import hub

    clips = [read_audio_file(p) for p in paths]
    serving = hub.load_serving(name)
    if plot:
        alignment_png(serving, clips[0][0], clips[0][1], plot, beam_width, title=str(paths[0]))
        print(f"wrote the spectrogram and CTC alignment of {paths[0]} to {plot}", file=sys.stderr)
    for start in range(0, len(clips), batch_size):
        chunk = clips[start:start + batch_size]
        texts = [None] * len(chunk)
        for rate in sorted({r for _, r in chunk}):
            members = [i for i, (_, r) in enumerate(chunk) if r == rate]
            for i, result in zip(members, transcribe(serving, [chunk[i][0] for i in members], rate, beam_width)):
                texts[i] = result["text"]
        for path, text in zip(paths[start:start + batch_size], texts):
            print(f"{text}\t{path}")
        sys.stdout.flush()
    return 0
