"""Training and prediction overhead of ``ResNetClassifier`` against plain torch and skorch.

The same residual MLP (``build_backbone("mlp", (64,), 10, depth=10, width=256)``: a
linear stem, 4 residual blocks of width 256 and a linear head) is trained on the same
synthetic data with the same optimizer (AdamW, ``lr=1e-3``, ``weight_decay=1e-2``),
batch size 256, number of epochs and a constant learning rate, without validation or
early stopping, four ways:

* ``ResNetClassifier`` (this package);
* a plain hand-written torch loop: one ``torch.randperm`` per epoch and batches
  gathered by fancy indexing, ``zero_grad`` / ``cross_entropy`` / ``backward`` / ``step``,
  with ``torch.optim.AdamW`` as most users create it (its default implementation);
* the same loop with ``AdamW(..., fused=True)``, the single-kernel implementation that
  ``ResNetClassifier`` selects on CPU and CUDA; against this row the estimator's
  remaining difference is framework overhead alone;
* stock ``skorch.NeuralNetClassifier`` with its default ``Dataset`` and ``DataLoader``
  (shuffling each epoch, as the loops do).

Each timed fit starts from numpy arrays and ends with a trained model, so it includes
building the network, the optimizer and the tensors. Fit speed is reported as training
samples per second (``n_samples * epochs / wall time``) and as a ratio to the plain loop
with the default AdamW (higher is better). Prediction is timed on 10,000 rows:
``predict_proba`` of the two estimators against one plain forward pass of the whole
block in ``inference_mode`` followed by a softmax; the best of several repeats is
reported, in milliseconds and as a ratio to the plain forward pass (lower is better).

Prediction latency is timed separately on the default estimator
(``ResNetClassifier()``: the 8-layer, width-256 residual MLP with its built-in input
scaling) at 1, 100 and 10,000 rows per call: ``predict_proba`` against a raw call of the
same trained module (``torch.from_numpy``, the module under ``inference_mode``, a softmax
and ``.numpy()``), stock skorch's ``predict_proba`` around the same module, and
scikit-learn's ``MLPClassifier`` (default size, 100 hidden units). The median time per
call over many calls is reported, with the ratio to the raw module call.

Every method gets one untimed warm-up fit (one epoch on a small slice) and one untimed
prediction before it is timed, so first-call costs are not counted. Everything runs on
the CPU with torch's thread count left as found.

Run it from the repository root::

    python benchmarks/overhead.py                   # 50,000 rows, 3 epochs, best of 3 fits
    python benchmarks/overhead.py --quick           # 5,000 rows: a smoke run
    python benchmarks/overhead.py --output overhead.md

Targets for this package: at least 1.0x the plain loop's fit speed, at most 1.2x the
plain forward pass's prediction time on 10k rows, and one-row prediction in at most 0.2 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from collections.abc import Callable
from functools import partial

import numpy as np
import skorch
import torch
import torch.nn.functional as F
from _report import footer, versions
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from sklearn_resnet import ResNetClassifier
from sklearn_resnet.backbones import build_backbone

N_FEATURES = 64
N_CLASSES = 10
DEPTH = 10
WIDTH = 256
BATCH_SIZE = 256
LR = 1e-3
WEIGHT_DECAY = 1e-2
PREDICT_ROWS = 10_000
WARMUP_ROWS = 2_048
SEED = 0

PLAIN = "plain torch"
PLAIN_FUSED = "plain torch, fused AdamW"
METHODS = ("sklearn_resnet", PLAIN, PLAIN_FUSED, "skorch")


def make_data(n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic float32 rows with 10 classes."""
    X, y = make_classification(
        n_samples=n_samples,
        n_features=N_FEATURES,
        n_informative=32,
        n_classes=N_CLASSES,
        random_state=SEED,
    )
    return X.astype(np.float32), y.astype(np.int64)


def new_backbone() -> torch.nn.Module:
    """The benchmarked network, freshly initialised from a fixed seed."""
    torch.manual_seed(SEED)
    return build_backbone("mlp", (N_FEATURES,), N_CLASSES, depth=DEPTH, width=WIDTH)


