"""
Title: Detect adversarial inputs to your own Keras model
Description: Train a small dropout CNN, fit an MI detector at a 5% false-positive rate on clean
    images, attack the model, and count how many adversarial images the detector flags.

    python examples/detect_adversarial_inputs.py [--quick]
"""

"""
## Setup
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

import uncertadv as ua
from uncertadv import data

parser = argparse.ArgumentParser(description="Detect adversarial inputs to your own Keras model.")
parser.add_argument("--quick", action="store_true", help="A tiny run (used by the test suite).")
args = parser.parse_args()
n_train, epochs, n = (600, 1, 40) if args.quick else (20_000, 2, 300)
keras.utils.set_random_seed(0)

"""
## Your model: any Functional classifier with dropout
"""

(x_train, y_train), (x_test, y_test) = data.load_mnist("train"), data.load_mnist("test")
inputs = keras.Input((28, 28, 1))
h = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
h = keras.layers.MaxPooling2D(2)(h)
h = keras.layers.Flatten()(keras.layers.Dropout(0.25)(h))
h = keras.layers.Dropout(0.5)(keras.layers.Dense(64, activation="relu")(h))
model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x_train[:n_train], y_train[:n_train], epochs=epochs, batch_size=128, verbose=0)

"""
## Fit the detector on clean images the attacker never sees

The threshold is the MI that at most 5% of clean images exceed. The seed fixes the detector's
dropout networks; it is not a key: an attacker with the weights samples the same distribution.
"""

x_fit, x_clean, x_src, y_src = x_test[:n], x_test[n : 2 * n], x_test[2 * n : 3 * n], y_test[2 * n : 3 * n]
detector = ua.Detector(model, measure="mutual_information", samples=20, seed=1234).fit(x_fit, fpr=0.05)

"""
## Attack, then detect
"""

x_adv = ua.attack(model, x_src, y_src, method="mim", eps=76, predictor="mc", samples=20, seed=0)
fooled = ua.predict([model], x_adv, predictor="mc", samples=20, seed=1).mean(0).argmax(-1) != y_src
flag_clean, flag_adv = detector.predict(x_clean).mean(), detector.predict(x_adv).mean()
print(f"MIM eps 76/255 fools the MC predictor on {fooled.mean():.0%} of {n} images")
print(
    f"MI detector (threshold {detector.threshold:.4f}): flags {flag_clean:.0%} of clean images, "
    f"{flag_adv:.0%} of adversarial ones, {detector.predict(x_adv[fooled]).mean():.0%} of those that fool it"
)

"""
## An attacker who knows the detector

`pgd-adaptive` maximises the loss minus `c * max(0, MI / threshold - 1)` with fresh networks at each
step; `pgd-adaptive-known` does it on the detector's own networks (it knows the seed). The evasion
rate counts images that fool the model *and* pass the detector.
"""


def evasion(images):
    unflagged = detector.score(images) <= detector.threshold
    probs = ua.predict([model], images, predictor="mc", samples=20, seed=detector.seed)
    return ((probs.mean(0).argmax(-1) != y_src) & unflagged).mean()


for method in ("pgd", "pgd-adaptive", "pgd-adaptive-known"):
    if method == "pgd":
        x_method = ua.attack(model, x_src, y_src, method="pgd", eps=76, predictor="mc", samples=20, seed=0)
    else:
        x_method = ua.attack(model, x_src, y_src, method=method, eps=76, c=1.0, seed=0, detector=detector)
    print(f"{method:>18}: evasion rate {evasion(x_method):.0%}")
