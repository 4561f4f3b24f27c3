"""Accuracy of the estimators with default parameters against scikit-learn's models.

For each dataset (all shipped with scikit-learn or generated), 5-fold cross-validation
(stratified for classification, shuffled with seed 0) of:

- ours: ``ResNetClassifier()`` / ``ResNetRegressor()`` with default parameters
  (``input_shape`` for the CNN rows, which is data description, not tuning);
- ``MLPClassifier`` / ``MLPRegressor`` with defaults after a ``StandardScaler``, with
  ``max_iter`` raised to 2,000 (``--mlp-max-iter``): the classifiers converge well
  within it; the regressors, on unscaled targets, stop at the cap, and the table's
  notes count every fit that stopped with a ``ConvergenceWarning``;
- ``HistGradientBoostingClassifier`` / ``HistGradientBoostingRegressor`` with defaults;
- ``LogisticRegression`` / ``Ridge`` after a ``StandardScaler``.

Scores are accuracy (classification) and R² (regression), mean ± std over the folds,
with the mean fit time. Run::

    python benchmarks/accuracy.py --output accuracy.md

``--repeats N`` repeats the cross-validation with N different fold shuffles (repeat 0
is the table above) and adds, per rival, in how many repeats ours scored higher: one
shuffle of 178 wine samples moves a score by a sample or two, and this shows whether a
lead survives another split.

``--mlp-max-iter N`` sets the MLPs' ``max_iter`` (fully converged, they need about
28,000 iterations on diabetes and 3,000 to 4,000 on ``make_regression``)::

    python benchmarks/accuracy.py --datasets diabetes make_regression --models ours MLP \
        --mlp-max-iter 50000

``--quick`` runs 2 folds on a subset of the datasets; ``--datasets`` (keys: digits,
digits_cnn, breast_cancer, wine, make_classification, waveforms, diabetes,
make_regression) and ``--models`` pick rows and columns; ``--set key=value`` overrides
a parameter of our estimators (for experiments; the published table uses defaults).
``--device`` is where ours train: ``cpu`` by default, as in the published table (the
rivals always run on the CPU).
"""

from __future__ import annotations

import argparse
import ast
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_wine,
    make_classification,
    make_regression,
)
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import ResNetClassifier, ResNetRegressor


@dataclass
class Dataset:
    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    task: str
    input_shape: tuple[int, ...] | None = None
    key: str = ""

    def __post_init__(self):
        self.key = self.key or self.name


def make_noisy_classification(n_samples: int = 3000):
    """``make_classification`` with 20 features (10 informative), 3 classes and 5 % of
    the labels flipped at random."""
    return make_classification(
        n_samples=n_samples,
        n_features=20,
        n_informative=10,
        n_classes=3,
        flip_y=0.05,
        random_state=0,
    )


