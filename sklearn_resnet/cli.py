"""The ``sklearn-resnet`` command (also ``python -m sklearn_resnet``).

Sub-commands:

``fit DATA --target COL -o MODEL``
    Train a Pipeline (column preprocessing + :class:`~sklearn_resnet.ResNetClassifier`
    or :class:`~sklearn_resnet.ResNetRegressor`) on a CSV or Parquet table and save it
    with joblib.
``predict MODEL DATA [-o FILE] [--proba]``
    Predict with a saved model; writes CSV (or Parquet) to a file or standard output.
``evaluate MODEL DATA --target COL``
    Print the model's scores on labelled data.
``tune DATA --target COL --n-trials N``
    Search hyper-parameters with :class:`~sklearn_resnet.OptunaSearchCV`, optionally in
    a shared Optuna storage that several workers fill at once.
``demo``
    Cross-validate, fit, save, reload and score a Pipeline on scikit-learn's digits,
    then tune its learning rate and dropout with a short pruned search.
``info``
    Versions of the package and its dependencies, and the available devices.

Errors in the input (a missing file or column, an unknown ``--set`` key, an invalid
parameter value) are reported in one line on standard error with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from functools import partial
from pathlib import Path

from .cli_data import (
    ESTIMATOR_STEP,
    CommandLineError,
    build_pipeline,
    category_columns,
    check_number_columns,
    check_numbers,
    drop_columns,
    evaluation_scores,
    infer_task,
    match_categories,
    model_columns,
    parse_settings,
    read_table,
    split_target,
    unseen_labels,
    write_table,
)
from .paths import unwritable_file
from .stopping import interrupts_propagate

__all__ = ["build_parser", "main"]

_PROG = "sklearn-resnet"
#: The table files the commands read (see :func:`~sklearn_resnet.cli_data.read_table`).
_TABLE_TYPES = ".csv (also compressed), .tsv/.txt or .parquet/.pq"
#: Rows of the one-epoch check of the fixed settings before ``tune`` searches.
_PROBE_ROWS = 256
#: User attribute of a stored study that records what ``tune`` searches in it.
_STUDY_ATTR = "sklearn_resnet_cli"


def _verbosity(args: argparse.Namespace) -> int:
    """Progress bars on a terminal: 1 when standard error is a TTY, unless ``--quiet``."""
    return 0 if args.quiet else int(sys.stderr.isatty())


def _integer(text: str) -> int:
    """An argparse type: an integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _int_at_least(low: int):
    """An argparse type: an integer of at least ``low``."""

    def parse(text: str) -> int:
        value = _integer(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _n_jobs(text: str) -> int:
    """An argparse type: joblib's number of jobs (k, or -k for all CPUs but k - 1)."""
    value = _integer(text)
    if value == 0:
        raise argparse.ArgumentTypeError(
            "0 runs no trial; give the trials to run at a time, or -1 for one per CPU"
        )
    return value


def _estimator(task: str, args: argparse.Namespace, *, verbose: int):
    from . import ResNetClassifier, ResNetRegressor

    estimator = ResNetClassifier() if task == "classification" else ResNetRegressor()
    estimator.set_params(random_state=args.random_state, verbose=verbose)
    return estimator.set_params(**parse_settings(args.set, estimator))


def _check_output(path: str | None) -> None:
    """Refuse an output path that cannot be written, before any training."""
    if path is None:
        return
    problem = unwritable_file(path)
    if problem is not None:
        raise CommandLineError(f"cannot write {path!r}: {problem}.")


def _check_search_arguments(search, scoring: str | None) -> None:
    """Refuse an unknown scorer (with the nearest names) or another invalid argument."""
    import difflib

    from sklearn.metrics import get_scorer_names

    names = get_scorer_names()
    if scoring is not None and scoring not in names:
        close = difflib.get_close_matches(scoring, names, n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else "see get_scorer_names()"
        raise CommandLineError(f"--scoring {scoring!r} is not a scikit-learn scorer; {hint}")
    try:
        search._validate_params()
    except ValueError as exc:
        raise CommandLineError(str(exc)) from None


def _claim_stored_study(args: argparse.Namespace, task: str, X) -> None:
    """Record what a named study in ``--storage`` searches; refuse one that searched other data.

    The study keeps the target, task, scoring and feature columns of the run whose
    trials it holds, so that continuing it with another target cannot report another
    target's best score as this one's. A study without a trial that scored (one whose
    first run stopped before any, or whose every trial failed) holds nobody to its
    record: the search's own check lets such a study be resumed with other settings too.
    Two runs that start on an empty study at once may both pass here; the trial stamps
    (:func:`~sklearn_resnet.search_study.check_comparable`) then refuse whichever of them
    brings other data once the other's trials run.
    """
    if args.storage is None or args.study_name is None:
        return
    from .search_study import SCORING_STATES, create_study, quiet_optuna, resolve_storage

    wanted = {
        "target": args.target,
        "task": task,
        "scoring": args.scoring,
        "columns": [str(column) for column in X.columns],
    }
    with quiet_optuna(_verbosity(args) == 0):
        study = create_study(
            resolve_storage(args.storage), args.study_name, True, sampler=None, pruner=None
        )
    recorded = study.user_attrs.get(_STUDY_ATTR)
    if recorded is None or not study.get_trials(deepcopy=False, states=SCORING_STATES):
        study.set_user_attr(_STUDY_ATTR, wanted)
    elif recorded != wanted:
        differ = [key for key in wanted if recorded.get(key) != wanted[key]]
        raise CommandLineError(
            f"study {args.study_name!r} in {args.storage!r} searched another "
            f"{' and '.join(differ)} ({', '.join(_recorded(k, recorded.get(k)) for k in differ)}); "
            "give this search another --study-name."
        )


#: The search's words for what the command line calls otherwise.
_COMMAND_LINE_TERMS = [
    (f"{ESTIMATOR_STEP}__", ""),
    ("pass another study_name", "give this search another --study-name"),
    ("Pass another study_name", "Give this search another --study-name"),
    ("in the storage of OptunaSearchCV", "in --storage"),
    ("than the estimator of OptunaSearchCV has", "than this run has"),
    ("than OptunaSearchCV is fitted on", "than this run reads"),
    ("param_distributions[", "the search space's ["),
    ("] of OptunaSearchCV", "]"),
    ("Resume with the same estimator and settings", "Resume with the same --set settings"),
    ("param_distributions of OptunaSearchCV", "the default search space"),
]


def _in_command_line_terms(message: str) -> str:
    """A search's error in the terms of the command line (``--study-name``, ``--set lr``)."""
    for search_term, flag in _COMMAND_LINE_TERMS:
        message = message.replace(search_term, flag)
    return message


def _count_trials(study) -> str:
    """How many trials the study holds: finished ones, and those other workers still run."""
    from optuna.trial import TrialState

    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    running = states.count(TrialState.RUNNING)
    finished = len(states) - running - states.count(TrialState.WAITING)
    text = f"{finished} trial{'s' if finished != 1 else ''} in the study"
    return text + (f", {running} running elsewhere" if running else "")


def _recorded(key: str, value) -> str:
    if key == "scoring" and value is None:
        return "no --scoring: the model's own score"
    return f"{key}={value!r}"


def _check_fixed_settings(model, X, y, task: str) -> None:
    """One epoch of the fixed settings on a few rows, before a search.

    A setting that no trial can train with (a depth the block does not allow, say)
    is then reported in one line, instead of after every trial has failed.
    """
    import numpy as np
    from sklearn.base import clone

    rows = np.random.default_rng(0).permutation(len(X))[:_PROBE_ROWS]
    X_probe, y_probe = X.iloc[rows], y.iloc[rows]
    if task == "classification" and y_probe.nunique() < y.nunique():  # a class missed
        X_probe, y_probe = X, y
    step = ESTIMATOR_STEP + "__"
    probe = clone(model).set_params(**{step + "max_epochs": 1, step + "early_stopping": False})
    try:
        probe.fit(X_probe, y_probe)
    except ValueError as exc:
        raise CommandLineError(f"the model cannot train with these settings: {exc}") from None


def _training_data(args: argparse.Namespace):
    _check_output(args.output)
    X, y = split_target(read_table(args.data), args.target)
    X = drop_columns(X, args.drop, args.target)
    task = infer_task(y) if args.task == "auto" else args.task
    if task == "regression":
        check_numbers(y, f"target column {args.target!r}", "--task regression needs numbers")
    return X, y, task


def _load_model(path: str):
    import joblib

    if Path(path).is_dir():
        hint = (
            " It holds a model written by save_model: load that in Python with "
            "sklearn_resnet.load_model; the command line reads the joblib files that fit "
            "and tune write."
            if (Path(path) / "config.json").is_file()
            else ""
        )
        raise CommandLineError(f"model file {path!r} is a folder, not a joblib file.{hint}")
    if not Path(path).is_file():
        raise CommandLineError(f"model file {path!r} does not exist.")
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling can fail in many ways; all mean "not a model"
        raise CommandLineError(
            f"cannot load a model from {path!r}: it is not a joblib file of a model (as fit, "
            f"tune or joblib.dump write them); reading it failed with {type(exc).__name__}: "
            f"{exc}"
        ) from exc
    if not hasattr(model, "predict"):
        raise CommandLineError(f"{path!r} holds a {type(model).__name__}, not a model.")
    return model


def _describe(model) -> str:
    resnet = model[-1]
    kind = "CNN" if resnet.backbone_ == "cnn" else "MLP"
    plural = "s" if resnet.n_iter_ != 1 else ""
    selection = getattr(resnet, "selection_history_", None)
    if selection is not None:  # early_stopping="refit"
        epochs = (
            f"{resnet.n_iter_} epoch{plural} on every row (the best epoch of a "
            f"{len(selection)}-epoch holdout fit)"
        )
    else:
        epochs = f"{resnet.n_iter_} epoch{plural} (best epoch {resnet.best_epoch_})"
    return f"{type(resnet).__name__} (residual {kind}) on {resnet.device_}, {epochs}"


def _fit(args: argparse.Namespace) -> int:
    import joblib

    X, y, task = _training_data(args)
    model = build_pipeline(X, _estimator(task, args, verbose=_verbosity(args)))
    model.fit(X, y)
    joblib.dump(model, args.output)
    print(f"Fitted {_describe(model)} for {task} on {len(X)} rows x {X.shape[1]} columns.")
    print(f"Saved the Pipeline to {args.output}.")
    return 0


def _model_input(model, path: str, target: str | None = None):
    """The rows of ``path`` as ``model`` reads them, and the target column if named."""
    text = category_columns(model)
    classes = getattr(model, "classes_", None)
    if target is not None and classes is not None and all(isinstance(c, str) for c in classes):
        text = [*text, target]  # text labels: "1" stays "1" and a class "NA" stays one
    frame = read_table(path, text)
    y = None
    if target is not None:
        frame, y = split_target(frame, target)
    X = match_categories(model, model_columns(model, frame))
    check_number_columns(model, X)
    return X, y


def _predict(args: argparse.Namespace) -> int:
    _check_output(args.output)
    model = _load_model(args.model)
    X, _ = _model_input(model, args.data)
    import pandas as pd  # read_table has checked that pandas is there

    if args.proba and not hasattr(model, "predict_proba"):
        raise CommandLineError("--proba needs a classifier; this model is a regressor.")
    result = pd.DataFrame({"prediction": model.predict(X)})
    if args.proba:
        proba = model.predict_proba(X)
        for index, label in enumerate(model.classes_):
            result[f"proba_{label}"] = proba[:, index]
    if args.output is None:
        result.to_csv(sys.stdout, index=False)
    else:
        write_table(result, args.output)
        print(f"Wrote {len(result)} predictions to {args.output}.")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    X, y = _model_input(model, args.data, args.target)
    for name, value in evaluation_scores(model, X, y).items():
        print(f"{name}: {value:.4f}")
    unseen = unseen_labels(model, y) if hasattr(model, "predict_proba") else []
    if unseen:
        print(f"log_loss: n/a (labels the model was not trained on: {unseen})")
    return 0


def _search_space(estimator, fixed: dict) -> dict:
    """The estimator's default search space without the parameters fixed by ``--set``."""
    uses_cnn = estimator.backbone == "cnn" or (
        estimator.backbone == "auto" and estimator.input_shape is not None
    )
    space = estimator.default_search_space(
        "cnn" if uses_cnn else "mlp", estimator.block, estimator.optimizer
    )
    return {f"{ESTIMATOR_STEP}__{k}": v for k, v in space.items() if k not in fixed}


def _tune(args: argparse.Namespace) -> int:
    import joblib

    try:
        from .search import OptunaSearchCV
    except ImportError as exc:
        raise CommandLineError(f"tune needs sklearn_resnet.search: {exc}") from exc

    if args.study_name is not None and args.storage is None:
        raise CommandLineError(
            "--study-name names a study in --storage; without a storage the study lives in "
            "memory and ends with the run. Add --storage (a journal file or a database URL)."
        )
    X, y, task = _training_data(args)
    estimator = _estimator(task, args, verbose=0)
    model = build_pipeline(X, estimator)
    search = OptunaSearchCV(
        model,
        param_distributions=_search_space(estimator, fixed=parse_settings(args.set, estimator)),
        n_trials=args.n_trials,
        cv=args.cv,
        scoring=args.scoring,
        n_jobs=args.n_jobs,
        storage=args.storage,
        study_name=args.study_name,
        load_if_exists=True,
        random_state=args.random_state,
        verbose=_verbosity(args),
    )
    # Cheapest first: the search's own arguments, the stored study, then one epoch.
    _check_search_arguments(search, args.scoring)
    _claim_stored_study(args, task, X)
    _check_fixed_settings(model, X, y, task)
    try:
        search.fit(X, y)
    except ValueError as exc:
        raise CommandLineError(_in_command_line_terms(str(exc))) from None
    print(f"Best cross-validated score: {search.best_score_:.4f} ({_count_trials(search.study_)})")
    for name, value in search.best_params_.items():
        shown = f"{value:.4g}" if isinstance(value, float) else repr(value)
        print(f"  {name.removeprefix(ESTIMATOR_STEP + '__')} = {shown}")
    if args.output is not None:
        joblib.dump(search.best_estimator_, args.output)
        print(f"Saved the best Pipeline, refitted on all {len(X)} rows, to {args.output}.")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import ResNetClassifier

    _check_output(args.output)
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
        f"in {clf.n_iter_} epoch{'s' if clf.n_iter_ != 1 else ''} (best epoch {clf.best_epoch_})."
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.output) if args.output else Path(tmp) / "digits-resnet.joblib"
        joblib.dump(model, path)
        reloaded = joblib.load(path)
        size = f"{path.stat().st_size / 1024:.0f} KiB"
        if args.output:
            print(f"Saved to {path} ({size}) and reloaded.")
        else:
            print(f"Saved to a temporary file ({size}) and reloaded (-o FILE keeps it).")
    accuracy = reloaded.score(X_test, y_test)
    print(f"Test accuracy of the reloaded model: {accuracy:.3f}")
    if args.n_trials > 0:
        _demo_search(args, model, X_train, X_test, y_train, y_test)
    return 0


def _demo_search(args, model, X_train, X_test, y_train, y_test) -> None:
    """The demo's last step: tune the learning rate and dropout with pruning."""
    from optuna.distributions import FloatDistribution
    from sklearn.base import clone

    from . import OptunaSearchCV

    # Pruning judges each epoch's validation score. On this few rows an MLP classifier's
    # early_stopping="auto" holds out no validation set, so the search's model asks for one.
    model = clone(model).set_params(resnetclassifier__early_stopping=True)
    space = {
        "resnetclassifier__lr": FloatDistribution(1e-4, 1e-2, log=True),
        "resnetclassifier__dropout": FloatDistribution(0.0, 0.3),
    }
    print(
        f"Tuning lr and dropout with OptunaSearchCV: {args.n_trials} trials of "
        f"{args.cv}-fold CV, median pruning..."
    )
    search = OptunaSearchCV(
        model, space, n_trials=args.n_trials, cv=args.cv, random_state=args.random_state
    )
    search.fit(X_train, y_train)
    status = list(search.cv_results_["status"])
    best = ", ".join(f"{k.split('__')[-1]}={v:.3g}" for k, v in search.best_params_.items())
    print(
        f"Best of {len(status)} trials ({status.count('PRUNED')} pruned): {best}, "
        f"CV accuracy {search.best_score_:.3f}, test accuracy "
        f"{search.score(X_test, y_test):.3f}"
    )


def _info(args: argparse.Namespace) -> int:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .device import available_devices

    packages = ("sklearn-resnet", "torch", "skorch", "scikit-learn", "numpy", "optuna")
    for name in (*packages, "pandas", "pyarrow", "matplotlib"):
        try:
            print(f"{name:>14}: {version(name)}")
        except PackageNotFoundError:
            print(f"{name:>14}: not installed")
    print(f"{'python':>14}: {platform.python_version()}")
    print(f"{'devices':>14}: {', '.join(available_devices())}")
    return 0


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help=f"training table: {_TABLE_TYPES}")
    parser.add_argument("--target", required=True, help="name of the target column")
    parser.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="COLUMN",
        help="a column not to train on, e.g. an ID (repeatable)",
    )
    parser.add_argument(
        "--task",
        choices=["auto", "classification", "regression"],
        default="auto",
        help="auto (default): classification for a non-numeric target or an integer one "
        "with at most 20 distinct values, regression otherwise",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="estimator parameter, e.g. --set depth=20 --set lr=0.003 (repeatable); "
        "values are Python literals, else strings",
    )
    parser.add_argument("--random-state", type=int, default=None, help="seed (default: none)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sklearn-resnet`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
        One sub-command per task; each sets ``run``, the function that executes it.

    Examples
    --------
    >>> args = build_parser().parse_args(["fit", "rows.csv", "--target", "y", "-o", "m.joblib"])
    >>> args.command, args.task, args.set
    ('fit', 'auto', [])
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=_PROG, description="Residual networks as scikit-learn estimators."
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="train a model on a table and save it")
    _add_training_options(fit)
    fit.add_argument("-o", "--output", required=True, help="model file to write (joblib)")
    fit.set_defaults(run=_fit)

    predict = commands.add_parser("predict", help="predict with a saved model")
    predict.add_argument("model", help="model file written by fit or tune")
    predict.add_argument("data", help=f"table to predict: {_TABLE_TYPES}")
    predict.add_argument("-o", "--output", help="predictions file (default: standard output)")
    predict.add_argument("--proba", action="store_true", help="add class probabilities")
    predict.set_defaults(run=_predict)

    evaluate = commands.add_parser("evaluate", help="score a saved model on labelled data")
    evaluate.add_argument("model", help="model file written by fit or tune")
    evaluate.add_argument("data", help=f"labelled table: {_TABLE_TYPES}")
    evaluate.add_argument("--target", required=True, help="name of the target column")
    evaluate.set_defaults(run=_evaluate)

    tune = commands.add_parser("tune", help="search hyper-parameters with Optuna")
    _add_training_options(tune)
    tune.add_argument("--n-trials", type=_int_at_least(1), required=True, help="trials to run here")
    tune.add_argument(
        "--cv", type=_int_at_least(2), default=5, help="cross-validation folds (default 5)"
    )
    tune.add_argument("--scoring", help="scikit-learn scoring name (default: model's score)")
    tune.add_argument(
        "--n-jobs",
        type=_n_jobs,
        default=None,
        help="trials evaluated at a time, in parallel processes (-1: one per CPU)",
    )
    tune.add_argument("--storage", help="Optuna storage URL, e.g. sqlite:///study.db")
    tune.add_argument("--study-name", help="study to create or continue in the storage")
    tune.add_argument("-o", "--output", help="write the best refitted model here (joblib)")
    tune.set_defaults(run=_tune)

    demo = commands.add_parser("demo", help="train, save and reload a model on digits")
    demo.add_argument(
        "--cv", type=_int_at_least(2), default=3, help="cross-validation folds (default 3)"
    )
    demo.add_argument(
        "--max-epochs", type=_int_at_least(1), default=40, help="epochs per fit (default 40)"
    )
    demo.add_argument("--random-state", type=int, default=0, help="seed (default 0)")
    demo.add_argument(
        "--n-trials",
        type=_int_at_least(0),
        default=8,
        help="trials of the search step; 0 skips it (default 8)",
    )
    demo.add_argument("-o", "--output", help="where to save the model (default: a temp dir)")
    demo.set_defaults(run=_demo)

    info = commands.add_parser("info", help="versions and available devices")
    info.set_defaults(run=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``sklearn-resnet`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns
    -------
    code : int
        0 on success; 2 for bad input (missing file or column, unknown ``--set`` key,
        invalid parameter value), reported in one line on standard error; 130 when
        interrupted (Ctrl-C), with nothing saved; 141 when the reader of standard output
        left (``... | head``).

    Raises
    ------
    SystemExit
        With code 2 for arguments the parser refuses (an unknown command or option, a
        missing or out-of-range value), after printing the usage; with code 0 after
        ``--help``.

    Examples
    --------
    >>> main(["evaluate", "missing.joblib", "rows.csv", "--target", "y"])
    2
    """
    args = build_parser().parse_args(argv)
    try:
        # Ctrl-C ends the command (exit 130) rather than only the fit it stops, which
        # would save or score a half-trained model.
        with warnings.catch_warnings(), interrupts_propagate():
            # One line per warning, like the errors, instead of Python's source location
            # (which names the console script or runpy).
            warnings.showwarning = partial(_show_warning, command=args.command)
            return args.run(args)
    except KeyboardInterrupt:
        print(f"{_PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `sklearn-resnet predict ... | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return 141
    except (CommandLineError, OSError, ValueError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{_PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2


def _show_warning(message, category, filename, lineno, file=None, line=None, *, command):
    print(f"{_PROG} {command}: {category.__name__}: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