# ---- the three ways to train ----------------------------------------------------------
def fit_ours(X: np.ndarray, y: np.ndarray, epochs: int) -> ResNetClassifier:
    clf = ResNetClassifier(
        backbone="mlp",
        depth=DEPTH,
        width=WIDTH,
        batch_size=BATCH_SIZE,
        max_epochs=epochs,
        lr=LR,
        weight_decay=WEIGHT_DECAY,
        lr_schedule="constant",
        early_stopping=False,
        scaling=None,  # the same network as the other methods
        device="cpu",
        random_state=SEED,
    )
    return clf.fit(X, y)


def fit_plain(X: np.ndarray, y: np.ndarray, epochs: int, fused: bool = False) -> torch.nn.Module:
    model = new_backbone()
    extra = {"fused": True} if fused else {}
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, **extra)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    n = len(Xt)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, BATCH_SIZE):
            idx = perm[i : i + BATCH_SIZE]
            xb, yb = Xt[idx], yt[idx]
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
    return model


def fit_skorch(X: np.ndarray, y: np.ndarray, epochs: int) -> skorch.NeuralNetClassifier:
    net = skorch.NeuralNetClassifier(
        module=new_backbone(),
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        optimizer__weight_decay=WEIGHT_DECAY,
        lr=LR,
        batch_size=BATCH_SIZE,
        max_epochs=epochs,
        iterator_train__shuffle=True,
        train_split=None,
        verbose=0,
        device="cpu",
    )
    return net.fit(X, y)


FITS: dict[str, Callable] = {
    "sklearn_resnet": fit_ours,
    PLAIN: fit_plain,
    PLAIN_FUSED: partial(fit_plain, fused=True),
    "skorch": fit_skorch,
}


