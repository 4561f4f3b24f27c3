"""Plotting a training run: losses, validation accuracy and the best epoch.

This example

* fits a :class:`~sklearn_resnet.ResNetClassifier` with early stopping on the
  handwritten digits data set (it ships with scikit-learn);
* draws its training history with :func:`~sklearn_resnet.plot_history`: training
  and validation loss per epoch, the validation accuracy on a second axis, and a
  dotted line at the best epoch, whose weights the model keeps;
* writes the figure to a PNG file.

Run it as ``python plot_history.py [OUTPUT.png]``. Without an argument the figure
goes to a temporary directory that is removed afterwards, so the script leaves no
files behind. Plotting needs matplotlib: ``pip install 'sklearn-resnet[plot]'``.
"""

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # scripts only: draw to files, no window (leave it out in notebooks)

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_resnet import ResNetClassifier, plot_history

RANDOM_STATE = 0


def fit_model():
    """A small residual MLP on the digits, stopped early on a 20 % validation split."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=RANDOM_STATE
    )
    # A constant learning rate lets the validation loss level off before max_epochs,
    # so early stopping ends the run and restores the weights of the best epoch.
    clf = ResNetClassifier(
        depth=4,
        width=128,
        lr=3e-3,
        lr_schedule="constant",
        max_epochs=60,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=5,
        random_state=RANDOM_STATE,
    )
    clf.fit(X_train, y_train)
    print(
        f"Trained {clf.n_iter_} epochs; best epoch {clf.best_epoch_} with validation "
        f"accuracy {clf.best_validation_score_:.3f}; test accuracy {clf.score(X_test, y_test):.3f}"
    )
    return clf


def save_figure(clf, output: Path) -> Path:
    """Draw the training history of ``clf`` and write it to ``output`` as a PNG."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    plot_history(clf, ax=ax)
    ax.set_title("ResNetClassifier on the digits: training history")
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def main(argv):
    clf = fit_model()
    if len(argv) > 1:
        output = save_figure(clf, Path(argv[1]))
        print(f"Wrote {output}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        output = save_figure(clf, Path(tmp) / "history.png")
        print(f"Wrote {output.name} ({output.stat().st_size / 1024:.1f} KiB) to a temporary folder")


if __name__ == "__main__":
    main(sys.argv)
