"""GPU training throughput of ``ResNetClassifier`` against plain torch loops and stock skorch.

Two workloads, each trained with the same optimizer everywhere (AdamW, ``lr=1e-3``,
``weight_decay=1e-2``), a constant learning rate, no validation and no early stopping:

* **ResNet-20** (He et al.'s CIFAR network, ``build_backbone("cnn", (3, 32, 32), 10,
  depth=20)``, 272,474 parameters) on 50,000 synthetic 3x32x32 float32 images with
  10 classes, at batch sizes 128 and 512;
* the **residual MLP** of depth 8 and width 256 (the default ``ResNetClassifier``
  network) on 200,000 synthetic rows of 64 float32 features, at batch size 1024.

The methods:

* ``sklearn_resnet``: ``ResNetClassifier(..., scaling=None, augment=None,
  early_stopping=False, lr_schedule="constant")`` with ``precision="32"`` and ``"bf16"``,
  and with ``"bf16"`` plus ``compile=True`` or ``compile="reduce-overhead"`` (CUDA
  graphs). ``scaling=None`` makes it the same network as the other methods. On CUDA
  the estimator always trains images in the ``channels_last`` layout, so its fp32 rows
  are fp32 + channels_last and its bf16 rows are bf16 + channels_last; the table says
  so.
* a plain hand-written torch loop, as a user writes it: the data moved to the device
  once, one ``torch.randperm`` per epoch, batches gathered by indexing,
  ``zero_grad`` / ``cross_entropy`` / ``backward`` / ``step`` with ``torch.optim.AdamW``
  at its defaults; in fp32 (NCHW) and with bf16 autocast + ``channels_last``;
* stock ``skorch.NeuralNetClassifier`` in fp32 with its default ``Dataset`` and
  ``DataLoader`` (shuffled each epoch).

Each method trains two epochs and the second one is timed, so the first (CUDA and cuDNN
initialisation, ``torch.compile``'s compilation) is a warm-up. Every epoch is timed with
``torch.cuda.synchronize()`` at both ends: around the loop for the plain loops, and by a
callback for the two skorch-based estimators (skorch's own ``dur`` stops its clock
without synchronising). Throughput is samples per second; the ratios compare with the
best plain loop and with stock skorch at the same batch size.

Targets for this package: its best ResNet-20 throughput at least **1.2x** the best plain
loop and at least **2.5x** stock skorch. For reference, on an NVIDIA H100 the plain loop
trains ResNet-20 at batch 512 at 31.6k img/s in fp32 and 59.1k img/s with bf16 +
channels_last, and stock skorch at 21.6k img/s.

Run it from the repository root (the full run takes over five minutes on an H200,
``torch.compile`` included)::

    python benchmarks/gpu.py --output gpu.md
    python benchmarks/gpu.py --batches 256 1024     # other batch sizes for ResNet-20
    python benchmarks/gpu.py --workloads mlp        # the MLP alone (about a minute)
    python benchmarks/gpu.py --device cpu --quick   # 2,000 images, 5,000 rows, fp32: a smoke run
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import numpy as np
import skorch
import torch
import torch.nn.functional as F
from _report import footer, versions
from skorch.callbacks import Callback

from sklearn_resnet import ResNetClassifier
from sklearn_resnet.backbones import BACKBONE_DEFAULTS, build_backbone
from sklearn_resnet.device import first_line, memory_format

IMAGE_SHAPE = (3, 32, 32)
CNN_DEPTH = 20
N_FEATURES = 64
MLP_DEPTH = 8
MLP_WIDTH = 256
MLP_BATCH = 1024
N_CLASSES = 10
LR = 1e-3
WEIGHT_DECAY = 1e-2
EPOCHS = 2  # the first is the warm-up, the second is timed
SEED = 0

SIZES = {"full": (50_000, 200_000), "quick": (2_000, 5_000)}
OURS = "sklearn_resnet"
#: The compiled settings measured, with their rows' method names.
COMPILED = {
    True: "sklearn_resnet, compile=True",
    "reduce-overhead": 'sklearn_resnet, compile="reduce-overhead"',
}
PLAIN = "plain torch loop"
SKORCH = "stock skorch NeuralNetClassifier"


@dataclass
class Result:
    """Throughput of one method at one batch size."""

    method: str
    batch: int
    precision: str
    rate: float
    error: str | None = None  # why the run failed (rate is NaN then)


def log(message: str) -> None:
    """Progress on stderr, so that a long run shows where it is."""
    print(message, file=sys.stderr, flush=True)


def make_data(n: int, sample_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic float32 inputs with 10 random classes (only the speed matters here)."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((n, *sample_shape), dtype=np.float32)
    return X, rng.integers(0, N_CLASSES, n).astype(np.int64)


def new_backbone(kind: str) -> torch.nn.Module:
    """The benchmarked network, freshly initialised from a fixed seed."""
    torch.manual_seed(SEED)
    if kind == "cnn":
        return build_backbone("cnn", IMAGE_SHAPE, N_CLASSES, depth=CNN_DEPTH)
    return build_backbone("mlp", (N_FEATURES,), N_CLASSES, depth=MLP_DEPTH, width=MLP_WIDTH)


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def release(device: str) -> None:
    """Free the memory of the previous method before the next one runs."""
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


class SyncedEpochTimer(Callback):
    """Record ``synced_dur``: an epoch's wall time with the device synchronised at both ends."""

    def __init__(self, device: str):
        self.device = device

    def on_epoch_begin(self, net, **kwargs):
        synchronize(self.device)
        self.start_ = time.perf_counter()

    def on_epoch_end(self, net, **kwargs):
        synchronize(self.device)
        net.history.record("synced_dur", time.perf_counter() - self.start_)


