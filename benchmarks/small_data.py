"""Errors on the two smallest classification sets, over many cross-validations.

On wine (178 samples) and breast cancer (569) one fold shuffle moves a score by a sample
or two, so the accuracy table cannot tell small changes to the defaults apart. This
script counts the misclassified samples of 5-fold cross-validations (stratified, fold
shuffle seed ``s`` for each ``s`` of ``--shuffles``), summed over the shuffles, for
variants of the defaults and for scikit-learn's ``MLPClassifier`` as the reference.
Most variants change one network of the previous release's defaults (``PREVIOUS_DEFAULTS``),
as they were counted then; ``defaults`` and the ``members*`` rows are of this release,
whose MLP classifier fits an ensemble of eight networks below 1,000 training rows.
``--datasets`` adds four more small sets (two generated 2-D problems, the first 500
digits and a 600-row ``make_classification``) to check that a finding holds beyond
the two, and larger ones (all digits, ``make_classification`` with 3,000 to 10,000
rows) to see where it stops. ``--log-loss`` shows the mean log loss per prediction (minus
the log of the probability given to the true class) instead of the errors.
The models of fold ``f`` of shuffle ``s`` are seeded ``f + 10 * s``; an ensemble's
members ``k = 0, 1, ...`` are seeded ``f + 10 * s + 1000 * k`` and predict the mean of
their probabilities. Every fit uses one intra-op thread, so the counts do not depend on
``--jobs``. Run::

    python benchmarks/small_data.py --output small_data.md               # shuffles 0-4
    python benchmarks/small_data.py --shuffles $(seq 0 19) --variants defaults MLP
    python benchmarks/small_data.py --datasets wine breast_cancer moons circles digits500 \
        classification600 --variants defaults previous_defaults early_stopping MLP MLP_3x64
    python benchmarks/small_data.py --log-loss --variants defaults previous_defaults MLP

``--variants`` picks rows by their key (see ``VARIANTS``); ``--jobs`` runs that many
processes.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import torch
from _report import publish
from accuracy import make_noisy_classification
from joblib import Parallel, delayed
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_circles, make_moons
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import ResNetClassifier
from sklearn_resnet.defaults import SMALL_DATA_ROWS, auto_batch_size

#: key -> function returning (X, y).
DATASETS = {
    "wine": lambda: load_wine(return_X_y=True),
    "breast_cancer": lambda: load_breast_cancer(return_X_y=True),
    "moons": lambda: make_moons(300, noise=0.25, random_state=0),
    "circles": lambda: make_circles(300, noise=0.1, factor=0.5, random_state=0),
    "digits500": lambda: tuple(a[:500] for a in load_digits(return_X_y=True)),
    # The accuracy benchmark's make_classification at 600 rows, and larger sets for where
    # a finding stops holding.
    "classification600": lambda: make_noisy_classification(600),
    "digits": lambda: load_digits(return_X_y=True),
    "classification3000": make_noisy_classification,
    "classification5000": lambda: make_noisy_classification(5000),
    "classification7000": lambda: make_noisy_classification(7000),
    "classification10000": lambda: make_noisy_classification(10000),
}
#: key -> hidden layer sizes of the scikit-learn MLPClassifier rows.
MLP_REFERENCES = {"MLP": (100,), "MLP_3x64": (64, 64, 64)}
#: One network of the previous release's defaults, which every variant but those of
#: ``ON_THIS_RELEASE`` changes; with the batch size its ``"auto"`` gave (``auto_batch_size``)
#: below the small-data choices' 1,000 rows, where those take 256. On more rows the two
#: releases' defaults are the same.
PREVIOUS_DEFAULTS = {"n_members": 1, "depth": 8, "scaling": "robust"}


def _members(n_members: int, depth: int = 4, scaling: str = "standard") -> tuple:
    """The variant of ``n_members`` networks trained together on batches of 256, each with
    ``depth`` and ``scaling`` (this release's small-data ensemble at 8, 4, ``"standard"``).
    The parameters are all given, so they do not depend on the small-data choices."""
    params = {"n_members": n_members, "batch_size": 256, "depth": depth, "scaling": scaling}
    label = ", ".join(f"`{name}={json.dumps(value)}`" for name, value in params.items())
    return label, params, 1


#: key -> (row label, parameters of ResNetClassifier or None for the MLP rows, ensemble size).
VARIANTS = {
    "defaults": ("the defaults", {}, 1),
    "previous_defaults": ("none (one network of the previous defaults)", {}, 1),
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
    "early_stopping": (
        "`early_stopping=True` (the default from 200 rows before)",
        {"early_stopping": True},
        1,
    ),
    "no_early_stopping": ("`early_stopping=False`", {"early_stopping": False}, 1),
    "refit": (
        '`early_stopping="refit"` (the holdout, then every row for its `best_epoch_` epochs)',
        {"early_stopping": "refit"},
        1,
    ),
    "refit0.2": (
        '`early_stopping="refit"`, `validation_fraction=0.2`',
        {"early_stopping": "refit", "validation_fraction": 0.2},
        1,
    ),
    "no_early_stopping_epochs300": (
        "`early_stopping=False`, `max_epochs=300`",
        {"early_stopping": False, "max_epochs": 300},
        1,
    ),
    "batch256": ("`batch_size=256`", {"batch_size": 256}, 1),
    "batch256_depth4": ("`batch_size=256`, `depth=4`", {"batch_size": 256, "depth": 4}, 1),
    "batch256_depth4_standard": (
        '`batch_size=256`, `depth=4`, `scaling="standard"`',
        {"batch_size": 256, "depth": 4, "scaling": "standard"},
        1,
    ),
    "epochs50": ("`max_epochs=50`", {"max_epochs": 50}, 1),
    "lr3e-4": ("`lr=3e-4`", {"lr": 3e-4}, 1),
    "weight_decay0.1": ("`weight_decay=0.1`", {"weight_decay": 0.1}, 1),
    "ensemble5": ("mean probability of 5 independently seeded previous defaults", {}, 5),
    "ensemble5_standard64": (
        '5 seeds, each `scaling="standard"`, `batch_size=64`',
        {"scaling": "standard", "batch_size": 64},
        5,
    ),
    "ensemble5_batch256_depth4_standard": (
        '5 seeds, each `batch_size=256`, `depth=4`, `scaling="standard"`',
        {"batch_size": 256, "depth": 4, "scaling": "standard"},
        5,
    ),
    "ensemble5_batch256_depth4_standard_epochs300": (
        '5 seeds, each `batch_size=256`, `depth=4`, `scaling="standard"`, `max_epochs=300`',
        {"batch_size": 256, "depth": 4, "scaling": "standard", "max_epochs": 300},
        5,
    ),
    "members5_batch256_depth4_standard": _members(5),
    "members5_batch256_depth4": _members(5, scaling="robust"),
    "members8_batch256_depth4_standard": _members(8),
    "members8_batch256_depth4": _members(8, scaling="robust"),
    "members8_batch256_depth4_quantile": _members(8, scaling="quantile"),
    "members8_batch256_depth6_standard": _members(8, depth=6),
    "members8_batch256_depth8_standard": _members(8, depth=8),
    "MLP": ("scikit-learn's `MLPClassifier` (reference)", None, 1),
    "MLP_3x64": ("scikit-learn's `MLPClassifier`, three hidden layers of 64", None, 1),
}
#: Variants of this release's defaults (an ensemble of eight networks below 1,000 rows).
ON_THIS_RELEASE = {"defaults", *(key for key in VARIANTS if key.startswith("members"))}


def _model(variant: str, seed: int, n_rows: int):
    """The model of ``variant`` for a fold of ``n_rows`` training rows."""
    params = VARIANTS[variant][1]
    if params is None:
        hidden = MLP_REFERENCES[variant]
        mlp = MLPClassifier(hidden, max_iter=2000, random_state=seed)
        return make_pipeline(StandardScaler(), mlp)
    if variant not in ON_THIS_RELEASE:
        previous = dict(PREVIOUS_DEFAULTS)
        if n_rows < SMALL_DATA_ROWS:  # a holdout of these sets keeps the power of two
            previous["batch_size"] = auto_batch_size(n_rows)
        params = {**previous, **params}
    return ResNetClassifier(random_state=seed, **params)


def errors(variant: str, dataset: str, shuffle: int) -> tuple[int, float]:
    """Misclassified samples of one 5-fold cross-validation, and the log loss summed over
    every test sample (minus the log of the probability given to its true class)."""
    torch.set_num_threads(1)
    members = VARIANTS[variant][2]
    X, y = DATASETS[dataset]()
    folds = StratifiedKFold(5, shuffle=True, random_state=shuffle)
    wrong, log_loss = 0, 0.0
    for fold, (train, test) in enumerate(folds.split(X, y)):
        probabilities = 0.0
        for member in range(members):
            seed = fold + 10 * shuffle + 1000 * member
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the MLP's convergence notes, if any
                model = _model(variant, seed, len(train)).fit(X[train], y[train])
            probabilities = probabilities + model.predict_proba(X[test])
        probabilities = probabilities / members
        predicted = model.classes_[np.argmax(probabilities, axis=1)]
        wrong += int(np.sum(predicted != y[test]))
        true = probabilities[np.arange(len(test)), np.searchsorted(model.classes_, y[test])]
        log_loss -= float(np.sum(np.log(np.clip(true, 1e-15, None))))
    return wrong, log_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffles", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument(
        "--datasets", nargs="+", choices=list(DATASETS), default=["wine", "breast_cancer"]
    )
    parser.add_argument("--jobs", type=int, default=1, help="processes to run in parallel")
    parser.add_argument(
        "--log-loss",
        action="store_true",
        help="show the mean log loss per sample instead of the errors",
    )
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args()
    tasks = [(v, d, s) for v in args.variants for d in args.datasets for s in args.shuffles]
    results = Parallel(n_jobs=args.jobs)(delayed(errors)(*task) for task in tasks)
    metric = 1 if args.log_loss else 0
    counted = {task: result[metric] for task, result in zip(tasks, results, strict=True)}
    shuffles = ", ".join(map(str, args.shuffles))
    heading = "log loss" if args.log_loss else "errors"
    lines = [
        "| change to the defaults | " + " | ".join(f"{d} {heading}" for d in args.datasets) + " |",
        "|---|" + "---:|" * len(args.datasets),
    ]
    n_samples = {d: len(DATASETS[d]()[1]) for d in args.datasets}
    for variant in args.variants:
        cells = [sum(counted[variant, d, s] for s in args.shuffles) for d in args.datasets]
        if args.log_loss:  # the mean over every prediction
            shown = [
                f"{c / (n_samples[d] * len(args.shuffles)):.4f}"
                for c, d in zip(cells, args.datasets, strict=True)
            ]
        else:
            shown = list(map(str, cells))
        lines.append(f"| {VARIANTS[variant][0]} | " + " | ".join(shown) + " |")
    sizes = ", ".join(f"{d} {n}" for d, n in n_samples.items())
    summary = "Mean log loss per prediction" if args.log_loss else "Errors summed"
    note = (
        f"{summary} over {len(args.shuffles)} stratified 5-fold cross-validations "
        f"(fold shuffle seeds {shuffles}); samples: {sizes}. "
        f"torch {torch.__version__}, one intra-op thread per fit."
    )
    publish(lines, note, args.output)


if __name__ == "__main__":
    main()
