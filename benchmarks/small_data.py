"""Errors on the two smallest classification sets, over many cross-validations.

On wine (178 samples) and breast cancer (569) one fold shuffle moves a score by a sample
or two, so the accuracy table cannot tell small changes to the defaults apart. This
script counts the misclassified samples of 5-fold cross-validations (stratified, fold
shuffle seed ``s`` for each ``s`` of ``--shuffles``), summed over the shuffles, for
variants of the defaults and for scikit-learn's ``MLPClassifier`` as the reference.
The models of fold ``f`` of shuffle ``s`` are seeded ``f + 10 * s``; an ensemble's
members ``k = 0, 1, ...`` are seeded ``f + 10 * s + 1000 * k`` and predict the mean of
their probabilities. Every fit uses one intra-op thread, so the counts do not depend on
``--jobs``. Run::

    python benchmarks/small_data.py --output small_data.md               # shuffles 0-4
    python benchmarks/small_data.py --shuffles 10 11 12 13 14 --variants defaults MLP

``--variants`` picks rows by their key (see ``VARIANTS``); ``--jobs`` runs that many
processes.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import ResNetClassifier

DATASETS = {"wine": load_wine, "breast_cancer": load_breast_cancer}
#: key -> (row label, parameters of ResNetClassifier, ensemble size); "MLP" is the reference.
VARIANTS = {
    "defaults": ("none", {}, 1),
    "batch64": ("`batch_size=64`", {"batch_size": 64}, 1),
    "batch128": ("`batch_size=128`", {"batch_size": 128}, 1),
    "depth4": ("`depth=4`", {"depth": 4}, 1),
    "standard64": (
        '`scaling="standard"`, `batch_size=64`',
        {"scaling": "standard", "batch_size": 64},
        1,
    ),
    "standard": ('`scaling="standard"`', {"scaling": "standard"}, 1),
    "quantile": ('`scaling="quantile"`', {"scaling": "quantile"}, 1),
    "dropout": ("`dropout=0.1`", {"dropout": 0.1}, 1),
    "smoothing": ("`label_smoothing=0.1` (RealMLP's default)", {"label_smoothing": 0.1}, 1),
    "no_early_stopping": ("`early_stopping=False`", {"early_stopping": False}, 1),
    "epochs50": ("`max_epochs=50`", {"max_epochs": 50}, 1),
    "lr3e-4": ("`lr=3e-4`", {"lr": 3e-4}, 1),
    "weight_decay0.1": ("`weight_decay=0.1`", {"weight_decay": 0.1}, 1),
    "ensemble5": ("mean probability of 5 independently seeded defaults", {}, 5),
    "ensemble5_standard64": (
        '5 seeds, each `scaling="standard"`, `batch_size=64`',
        {"scaling": "standard", "batch_size": 64},
        5,
    ),
    "MLP": ("scikit-learn's `MLPClassifier` (reference)", None, 1),
}


def _model(params: dict | None, seed: int):
    if params is None:
        return make_pipeline(StandardScaler(), MLPClassifier(max_iter=2000, random_state=seed))
    return ResNetClassifier(random_state=seed, **params)


def errors(variant: str, dataset: str, shuffle: int) -> int:
    """Misclassified samples of one 5-fold cross-validation."""
    torch.set_num_threads(1)
    _, params, members = VARIANTS[variant]
    X, y = DATASETS[dataset](return_X_y=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=shuffle)
    wrong = 0
    for fold, (train, test) in enumerate(folds.split(X, y)):
        probabilities = 0.0
        for member in range(members):
            seed = fold + 10 * shuffle + 1000 * member
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the MLP's convergence notes, if any
                model = _model(params, seed).fit(X[train], y[train])
            probabilities = probabilities + model.predict_proba(X[test])
        predicted = model.classes_[np.argmax(probabilities, axis=1)]
        wrong += int(np.sum(predicted != y[test]))
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffles", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1, help="processes to run in parallel")
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args()
    tasks = [(v, d, s) for v in args.variants for d in DATASETS for s in args.shuffles]
    results = Parallel(n_jobs=args.jobs)(delayed(errors)(*task) for task in tasks)
    counted = dict(zip(tasks, results, strict=True))
    shuffles = ", ".join(map(str, args.shuffles))
    header = "| change to the defaults | wine errors | breast cancer errors |"
    lines = [header, "|---|---:|---:|"]
    for variant in args.variants:
        cells = [sum(counted[variant, d, s] for s in args.shuffles) for d in DATASETS]
        lines.append(f"| {VARIANTS[variant][0]} | {cells[0]} | {cells[1]} |")
    footer = (
        f"\nErrors summed over {len(args.shuffles)} stratified 5-fold cross-validations "
        f"(fold shuffle seeds {shuffles}); wine has 178 samples, breast cancer 569. "
        f"torch {torch.__version__}, one intra-op thread per fit."
    )
    print("\n".join(lines) + "\n" + footer)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n" + footer + "\n")


if __name__ == "__main__":
    main()