def timer(device: str) -> list:
    return [("synced_timer", SyncedEpochTimer(device))]


def second_epoch_rate(n: int, history) -> float:
    """Samples per second of the timed (second) epoch."""
    return n / float(history[EPOCHS - 1, "synced_dur"])


# ---- the three ways to train ----------------------------------------------------------
def ours_rate(X, y, kind, batch, precision, device, compile=False) -> float:
    """``ResNetClassifier`` trained for two epochs; samples/s of the second."""
    architecture = (
        {"backbone": "cnn", "depth": CNN_DEPTH, "input_shape": IMAGE_SHAPE}
        if kind == "cnn"
        else {"backbone": "mlp", "depth": MLP_DEPTH, "width": MLP_WIDTH}
    )
    if compile is not False:
        # A fresh compilation per fit, as in a new process: graphs compiled for an earlier
        # batch size (and made shape-dynamic by its last, smaller batch) are not reused.
        torch.compiler.reset()
    clf = ResNetClassifier(
        **architecture,
        scaling=None,  # the same network as the other methods
        augment=None,
        optimizer="adamw",
        lr=LR,
        weight_decay=WEIGHT_DECAY,
        lr_schedule="constant",
        batch_size=batch,
        max_epochs=EPOCHS,
        early_stopping=False,
        device=device,
        precision=precision,
        compile=compile,
        random_state=SEED,
        callbacks=timer(device),
    ).fit(X, y)
    check_loss(clf.history_[-1, "train_loss"], OURS)
    return second_epoch_rate(len(X), clf.history_)