def make_waveforms(n_samples: int = 1500, length: int = 128, seed: int = 0):
    """Noisy 1-D signals of four pulse shapes at random positions (4 classes).

    Each signal holds one pulse - a Gaussian bump, a double bump, a square pulse or a
    short chirp - at a random position with random amplitude, in Gaussian noise. The
    class depends on the shape, not the position, which suits a convolutional net.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(32) - 16.0
    shapes = [
        np.exp(-(t**2) / 18),
        np.exp(-((t - 6) ** 2) / 6) + np.exp(-((t + 6) ** 2) / 6),
        (np.abs(t) < 6).astype(float),
        np.sin(t**2 / 12) * np.exp(-(t**2) / 80),
    ]
    y = rng.integers(0, len(shapes), n_samples)
    X = rng.normal(scale=0.6, size=(n_samples, length))
    starts = rng.integers(0, length - len(t), n_samples)
    amplitude = rng.uniform(0.7, 1.5, n_samples)
    for i in range(n_samples):
        X[i, starts[i] : starts[i] + len(t)] += amplitude[i] * shapes[y[i]]
    return X.astype(np.float32), y


DATASETS = [
    Dataset("digits", lambda: load_digits(return_X_y=True), "classification"),
    Dataset(
        "digits (CNN 1x8x8)",
        lambda: load_digits(return_X_y=True),
        "classification",
        (1, 8, 8),
        key="digits_cnn",
    ),
    Dataset("breast_cancer", lambda: load_breast_cancer(return_X_y=True), "classification"),
    Dataset("wine", lambda: load_wine(return_X_y=True), "classification"),
    Dataset("make_classification", make_noisy_classification, "classification"),
    Dataset(
        "waveforms (CNN 1x128)",
        lambda: make_waveforms(),
        "classification",
        (1, 128),
        key="waveforms",
    ),
    Dataset("diabetes", lambda: load_diabetes(return_X_y=True), "regression"),
    Dataset(
        "make_regression",
        lambda: make_regression(
            n_samples=2000, n_features=20, n_informative=10, noise=10.0, random_state=0
        ),
        "regression",
    ),
]
QUICK = ["digits", "breast_cancer", "diabetes", "wine"]


MODELS = ("ours", "MLP", "HGB", "linear")


def models(
    dataset: Dataset, seed: int, overrides: dict, mlp_max_iter: int = 2000
) -> dict[str, object]:
    """The competitors for one dataset and fold seed."""
    if dataset.task == "classification":
        ours = ResNetClassifier(input_shape=dataset.input_shape, random_state=seed, **overrides)
        return {
            "ours": ours,
            "MLP": make_pipeline(
                StandardScaler(), MLPClassifier(max_iter=mlp_max_iter, random_state=seed)
            ),
            "HGB": HistGradientBoostingClassifier(random_state=seed),
            "linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        }
    return {
        "ours": ResNetRegressor(input_shape=dataset.input_shape, random_state=seed, **overrides),
        "MLP": make_pipeline(
            StandardScaler(), MLPRegressor(max_iter=mlp_max_iter, random_state=seed)
        ),
        "HGB": HistGradientBoostingRegressor(random_state=seed),
        "linear": make_pipeline(StandardScaler(), Ridge()),
    }


def evaluate(
    dataset: Dataset,
    n_folds: int,
    names: list[str],
    overrides: dict,
    repeats: int = 1,
    mlp_max_iter: int = 2000,
) -> dict:
    """Test scores and fit times per model over the folds of each repeat.

    Repeat ``r`` shuffles the folds with seed ``r`` and seeds the models of fold ``f``
    with ``f + n_folds * r``, so repeat 0 is the published table's cross-validation.
    ``scores`` holds one list of fold scores per repeat; ``unconverged`` counts the fits
    that ended with a ``ConvergenceWarning``.
    """
    X, y = dataset.load()
    X = np.asarray(X, dtype=np.float32)
    results = {name: {"scores": [], "times": [], "unconverged": 0} for name in names}
    for repeat in range(repeats):
        splitter = (
            StratifiedKFold(n_folds, shuffle=True, random_state=repeat)
            if dataset.task == "classification"
            else KFold(n_folds, shuffle=True, random_state=repeat)
        )
        for name in names:
            results[name]["scores"].append([])
        for fold, (train, test) in enumerate(splitter.split(X, y)):
            candidates = models(dataset, fold + n_folds * repeat, overrides, mlp_max_iter)
            for name in names:
                model = candidates[name]
                start = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    model.fit(X[train], y[train])
                results[name]["times"].append(time.perf_counter() - start)
                capped = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
                results[name]["unconverged"] += bool(capped)
                for w in caught:  # any other warning is shown as usual
                    if w not in capped:
                        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
                results[name]["scores"][-1].append(model.score(X[test], y[test]))
    return results


def repeats_ahead(results: dict, name: str, other: str) -> int:
    """In how many repeats ``name``'s mean score is above ``other``'s."""
    pairs = zip(results[name]["scores"], results[other]["scores"], strict=True)
    return sum(np.mean(mine) > np.mean(theirs) for mine, theirs in pairs)


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 folds, 4 datasets")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="repeat the cross-validation with this many fold shuffles (seeds 0, 1, ...)",
    )
    keys = [d.key for d in DATASETS]
    parser.add_argument("--datasets", nargs="*", choices=keys, help="dataset keys (default: all)")
    parser.add_argument("--models", nargs="*", choices=MODELS, default=list(MODELS))
    parser.add_argument("--set", action="append", default=[], help="key=value for ours")
    parser.add_argument("--device", default="cpu", help="device of ours (default cpu)")
    parser.add_argument("--mlp-max-iter", type=int, default=2000, help="max_iter of the MLP rivals")
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args()
    overrides = {"device": args.device, **parse_overrides(args.set)}
    folds = 2 if args.quick else args.folds
    wanted = args.datasets or (QUICK if args.quick else keys)
    chosen = [d for d in DATASETS if d.key in wanted]
    rivals = [m for m in args.models if m != "ours"] if "ours" in args.models else []
    columns = [*args.models, "fit time (s): " + " / ".join(args.models)]
    if args.repeats > 1 and rivals:
        columns.append("repeats ours is ahead: " + " / ".join(rivals))
    header = "| dataset | metric | " + " | ".join(columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 2)]
    print(header, flush=True)
    print(lines[1], flush=True)
    notes = []
    for dataset in chosen:
        results = evaluate(dataset, folds, args.models, overrides, args.repeats, args.mlp_max_iter)
        n_fits = folds * args.repeats
        notes += [
            f"- {dataset.name}: {name} stopped without converging in "
            f"{results[name]['unconverged']} of {n_fits} fits."
            for name in args.models
            if results[name]["unconverged"]
        ]
        metric = "accuracy" if dataset.task == "classification" else "R²"
        # Mean and standard deviation over every fold of every repeat.
        best = max(np.mean(results[m]["scores"]) for m in args.models)
        cells = []
        for name in args.models:
            mean, std = np.mean(results[name]["scores"]), np.std(results[name]["scores"])
            cell = f"{mean:.4f} ± {std:.4f}"
            cells.append(f"**{cell}**" if mean == best else cell)
        times = " / ".join(f"{np.mean(results[m]['times']):.1f}" for m in args.models)
        line = f"| {dataset.name} | {metric} | " + " | ".join(cells) + f" | {times} |"
        if args.repeats > 1 and rivals:
            ahead = " / ".join(f"{repeats_ahead(results, 'ours', m)}" for m in rivals)
            line += f" {ahead} of {args.repeats} |"
        lines.append(line)
        print(line, flush=True)
    repeated = f", repeated {args.repeats} times" if args.repeats > 1 else ""
    footer = (
        f"\n{folds}-fold cross-validation{repeated}; MLP max_iter={args.mlp_max_iter}; "
        f"ours on {args.device}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads."
    )
    if notes:
        footer += (
            "\n\nFits that ended with a ConvergenceWarning (an MLP that stopped at its "
            "iteration cap; ours, a fit that diverged and was rolled back):\n"
        )
        footer += "\n".join(notes)
    print(footer)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n" + footer + "\n")


if __name__ == "__main__":
    main()
