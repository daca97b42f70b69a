"""`make demo`: the zoo's main job, shown in a few seconds.

Until the pretrained models land this trains a small zoo LSTM on real data
that ships with scikit-learn (1,797 handwritten 8x8 digits, read row by row
as 8-step sequences) and prints the loss falling epoch by epoch.
"""

from zoo import _backend  # noqa: F401


def train_digits_demo(epochs=6, seed=0):
    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    from zoo import layers

    keras.utils.set_random_seed(seed)
    digits = load_digits()
    sequences = (digits.images / 16.0).astype("float32")  # (1797, 8 rows, 8 pixels)
    labels = digits.target
    order = np.random.default_rng(seed).permutation(len(labels))
    split = int(0.8 * len(order))
    train, test = order[:split], order[split:]

    model = keras.Sequential(
        [
            keras.Input((8, 8)),
            layers.LSTM(64, name="row_reader"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3, global_clipnorm=1.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    print("Training a zoo LSTM on scikit-learn's 8x8 digits (rows as time steps)")
    history = model.fit(sequences[train], labels[train], batch_size=64, epochs=epochs,
                        verbose=0, validation_data=(sequences[test], labels[test]))
    for epoch, (loss, acc) in enumerate(zip(history.history["loss"],
                                            history.history["val_accuracy"]), 1):
        print(f"  epoch {epoch}: train loss {loss:.3f}   held-out accuracy {acc:.3f}")
    return history.history


def main():
    train_digits_demo()


if __name__ == "__main__":
    main()
