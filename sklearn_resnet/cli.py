"""The ``sklearn-resnet`` command (also ``python -m sklearn_resnet``).

Sub-commands:

``demo``
    Cross-validate, fit, save, reload and score a Pipeline with a
    :class:`~sklearn_resnet.ResNetClassifier` on scikit-learn's bundled digits.
``info``
    Versions of the package and its dependencies, and the available devices.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import ResNetClassifier

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=args.random_state
    )
    model = make_pipeline(
        StandardScaler(),
        ResNetClassifier(max_epochs=args.max_epochs, random_state=args.random_state),
    )
    print(f"Digits: {len(X_train)} training and {len(X_test)} test images of 8x8 pixels.")
    scores = cross_val_score(model, X_train, y_train, cv=args.cv)
    print(f"{args.cv}-fold cross-validated accuracy: {scores.mean():.3f} ± {scores.std():.3f}")
    model.fit(X_train, y_train)
    clf = model[-1]
    print(
        f"Fitted a residual {clf.backbone_.upper()} on {clf.device_} "
        f"in {clf.n_iter_} epochs (best epoch {clf.best_epoch_})."
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.output) if args.output else Path(tmp) / "digits-resnet.joblib"
        joblib.dump(model, path)
        reloaded = joblib.load(path)
        print(f"Saved to {path.name} ({path.stat().st_size / 1024:.0f} KiB) and reloaded.")
    accuracy = reloaded.score(X_test, y_test)
    print(f"Test accuracy of the reloaded model: {accuracy:.3f}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .device import available_devices

    for name in ("sklearn-resnet", "torch", "skorch", "scikit-learn", "numpy", "optuna"):
        try:
            print(f"{name:>14}: {version(name)}")
        except PackageNotFoundError:
            print(f"{name:>14}: not installed")
    print(f"{'python':>14}: {platform.python_version()}")
    print(f"{'devices':>14}: {', '.join(available_devices())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sklearn-resnet`` command."""
    parser = argparse.ArgumentParser(
        prog="sklearn-resnet", description="Residual networks as scikit-learn estimators."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train, save and reload a model on digits")
    demo.add_argument("--cv", type=int, default=3, help="cross-validation folds (default 3)")
    demo.add_argument("--max-epochs", type=int, default=40, help="epochs per fit (default 40)")
    demo.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    demo.add_argument("-o", "--output", help="where to save the model (default: a temp dir)")
    demo.set_defaults(run=_demo)
    info = commands.add_parser("info", help="versions and available devices")
    info.set_defaults(run=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
