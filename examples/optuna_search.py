"""Tuning with OptunaSearchCV and plotting the search.

This example

* tunes a ``ResNetClassifier`` on the breast cancer data set (it ships with
  scikit-learn) with ``OptunaSearchCV``: the estimator's default search space, TPE
  sampling, and median pruning of trials whose per-epoch validation scores fall
  behind, with a small budget of trials and epochs;
* prints the best setting, its cross-validated accuracy and the test accuracy of the
  refitted best model;
* draws the optimisation history (each trial's mean CV accuracy and the best so far;
  the legend counts the pruned trials it leaves out) and the parameter importances,
  and writes both to one PNG file.

Run it as ``python optuna_search.py [OUTPUT.png]``. Without an argument the figure goes
to a temporary directory that is removed afterwards. Plotting needs matplotlib:
``pip install 'sklearn-resnet[plot]'``.
"""

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # scripts only: draw to files, no window (leave it out in notebooks)

import matplotlib.pyplot as plt
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from sklearn_resnet import (
    OptunaSearchCV,
    ResNetClassifier,
    plot_optimization_history,
    plot_param_importances,
)

RANDOM_STATE = 0


def main(argv):
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=RANDOM_STATE
    )
    # max_epochs keeps each trial short; early stopping reports the validation score
    # after every epoch, which is what the pruner compares across trials.
    estimator = ResNetClassifier(max_epochs=15, early_stopping=True, random_state=RANDOM_STATE)
    search = OptunaSearchCV(estimator, n_trials=12, cv=3, random_state=RANDOM_STATE)
    search.fit(X_train, y_train)

    pruned = sum(trial.state.name == "PRUNED" for trial in search.study_.trials)
    print(f"{search.n_trials} trials, {pruned} pruned")
    best = [
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value!r}"
        for name, value in search.best_params_.items()
    ]
    print("Best setting:", ", ".join(best))
    print(f"Best CV accuracy: {search.best_score_:.3f}")
    print(f"Test accuracy of the refitted best model: {search.score(X_test, y_test):.3f}")

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    plot_optimization_history(search, ax=left)
    plot_param_importances(search, ax=right)
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(argv[1]) if len(argv) > 1 else Path(tmp) / "optuna_search.png"
        figure.savefig(output, dpi=100)
        print(f"Wrote {output.name}")


if __name__ == "__main__":
    main(sys.argv)
