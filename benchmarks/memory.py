"""Memory of prediction: a million rows, and thousands of one-row calls.

Two measurements, each in a fresh process so that nothing measured before distorts
the resident set size (RSS); there, malloc maps blocks of 64 KiB and more on their own
and gives them back on free, so the RSS follows the memory in use:

* **Large predict.** A residual MLP (regressor, and a 10-class classifier) fitted on
  2,000 rows predicts 1,000,000 rows x 64 float32 features. A sampling thread reads
  the process's RSS every millisecond; the table shows the peak above the RSS just
  before the call, next to the size of the returned array and to the peak of one
  batch (the same call on ``PREDICT_BATCH_SIZE`` rows). Prediction converts, moves
  and runs one batch at a time and reduces each batch (argmax, softmax, target
  scaling) before storing it, so the peak should stay within output + one batch
  (plus a fixed 4 MiB allowance).
* **One-row predicts.** RSS after 100 warm-up calls and then after every 500 of
  3,000 ``predict`` calls on a single row: a leak would grow it steadily.

Run it from the repository root::

    python benchmarks/memory.py
    python benchmarks/memory.py --rows 200000 --output memory.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np
from _report import footer, versions

MiB = 2**20
#: Allowance for what a call allocates besides its batches and its output (Python
#: objects, thread stacks, page-table growth): fixed, not growing with the rows.
SLACK = 4 * MiB


def rss() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Highest RSS above the starting one while the ``with`` block runs."""

    def __enter__(self):
        self.start, self.peak, self._running = rss(), rss(), True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, rss())
        self.extra = self.peak - self.start


def _models(n_features: int):
    from sklearn_resnet import ResNetClassifier, ResNetRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, n_features), dtype=np.float32)
    y = X[:, :4].sum(axis=1)
    params = {"max_epochs": 2, "random_state": 0, "device": "cpu"}
    reg = ResNetRegressor(**params).fit(X, y)
    labels = np.digitize(y, np.quantile(y, np.linspace(0.1, 0.9, 9)))
    clf = ResNetClassifier(**params).fit(X, labels)
    return reg, clf


def large_predict(rows: int, n_features: int) -> list[str]:
    """Rows of the large-predict table (run inside a fresh process)."""
    from sklearn_resnet.defaults import PREDICT_BATCH_SIZE

    reg, clf = _models(n_features)
    X = np.random.default_rng(1).standard_normal((rows, n_features), dtype=np.float32)
    lines = []
    for name, method in [
        ("ResNetRegressor.predict", reg.predict),
        ("ResNetClassifier.predict", clf.predict),
        ("ResNetClassifier.predict_proba", clf.predict_proba),
    ]:
        method(X[:PREDICT_BATCH_SIZE])  # warm-up: kernels and allocator pools
        with PeakRSS() as batch:
            method(X[:PREDICT_BATCH_SIZE])
        with PeakRSS() as full:
            out = method(X)
        over = full.extra - out.nbytes - batch.extra
        verdict = "yes" if over <= SLACK else f"no ({over / MiB:+.1f})"
        lines.append(
            f"| {name} | {rows:,} x {n_features} | {out.nbytes / MiB:.1f} | "
            f"{batch.extra / MiB:.1f} | {full.extra / MiB:.1f} | {verdict} |"
        )
        del out
    return lines


def one_row_predicts(n_calls: int, n_features: int) -> list[str]:
    """Rows of the one-row table (run inside a fresh process)."""
    reg, clf = _models(n_features)
    row = np.random.default_rng(2).standard_normal((1, n_features), dtype=np.float32)
    lines = []
    for name, method in [
        ("ResNetRegressor.predict", reg.predict),
        ("ResNetClassifier.predict", clf.predict),
    ]:
        for _ in range(100):
            method(row)
        marks = [rss()]
        for _ in range(n_calls // 500):
            for _ in range(500):
                method(row)
            marks.append(rss())
        growth = (marks[-1] - marks[0]) / MiB
        trace = " → ".join(f"{m / MiB:.1f}" for m in marks)
        lines.append(f"| {name} | {n_calls:,} | {trace} | {growth:+.2f} |")
    return lines


def _in_fresh_process(part: str, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, __file__, "--part", part, "--rows", str(args.rows)]
    command += ["--features", str(args.features), "--calls", str(args.calls)]
    # Large blocks are mapped and unmapped one by one instead of kept by malloc after
    # free, so the RSS follows the memory actually in use.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"The {part} measurement failed:\n{result.stderr.strip()}")
    return result.stdout.strip().splitlines()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows predicted (1,000,000)")
    parser.add_argument("--features", type=int, default=64, help="features per row (64)")
    parser.add_argument("--calls", type=int, default=3000, help="one-row predicts (3,000)")
    parser.add_argument("--output", metavar="FILE.md", help="also write the report here")
    parser.add_argument("--part", choices=["large", "one-row"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls < 500 or args.calls % 500:
        parser.error("--calls must be a positive multiple of 500 (RSS is read every 500 calls)")
    if args.rows < 1 or args.features < 1:
        parser.error("--rows and --features must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.part == "large":
        print("\n".join(large_predict(args.rows, args.features)))
        return
    if args.part == "one-row":
        print("\n".join(one_row_predicts(args.calls, args.features)))
        return
    report = [
        "Peak memory of one predict call above the RSS before it (MiB):",
        "",
        "| call | X | output | one batch | peak | within output + one batch + 4 MiB |",
        "|---|---|---:|---:|---:|---|",
        *_in_fresh_process("large", args),
        "",
        "RSS (MiB) after 100 warm-up calls, then after every 500 one-row predicts:",
        "",
        "| call | calls | RSS | growth |",
        "|---|---:|---|---:|",
        *_in_fresh_process("one-row", args),
        "",
    ]
    machine = [
        f"- {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        versions(),
    ]
    text = "\n".join(report + footer("memory.py", machine))
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