def plain_rate(X, y, kind, batch, device, bf16=False, channels_last=False) -> float:
    """A hand-written loop with ``torch.optim.AdamW`` at its defaults; samples/s of epoch 2."""
    model = new_backbone(kind).to(device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    Xt, yt = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    n = len(Xt)
    device_type = torch.device(device).type
    autocast = (lambda: torch.autocast(device_type, dtype=torch.bfloat16)) if bf16 else nullcontext
    model.train()

    def epoch() -> torch.Tensor:
        perm = torch.randperm(n, device=device)
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            xb, yb = Xt[idx].contiguous(memory_format=layout), yt[idx]
            optimizer.zero_grad()
            with autocast():
                loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
        return loss

    epoch()
    synchronize(device)
    start = time.perf_counter()
    loss = epoch()
    synchronize(device)
    elapsed = time.perf_counter() - start
    check_loss(loss.item(), PLAIN)
    return n / elapsed


def skorch_rate(X, y, kind, batch, device) -> float:
    """Stock ``skorch.NeuralNetClassifier`` (fp32, default DataLoader); samples/s of epoch 2."""
    net = skorch.NeuralNetClassifier(
        module=new_backbone(kind),
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        optimizer__weight_decay=WEIGHT_DECAY,
        lr=LR,
        batch_size=batch,
        max_epochs=EPOCHS,
        iterator_train__shuffle=True,
        train_split=None,
        verbose=0,
        device=device,
        callbacks=timer(device),
    ).fit(X, y)
    check_loss(net.history[-1, "train_loss"], SKORCH)
    return second_epoch_rate(len(X), net.history)


def check_loss(loss: float, method: str) -> None:
    if not np.isfinite(loss):
        raise RuntimeError(f"{method} diverged: training loss {loss}.")


# ---- the runs -------------------------------------------------------------------------
def layout_label(device: str) -> str:
    """How the estimator lays out images on ``device``."""
    width = BACKBONE_DEFAULTS["cnn"]["width"]  # the estimator's, which sets the CPU layout
    if memory_format(device, IMAGE_SHAPE, width) is torch.channels_last:
        return "channels_last (automatic)"
    return "NCHW"


def plan(
    kind: str, X, y, batch: int, device: str, fp32_only: bool = False
) -> list[tuple[str, str, Callable]]:
    """``(method, precision label, measurement)`` for every method at one batch size.

    ``fp32_only`` leaves out bf16 autocast and compilation (minutes per run on a CPU).
    """
    cnn = kind == "cnn"
    fp32 = "fp32, NCHW" if cnn else "fp32"
    ours = f" + {layout_label(device)}" if cnn else ""
    args = (X, y, kind, batch)
    runs = [
        (PLAIN, fp32, partial(plain_rate, *args, device)),
        (
            PLAIN,
            "bf16 autocast + channels_last" if cnn else "bf16 autocast",
            partial(plain_rate, *args, device, bf16=True, channels_last=cnn),
        ),
        (SKORCH, fp32, partial(skorch_rate, *args, device)),
        (OURS, "fp32" + ours, partial(ours_rate, *args, "32", device)),
        (OURS, "bf16 autocast" + ours, partial(ours_rate, *args, "bf16", device)),
    ]
    for mode, method in COMPILED.items():
        runs.append(
            (method, "bf16 autocast" + ours, partial(ours_rate, *args, "bf16", device, mode))
        )
    if fp32_only:
        runs = [run for run in runs if "bf16" not in run[1]]
    return runs


def measure(kind: str, X, y, batches, device: str, fp32_only: bool = False) -> list[Result]:
    results = []
    for batch in batches:
        for method, precision, run in plan(kind, X, y, batch, device, fp32_only):
            log(f"{kind}: {method}, {precision}, batch {batch} ...")
            start = time.perf_counter()
            try:
                result = Result(method, batch, precision, run())
            except Exception as exc:  # one failing method must not lose the others' numbers
                error = f"{type(exc).__name__}: {first_line(exc)}"
                result = Result(method, batch, precision, math.nan, error)
            release(device)
            took = f"(run took {time.perf_counter() - start:.1f} s)"
            log(f"    {result.error or f'{result.rate:,.0f} samples/s'} {took}")
            results.append(result)
    return results


# ---- report ---------------------------------------------------------------------------
def best(results: list[Result], method: str, batch: int | None = None) -> Result | None:
    """The fastest successful result of ``method`` (at ``batch`` if given), if any."""
    rows = [r for r in results if r.method == method and batch in (None, r.batch) and not r.error]
    return max(rows, key=lambda r: r.rate, default=None)


def table(results: list[Result], unit: str) -> list[str]:
    lines = [
        f"| method | batch | precision | {unit} | vs best plain loop | vs stock skorch |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        if r.error:
            error = r.error.replace("|", "\\|")  # a bar would end the table's cell
            lines.append(f"| {r.method} | {r.batch} | {r.precision} | failed: {error} | | |")
            continue
        ratios = [best(results, other, r.batch) for other in (PLAIN, SKORCH)]
        cells = [f"{r.rate / other.rate:.2f}x" if other else "" for other in ratios]
        lines.append(
            f"| {r.method} | {r.batch} | {r.precision} | {r.rate:,.0f} | {cells[0]} | {cells[1]} |"
        )
    return lines


def verdict(results: list[Result]) -> str:
    mine = [best(results, method) for method in (OURS, *COMPILED.values())]
    ours = max((r for r in mine if r), key=lambda r: r.rate, default=None)
    plain, stock = best(results, PLAIN), best(results, SKORCH)
    if not (ours and plain and stock):
        return "No verdict: a method failed at every batch size (see the table)."
    vs_plain, vs_stock = ours.rate / plain.rate, ours.rate / stock.rate
    return (
        f"Best of sklearn_resnet: {ours.rate:,.0f} img/s ({ours.method}, {ours.precision}, "
        f"batch {ours.batch}) = **{vs_plain:.2f}x** the best plain loop ({plain.rate:,.0f} "
        f"img/s, {plain.precision}, batch {plain.batch}; target 1.2x: "
        f"{'met' if vs_plain >= 1.2 else 'missed'}) and **{vs_stock:.2f}x** stock skorch's "
        f"best ({stock.rate:,.0f} img/s, batch {stock.batch}; target 2.5x: "
        f"{'met' if vs_stock >= 2.5 else 'missed'})."
    )


def machine_facts(device: str) -> list[str]:
    if torch.device(device).type == "cuda":
        cudnn = torch.backends.cudnn.version()
        hardware = (
            f"- GPU: {torch.cuda.get_device_name(device)}; CUDA {torch.version.cuda}, cuDNN {cudnn}"
        )
    else:
        hardware = f"- device: CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    return [hardware, versions()]


def render(args, n_images: int, n_rows: int, cnn: list, mlp: list) -> str:
    lines = []
    if cnn:
        n_params = sum(p.numel() for p in new_backbone("cnn").parameters())
        lines += [
            f"ResNet-20 ({n_params:,} parameters), {n_images:,} synthetic 3x32x32 float32 "
            f"images, {N_CLASSES} classes; AdamW (lr {LR}, weight decay {WEIGHT_DECAY}), "
            "constant lr, no validation; images/s of the second epoch (the first is a "
            "warm-up). Ratios are to the best plain loop and to stock skorch at the same "
            "batch size.",
            "",
            *table(cnn, "img/s"),
            "",
            verdict(cnn),
            "",
        ]
    if mlp:
        lines += [
            f"Residual MLP (depth {MLP_DEPTH}, width {MLP_WIDTH}), {n_rows:,} synthetic rows "
            f"of {N_FEATURES} float32 features, {N_CLASSES} classes, batch {MLP_BATCH}; rows/s "
            "of the second epoch:",
            "",
            *table(mlp, "rows/s"),
            "",
        ]
    lines += [
        "sklearn_resnet trains images in the channels_last layout by itself on CUDA, and on "
        "the CPU at its default width, so its fp32 and bf16 rows there are fp32 + "
        "channels_last and bf16 + channels_last. The "
        "plain loops use torch.optim.AdamW at its defaults; sklearn_resnet uses the fused "
        "AdamW kernel. Stock skorch batches through its default DataLoader. The compiled "
        "rows compile in the first, untimed epoch; its last, smaller batch makes the "
        "batch size dynamic, so the second can still record a CUDA graph for its full "
        "batches (a cost that counts against the compiled rows).",
        "",
        *footer("gpu.py", machine_facts(args.device)),
    ]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run on 2,000 images and 5,000 rows (fp32 only on the CPU)",
    )
    parser.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=[128, 512],
        metavar="N",
        help="ResNet-20 batch sizes (default 128 512)",
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=["cnn", "mlp"],
        default=["cnn", "mlp"],
        help="which networks to train (default both: ResNet-20, then the MLP)",
    )
    parser.add_argument("--output", metavar="FILE.md", help="also write the report here")
    args = parser.parse_args(argv)
    if any(b < 2 for b in args.batches):
        parser.error("--batches must all be at least 2")
    try:
        kind = torch.device(args.device).type
    except RuntimeError:
        parser.error(f"--device {args.device!r} is not a torch device")
    if kind == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device} needs a CUDA GPU; none is available here")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    n_images, n_rows = SIZES["quick" if args.quick else "full"]
    # A quick run on the CPU skips bf16 and compilation, which take minutes there.
    fp32_only = args.quick and torch.device(args.device).type == "cpu"
    cnn, mlp = [], []
    if "cnn" in args.workloads:
        X, y = make_data(n_images, IMAGE_SHAPE)
        cnn = measure("cnn", X, y, args.batches, args.device, fp32_only)
        del X, y
    if "mlp" in args.workloads:
        X, y = make_data(n_rows, (N_FEATURES,))
        mlp = measure("mlp", X, y, [MLP_BATCH], args.device, fp32_only)
    report = render(args, n_images, n_rows, cnn, mlp)
    print(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(report)


if __name__ == "__main__":
    main()