# ---- the three ways to predict --------------------------------------------------------
def plain_predict_proba(model: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        logits = model(torch.from_numpy(X))
        return torch.softmax(logits, dim=1).numpy()


def predictor(method: str, fitted) -> Callable[[np.ndarray], np.ndarray]:
    if method in (PLAIN, PLAIN_FUSED):
        return lambda X: plain_predict_proba(fitted, X)
    return fitted.predict_proba


# ---- measurement ----------------------------------------------------------------------
def time_fits(X, y, epochs: int, repeats: int) -> tuple[dict[str, float], dict[str, object]]:
    """Best fit time per method (methods interleaved per repeat) and the fitted models."""
    for fit in FITS.values():
        fit(X[:WARMUP_ROWS], y[:WARMUP_ROWS], 1)
    best = dict.fromkeys(FITS, float("inf"))
    fitted = {}
    for _ in range(repeats):
        for method, fit in FITS.items():
            start = time.perf_counter()
            fitted[method] = fit(X, y, epochs)
            best[method] = min(best[method], time.perf_counter() - start)
    return best, fitted


def time_predictions(fitted: dict, X: np.ndarray, repeats: int) -> dict[str, float]:
    """Best ``predict_proba`` time per method, in seconds."""
    best = {}
    for method in FITS:
        predict = predictor(method, fitted[method])
        predict(X)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            predict(X)
            times.append(time.perf_counter() - start)
        best[method] = min(times)
    return best


def accuracy(fitted: dict, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Training accuracy on ``X``: a check that every method really trained."""
    return {m: float(np.mean(predictor(m, fitted[m])(X).argmax(1) == y)) for m in FITS}


# ---- prediction latency of the default model -----------------------------------------
LATENCY_ROWS = (1, 100, 10_000)
LATENCY_METHODS = ("sklearn_resnet", "raw module call", "skorch", "sklearn MLPClassifier")


def latency_predictors(X: np.ndarray, y: np.ndarray) -> dict[str, Callable]:
    """``predict_proba``-like callables for the default model, trained for one epoch."""
    clf = ResNetClassifier(max_epochs=1, device="cpu", random_state=SEED).fit(X, y)
    module = clf.module_.eval()

    def raw(rows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(module(torch.from_numpy(rows)), dim=1).numpy()

    net = skorch.NeuralNetClassifier(
        module=module, criterion=torch.nn.CrossEntropyLoss, device="cpu", verbose=0
    ).initialize()
    with warnings.catch_warnings():  # 5 iterations on purpose: only its latency counts
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(max_iter=5, random_state=SEED).fit(X, y)
    return {
        "sklearn_resnet": clf.predict_proba,
        "raw module call": raw,
        "skorch": net.predict_proba,
        "sklearn MLPClassifier": mlp.predict_proba,
    }


def time_latency(predict: Callable, rows: np.ndarray, budget_s: float = 1.0) -> float:
    """Median seconds per call over as many calls as fit in about ``budget_s``."""
    predict(rows)
    start = time.perf_counter()
    predict(rows)
    calls = max(5, min(5000, int(budget_s / max(time.perf_counter() - start, 1e-6))))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        predict(rows)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def latency_report(X: np.ndarray, y: np.ndarray) -> list[str]:
    predictors = latency_predictors(X, y)
    sizes = [n for n in LATENCY_ROWS if n <= len(X)]
    table = {
        (m, n): time_latency(predictors[m], np.ascontiguousarray(X[:n]))
        for n in sizes
        for m in LATENCY_METHODS
    }
    header = " | ".join(f"{n:,} row{'s' if n > 1 else ''}" for n in sizes)
    lines = [
        "Prediction latency of the default model (`ResNetClassifier()`, 8-layer width-256 "
        "residual MLP), `predict_proba`, median ms per call (ratio to the raw module call):",
        "",
        f"| method | {header} |",
        "|---|" + "---:|" * len(sizes),
    ]
    raw = "raw module call"
    for m in LATENCY_METHODS:
        cells = " | ".join(
            f"{table[m, n] * 1e3:.3f} ({table[m, n] / table[raw, n]:.2f}x)" for n in sizes
        )
        lines.append(f"| {m} | {cells} |")
    return lines


# ---- report ---------------------------------------------------------------------------
def machine_facts() -> list[str]:
    return [
        versions(),
        f"- torch.get_num_threads(): {torch.get_num_threads()}; os.cpu_count(): {os.cpu_count()}",
        f"- machine: {platform.system()} {platform.machine()}",
    ]


def render(
    args, n_train: int, n_predict: int, fit_s: dict, predict_s: dict, acc: dict, latency: list
) -> str:
    rate = {m: n_train * args.epochs / fit_s[m] for m in METHODS}
    lines = [
        f"Fit: {n_train:,} x {N_FEATURES} float32 rows, {N_CLASSES} classes, 4x{WIDTH} "
        f"residual MLP, AdamW, batch {BATCH_SIZE}, {args.epochs} epoch(s), constant lr, "
        f"best of {args.repeats}. Predict: predict_proba on {n_predict:,} rows, "
        f"best of {args.predict_repeats}.",
        "",
        f"| method | fit samples/s | fit vs plain loop | predict {n_predict // 1000}k ms "
        "| predict vs plain forward |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in METHODS:
        lines.append(
            f"| {m} | {rate[m]:,.0f} | {rate[m] / rate[PLAIN]:.2f}x "
            f"| {predict_s[m] * 1e3:.1f} | {predict_s[m] / predict_s[PLAIN]:.2f}x |"
        )
    lines += [
        "",
        "Training accuracy on the predicted rows (sanity check): "
        + ", ".join(f"{m} {acc[m]:.3f}" for m in METHODS)
        + ".",
        "",
        *latency,
        "",
        *footer("overhead.py", machine_facts()),
    ]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run on 5,000 rows instead of 50,000"
    )
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed fits per method, interleaved; the best counts"
    )
    parser.add_argument(
        "--predict-repeats", type=int, default=5, help="timed predictions per method"
    )
    parser.add_argument("--output", metavar="FILE.md", help="also write the report here")
    args = parser.parse_args(argv)
    for name in ("epochs", "repeats", "predict_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    n_samples = 5_000 if args.quick else 50_000
    X, y = make_data(n_samples)
    n_predict = min(PREDICT_ROWS, n_samples)
    fit_s, fitted = time_fits(X, y, args.epochs, args.repeats)
    predict_s = time_predictions(fitted, X[:n_predict], args.predict_repeats)
    acc = accuracy(fitted, X[:n_predict], y[:n_predict])
    latency = latency_report(X, y)
    report = render(args, n_samples, n_predict, fit_s, predict_s, acc, latency)
    print(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(report)


if __name__ == "__main__":
    main()
