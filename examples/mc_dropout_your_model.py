"""
Title: MC-dropout uncertainty for your own Keras model
Description: Sample dropout networks from any Functional Keras classifier, score inputs with
    the paper's five uncertainty measures, attack the MC predictor, and see which measure
    flags the adversarial inputs.

Run it top to bottom (about a minute on 2 CPU cores; `--quick` for a few seconds):

    python examples/mc_dropout_your_model.py [--quick] [--out FOLDER]
"""

"""
## Setup

`uncertadv` needs nothing but your model: a Functional (or Sequential with an `Input`) Keras
classifier with dropout layers and a softmax output (or logits, with `from_logits=True`).
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import matplotlib

matplotlib.use("Agg")  # write files, never open a window
import matplotlib.pyplot as plt
import numpy as np

import uncertadv as ua
from uncertadv import data

parser = argparse.ArgumentParser(description="MC-dropout uncertainty for your own Keras model.")
parser.add_argument("--quick", action="store_true", help="A tiny run (used by the test suite).")
parser.add_argument("--out", type=Path, default=Path("."), help="Folder for the figure.")
args = parser.parse_args()
n_train, epochs, n_test, samples = (500, 1, 60, 5) if args.quick else (10_000, 2, 500, 30)
keras.utils.set_random_seed(0)  # seeds the weights and the training shuffle

"""
## Build: your model

Any classifier works; here, a small CNN with two dropout layers, trained briefly on MNIST (which
ships inside the package, so this runs offline). Dropout stays in the model: MC dropout samples it.
"""

x_train, y_train = data.load_mnist("train")
x_test, y_test = data.load_mnist("test")
x_train, y_train = x_train[:n_train], y_train[:n_train]
x_test, y_test = x_test[:n_test], y_test[:n_test]

inputs = keras.Input((28, 28, 1))
x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
x = keras.layers.MaxPooling2D(2)(x)
x = keras.layers.Dropout(0.25)(x)
x = keras.layers.Flatten()(x)
x = keras.layers.Dense(64, activation="relu")(x)
x = keras.layers.Dropout(0.5)(x)
outputs = keras.layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs, outputs)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=0)

"""
## Score: T sampled networks, five measures

`ua.mc_predict` returns `[T, N, C]`: the probabilities of T dropout networks (one mask per
network, shared by every input; BatchNorm and everything else stay in inference mode). The
measures reduce them to one number per input.
"""

probs = ua.mc_predict(model, x_test, samples=samples, seed=0)  # [T, N, C]
accuracy = np.mean(probs.mean(axis=0).argmax(axis=-1) == y_test)
entropy = ua.predictive_entropy(probs)  # [N]: total uncertainty
mi = ua.mutual_information(probs)  # [N]: epistemic uncertainty (model uncertainty)
print(
    f"MC accuracy on {n_test} test digits: {accuracy:.3f}; mean entropy {entropy.mean():.3f}, mean MI {mi.mean():.4f}"
)

"""
## Attack the MC predictor, then ask each measure to tell clean from adversarial

`ua.attack` takes the list of your models and an `AttackConfig`: eps in 0-255 pixel units, the
predictor attacked (`mc`: the log of the MC-mean predictive, with fresh networks every step).
"""

config = ua.AttackConfig(method="mim", eps=76, predictor="mc", samples=samples, seed=0)
x_adv = ua.attack([model], x_test, y_test, config)
adv_probs = ua.mc_predict(model, x_adv, samples=samples, seed=1)  # the evaluator's networks differ
for name, measure in (("predictive entropy", ua.predictive_entropy), ("mutual information", ua.mutual_information)):
    auc = ua.roc_auc(measure(adv_probs), measure(probs))
    lo, hi = ua.bootstrap_auc(measure(adv_probs), measure(probs), rounds=200, seed=0)
    print(f"{name}: ROC-AUC adversarial vs clean {auc:.3f} [{lo:.3f}, {hi:.3f}] (N = {n_test} + {n_test})")

"""
## Plot: where does each measure put clean and adversarial inputs?
"""

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
for ax, (name, measure) in zip(axes, (("predictive entropy", ua.predictive_entropy), ("MI", ua.mutual_information))):
    ax.hist(measure(probs), bins=30, alpha=0.6, label="clean")
    ax.hist(measure(adv_probs), bins=30, alpha=0.6, label=f"MIM eps {config.eps:g}/255")
    ax.set(xlabel=f"{name} (nats)", ylabel="inputs", title=f"{name}, T = {samples}")
    ax.legend()
args.out.mkdir(parents=True, exist_ok=True)
fig.savefig(args.out / "mc_dropout_your_model.png", dpi=110)
print(f"wrote {args.out / 'mc_dropout_your_model.png'}")
