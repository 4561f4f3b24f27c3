"""Hyper-parameter search: ``OptunaSearchCV`` against ``RandomizedSearchCV`` and
optuna-integration's ``OptunaSearchCV``, at equal budgets.

Two tasks, each a Pipeline ``StandardScaler() -> ResNetClassifier``:

* digits (1,797 8x8 images, 10 classes) with the residual CNN (``input_shape=(1, 8, 8)``);
* breast_cancer (569 rows, 30 features, 2 classes) with the residual MLP.

A stratified 25 % test split is held out; each search gets the same budget of
``--n-trials`` candidate settings (default 20), each cross-validated with the same
``--cv`` folds (default 3), on the same space (the estimator's
``default_search_space()`` for its backbone), then refits the best setting on the whole
training part. Compared:

* ``ours``: :class:`sklearn_resnet.OptunaSearchCV` with TPE and its default pruning
  (``MedianPruner`` on the per-epoch validation score, fold by fold);
* ``random``: scikit-learn's ``RandomizedSearchCV`` on the same space (scipy
  distributions: log-uniform where Optuna's is logarithmic);
* ``optuna-integration``: ``optuna_integration.OptunaSearchCV`` with TPE, without pruning
  (its pruning needs ``partial_fit`` on the estimator, which a Pipeline lacks). Needs the
  ``bench`` extra (``pip install -e ".[bench]"``); skipped when it is not installed.

Every network uses early stopping (a 10 % validation part, which is also what our
search prunes on), ``max_epochs=--epochs`` and a fixed ``random_state``. Reported: the
best mean CV accuracy, the test accuracy of the refitted best model, the wall time of
the whole search (refit included, after one untimed warm-up fit per dataset) and, for
ours, the number of pruned trials.

Run it from the repository root::

    python benchmarks/search.py                      # 20 trials, 3 folds, 40 epochs
    python benchmarks/search.py --quick              # 4 trials, 2 folds, 3 epochs: a smoke run
    python benchmarks/search.py --output search.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings

import numpy as np
import optuna
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from scipy.stats import loguniform, uniform
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import RandomizedSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import OptunaSearchCV, ResNetClassifier

DATASETS = {
    "digits": (load_digits, {"input_shape": (1, 8, 8)}, "cnn"),
    "breast_cancer": (load_breast_cancer, {}, "mlp"),
}
SEARCHES = ("ours", "random", "optuna-integration")


class _IntLogUniform:
    """Integers drawn log-uniformly from [low, high], for ``RandomizedSearchCV``."""

    def __init__(self, low: int, high: int):
        self.dist = loguniform(low, high + 1)

    def rvs(self, random_state=None):
        return int(self.dist.rvs(random_state=random_state))


def scipy_space(space: dict) -> dict:
    """The Optuna space as ``RandomizedSearchCV`` distributions."""
    converted = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            converted[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution):
            converted[name] = (
                _IntLogUniform(dist.low, dist.high)
                if dist.log
                else list(range(dist.low, dist.high + 1, dist.step))
            )
        elif isinstance(dist, FloatDistribution):
            width = dist.high - dist.low
            converted[name] = (
                loguniform(dist.low, dist.high) if dist.log else uniform(dist.low, width)
            )
        else:
            raise TypeError(f"no scipy equivalent for {dist!r}")
    return converted


def make_pipeline(extra: dict, args) -> Pipeline:
    net = ResNetClassifier(
        max_epochs=args.epochs,
        early_stopping=True,
        random_state=0,
        device=args.device,
        **extra,
    )
    return Pipeline([("scale", StandardScaler()), ("net", net)])


def make_search(kind: str, pipe: Pipeline, space: dict, args):
    cv = StratifiedKFold(args.cv, shuffle=True, random_state=0)
    common = {"cv": cv, "n_jobs": args.n_jobs, "scoring": "accuracy"}
    if kind == "ours":
        return OptunaSearchCV(pipe, space, n_trials=args.n_trials, random_state=0, **common)
    if kind == "random":
        return RandomizedSearchCV(
            pipe, scipy_space(space), n_iter=args.n_trials, random_state=0, **common
        )
    from optuna_integration import OptunaSearchCV as IntegrationSearchCV

    return IntegrationSearchCV(
        pipe, space, n_trials=args.n_trials, random_state=0, verbose=0, **common
    )


def run(args) -> list[dict]:
    rows = []
    for name in args.datasets:
        loader, extra, backbone = DATASETS[name]
        X, y = loader(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X.astype(np.float32), y, test_size=0.25, stratify=y, random_state=0
        )
        space = {f"net__{k}": v for k, v in ResNetClassifier.default_search_space(backbone).items()}
        # Untimed warm-up: first-call costs (lazy imports, allocations) count for no one.
        make_pipeline(extra, args).set_params(net__max_epochs=1).fit(X_train, y_train)
        for kind in args.searches:
            try:
                search = make_search(kind, make_pipeline(extra, args), space, args)
            except ImportError as exc:
                print(f"skipping {kind}: {exc}", file=sys.stderr)
                continue
            start = time.perf_counter()
            search.fit(X_train, y_train)
            seconds = time.perf_counter() - start
            pruned = ""
            if kind == "ours":
                pruned = str(int(np.sum(search.cv_results_["status"] == "PRUNED")))
            rows.append(
                {
                    "dataset": name,
                    "search": kind,
                    "cv": search.best_score_,
                    "test": search.score(X_test, y_test),
                    "seconds": seconds,
                    "pruned": pruned,
                }
            )
            print(f"{name:14s} {kind:20s} done in {seconds:.1f} s", file=sys.stderr)
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = [
        f"Search budget: {args.n_trials} settings x {args.cv}-fold CV, max_epochs={args.epochs}, "
        f"n_jobs={args.n_jobs}, device={args.device} "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        "threads in this process).",
        "",
        "| dataset | search | best CV accuracy | test accuracy | wall time (s) | pruned trials |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['search']} | {row['cv']:.4f} | {row['test']:.4f} "
            f"| {row['seconds']:.1f} | {row['pruned']} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 trials, 2 folds, 3 epochs")
    parser.add_argument("--n-trials", type=int, default=20, help="settings per search (20)")
    parser.add_argument("--cv", type=int, default=3, help="cross-validation folds (3)")
    parser.add_argument("--epochs", type=int, default=40, help="max_epochs of each fit (40)")
    parser.add_argument("--n-jobs", type=int, default=1, help="parallel fits (1)")
    parser.add_argument(
        "--device", default="cpu", help="device of the networks (default cpu, as published)"
    )
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--searches", nargs="*", default=list(SEARCHES), choices=SEARCHES)
    parser.add_argument("--output", metavar="FILE.md", help="also write the table here")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_trials, args.cv, args.epochs = 4, 2, 3
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)  # optuna-integration's imports
        rows = run(args)
    table = markdown(rows, args)
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(table)


if __name__ == "__main__":
    main()
