"""Saving and loading fitted models.

A fitted pipeline that ends in a :class:`~sklearn_resnet.ResNetClassifier` is
saved and restored like any other scikit-learn model. This example

* fits a ``StandardScaler`` + ``ResNetClassifier`` pipeline on the wine data set;
* saves it with ``joblib.dump`` to a temporary directory and loads it back;
* checks that the loaded model makes exactly the same predictions;
* does the same round trip in memory with ``pickle``;
* saves the classifier alone with ``save_model``, the safe format (JSON and
  safetensors, no pickled code), and reads it back with ``load_model``.

The trained network is stored on the CPU, so a model fitted on a GPU also loads
on a machine without one. As with every pickle, only load pickles you trust, and
load them with the same versions of sklearn-resnet, torch and scikit-learn. Files
from ``save_model`` are data only: share those.
"""

import pickle
import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import ResNetClassifier, load_model, save_model

RANDOM_STATE = 0


def main():
    X, y = load_wine(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=RANDOM_STATE
    )
    model = make_pipeline(
        StandardScaler(),
        ResNetClassifier(depth=4, width=64, max_epochs=20, random_state=RANDOM_STATE),
    )
    model.fit(X_train, y_train)
    predictions = model.predict(X_test)
    probabilities = model.predict_proba(X_test)

    # joblib: write the whole pipeline to one file. A temporary directory keeps
    # the example from leaving files behind.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet_pipeline.joblib"
        joblib.dump(model, path)
        print(f"Saved with joblib: {path.name}, {path.stat().st_size / 1024:.1f} KiB")

        loaded = joblib.load(path)

    assert np.array_equal(loaded.predict(X_test), predictions)
    assert np.array_equal(loaded.predict_proba(X_test), probabilities)
    print(f"joblib round trip: {len(predictions)} identical predictions and probabilities")

    # pickle: the same round trip through bytes in memory.
    data = pickle.dumps(model)
    print(f"Pickled size: {len(data) / 1024:.1f} KiB")
    unpickled = pickle.loads(data)
    assert np.array_equal(unpickled.predict(X_test), predictions)
    print("pickle round trip: identical predictions")

    # The loaded model keeps its fitted attributes and can be used as before.
    clf = unpickled[-1]
    print(f"Loaded classifier: classes {clf.classes_.tolist()}, trained {clf.n_iter_} epochs")
    print(f"Test accuracy of the loaded pipeline: {unpickled.score(X_test, y_test):.3f}")

    # save_model: the safe format for one estimator (a Pipeline's other steps are saved
    # separately, or use a ResNetClassifier alone, which scales its inputs itself).
    scaled_test = model[0].transform(X_test)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(model[-1], Path(tmp) / "wine-resnet")
        print(f"save_model wrote {sorted(path.name for path in folder.iterdir())}")
        restored = load_model(folder)
    assert np.array_equal(restored.predict_proba(scaled_test), probabilities)
    print("save_model / load_model round trip: identical probabilities")


if __name__ == "__main__":
    main()
