"""R² of the regressor's early-stopping settings on small regression sets, over many
cross-validations.

An MLP regressor's ``early_stopping="auto"`` is ``"refit"`` from 80 rows: it holds out a
fifth of the rows (``validation_fraction="auto"``; at least 20) to find the epoch of least
validation loss, then trains the network it keeps on every row for that many epochs. This
script compares that with the holdout fit alone (``early_stopping=True``, a tenth held out),
with training on every row for all epochs, and with scikit-learn's ``MLPRegressor`` and
``Ridge`` as references, on diabetes and on generated sets of several sizes (Friedman's
first problem, which is non-linear, and a noisy linear ``make_regression``). For each 5-fold
cross-validation (fold shuffle seed ``s`` of ``--shuffles``) it computes R² over the
out-of-fold predictions of every row; the table shows the mean over the shuffles. The models
of fold ``f`` of shuffle ``s`` are seeded ``f + 10 * s``. Every fit uses one intra-op
thread, so the scores do not depend on ``--jobs``. Run::

    python benchmarks/regression_data.py --jobs 2 --output regression_data.md

``--variants`` and ``--datasets`` pick rows and columns by their keys; by default the
published ones. The width and epoch-choice variants and the sets of 100, 150, 5,000 and
10,000 rows are for experiments::

    python benchmarks/regression_data.py --jobs 2 --variants validation0.1 width32 width64 \
        width128 --datasets diabetes friedman300 friedman500 friedman1000 linear300
    python benchmarks/regression_data.py --jobs 2 --variants defaults validation0.1 holdout MLP \
        --datasets friedman5000
    python benchmarks/regression_data.py --jobs 2 --variants validation0.1 validation0.2 \
        patience20 validation0.2_patience20 --datasets diabetes friedman300 friedman500 \
        friedman1000 linear300
    python benchmarks/regression_data.py --jobs 2 --variants defaults no_early_stopping MLP \
        --datasets diabetes100 friedman100 linear100 diabetes150 friedman150 linear150
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from _report import publish
from joblib import Parallel, delayed
from sklearn.datasets import load_diabetes, make_friedman1, make_regression
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import ResNetRegressor


def _diabetes_sample(n_samples: int):
    """``n_samples`` rows of diabetes drawn at random (seed 0)."""
    X, y = load_diabetes(return_X_y=True)
    rows = np.random.default_rng(0).permutation(len(y))[:n_samples]
    return X[rows], y[rows]


#: key -> function returning (X, y).
DATASETS = {
    "diabetes": lambda: load_diabetes(return_X_y=True),
    "diabetes100": lambda: _diabetes_sample(100),
    "diabetes150": lambda: _diabetes_sample(150),
    "friedman100": lambda: make_friedman1(100, noise=1.0, random_state=0),
    "friedman150": lambda: make_friedman1(150, noise=1.0, random_state=0),
    "friedman300": lambda: make_friedman1(300, noise=1.0, random_state=0),
    "friedman500": lambda: make_friedman1(500, noise=1.0, random_state=0),
    "friedman1000": lambda: make_friedman1(1000, noise=1.0, random_state=0),
    "friedman2000": lambda: make_friedman1(2000, noise=1.0, random_state=0),
    "friedman5000": lambda: make_friedman1(5000, noise=1.0, random_state=0),
    "friedman10000": lambda: make_friedman1(10000, noise=1.0, random_state=0),
    "linear100": lambda: make_regression(100, 20, n_informative=10, noise=20, random_state=0),
    "linear150": lambda: make_regression(150, 20, n_informative=10, noise=20, random_state=0),
    "linear300": lambda: make_regression(300, 20, n_informative=10, noise=20, random_state=0),
    "linear1000": lambda: make_regression(1000, 20, n_informative=10, noise=20, random_state=0),
}
#: key -> (row label, parameters of ResNetRegressor, or a function of the seed that
#: returns a scikit-learn model).
VARIANTS = {
    "defaults": ('defaults (`early_stopping="auto"`: `"refit"` from 80 rows)', {}),
    "holdout": ("`early_stopping=True` (the holdout fit alone)", {"early_stopping": True}),
    "no_early_stopping": ("`early_stopping=False`", {"early_stopping": False}),
    # The refit's choice of epochs: from a tenth held out (the defaults before a fifth), from
    # a fifth, or with more patience.
    "validation0.1": ("`validation_fraction=0.1`", {"validation_fraction": 0.1}),
    "validation0.2": ("`validation_fraction=0.2`", {"validation_fraction": 0.2}),
    "patience20": (
        "`n_iter_no_change=20, validation_fraction=0.1`",
        {"n_iter_no_change": 20, "validation_fraction": 0.1},
    ),
    "refit0.2": (
        '`early_stopping="refit", validation_fraction=0.2`',
        {"early_stopping": "refit", "validation_fraction": 0.2},
    ),
    "validation0.2_patience20": (
        "`validation_fraction=0.2, n_iter_no_change=20`",
        {"validation_fraction": 0.2, "n_iter_no_change": 20},
    ),
    # Narrower than the default 256, with the refit and a tenth held out (as measured).
    **{
        f"width{width}": (
            f"`width={width}, validation_fraction=0.1`",
            {"width": width, "validation_fraction": 0.1},
        )
        for width in (32, 64, 128)
    },
    "MLP": (
        "scikit-learn's `MLPRegressor` (`max_iter=2000`, reference)",
        lambda seed: make_pipeline(
            StandardScaler(), MLPRegressor(max_iter=2000, random_state=seed)
        ),
    ),
    "ridge": ("`Ridge` (reference)", lambda seed: make_pipeline(StandardScaler(), Ridge())),
}

#: The rows of the table in docs/benchmarks.md.
PUBLISHED = ["defaults", "holdout", "no_early_stopping", "MLP", "ridge"]
#: The columns of that table.
#: Sets for experiments only: below 200 rows, and the largest.
EXPERIMENT_DATASETS = (
    *("diabetes100", "friedman100", "linear100", "diabetes150", "friedman150", "linear150"),
    *("friedman5000", "friedman10000"),
)
PUBLISHED_DATASETS = [key for key in DATASETS if key not in EXPERIMENT_DATASETS]


def _model(variant: str, seed: int):
    spec = VARIANTS[variant][1]
    if callable(spec):
        return spec(seed)
    return ResNetRegressor(random_state=seed, **spec)


def score(variant: str, dataset: str, shuffle: int) -> float:
    """R² of the out-of-fold predictions of one 5-fold cross-validation."""
    torch.set_num_threads(1)
    X, y = DATASETS[dataset]()
    predicted = np.empty_like(y, dtype=float)
    for fold, (train, test) in enumerate(KFold(5, shuffle=True, random_state=shuffle).split(X)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the MLP stops at its cap on unscaled targets
            model = _model(variant, fold + 10 * shuffle).fit(X[train], y[train])
        predicted[test] = model.predict(X[test])
    return float(r2_score(y, predicted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffles", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=PUBLISHED)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=PUBLISHED_DATASETS)
    parser.add_argument("--jobs", type=int, default=1, help="processes to run in parallel")
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args()
    tasks = [(v, d, s) for v in args.variants for d in args.datasets for s in args.shuffles]
    scores = Parallel(n_jobs=args.jobs)(delayed(score)(*task) for task in tasks)
    results = dict(zip(tasks, scores, strict=True))
    lines = [
        "| setting | " + " | ".join(args.datasets) + " |",
        "|---|" + "---:|" * len(args.datasets),
    ]
    for variant in args.variants:
        means = [np.mean([results[variant, d, s] for s in args.shuffles]) for d in args.datasets]
        lines.append(f"| {VARIANTS[variant][0]} | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    note = (
        f"R² of the out-of-fold predictions, mean over {len(args.shuffles)} 5-fold "
        f"cross-validations (fold shuffle seeds {', '.join(map(str, args.shuffles))}). "
        f"torch {torch.__version__}, one intra-op thread per fit."
    )
    publish(lines, note, args.output)


if __name__ == "__main__":
    main()
