"""Hyperparameter search with ``GridSearchCV``.

ResNet estimators are ordinary scikit-learn estimators, so the model-selection
tools work unchanged. This example tunes the depth and learning rate of a
:class:`~sklearn_resnet.ResNetClassifier` inside a ``Pipeline`` with
``GridSearchCV`` (3-fold cross-validation, two fits in parallel), then scores
the refitted best pipeline on a held-out test set.

Pipeline steps are addressed as ``<step name>__<parameter>``; here the
classifier step is called ``clf``, so its depth is ``clf__depth``.
"""

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import ResNetClassifier

RANDOM_STATE = 0


def main():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=RANDOM_STATE
    )

    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            # A narrow network and 20 epochs keep each of the 13 fits (12 for the
            # search, 1 refit) to about a second on a laptop CPU.
            ("clf", ResNetClassifier(width=64, max_epochs=20, random_state=RANDOM_STATE)),
        ]
    )

    # Residual MLP depth is 2n + 2 for n residual blocks: 4 is one block, 6 two.
    param_grid = {
        "clf__depth": [4, 6],
        "clf__lr": [1e-3, 3e-3],
    }
    search = GridSearchCV(pipe, param_grid, cv=3, scoring="accuracy", n_jobs=2)
    search.fit(X_train, y_train)

    # cv_results_ holds one entry per candidate; print them best first.
    results = search.cv_results_
    print("depth      lr  mean accuracy (std)")
    for i in np.argsort(results["rank_test_score"], kind="stable"):
        params = results["params"][i]
        mean, std = results["mean_test_score"][i], results["std_test_score"][i]
        print(f"{params['clf__depth']:>5}  {params['clf__lr']:.0e}  {mean:.3f} ({std:.3f})")
    print()
    print(f"Best parameters: {search.best_params_}")
    print(f"Best cross-validation accuracy: {search.best_score_:.3f}")

    # GridSearchCV refits the best pipeline on the whole training split.
    print(f"Test accuracy of the refitted pipeline: {search.score(X_test, y_test):.3f}")


if __name__ == "__main__":
    main()
