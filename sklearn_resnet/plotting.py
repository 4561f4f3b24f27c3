"""Figures of a training run and of a hyper-parameter search, drawn with matplotlib.

matplotlib is an optional dependency: install ``sklearn-resnet[plot]``. Every
function draws into the ``ax`` it is given (or a new figure) and returns the Axes,
so figures compose with the rest of a user's matplotlib code. Nothing here picks a
backend or shows a window.
"""

from __future__ import annotations

import math

from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.utils.validation import check_is_fitted

from .user_warnings import ignoring

__all__ = ["plot_history", "plot_optimization_history", "plot_param_importances"]

_INSTALL_HINT = "install sklearn-resnet[plot] (pip install 'sklearn-resnet[plot]')"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"Plotting needs matplotlib; {_INSTALL_HINT}.") from None
    return plt


def _new_axes(ax):
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    return ax


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_history(estimator, ax=None):
    """Plot training and validation loss and the validation score per epoch.

    The losses share the left axis; the validation score (accuracy for a
    classifier, R² for a regressor) has its own axis on the right. A dotted vertical
    line marks ``best_epoch_``, the epoch whose weights the model keeps: "best epoch",
    the lowest validation loss, under early stopping; else "final epoch", or "restored
    epoch" when a diverged or interrupted fit went back to the epoch of the lowest
    training loss. After a refit (``early_stopping="refit"``, or an MLP regressor's
    ``"auto"``) the validation loss and score are the holdout fit's
    (``selection_history_``), the training loss is the refit's on every row, and the
    line marks the holdout's best epoch, where the refit ends.

    Parameters
    ----------
    estimator : ResNetClassifier, ResNetRegressor, Pipeline or search
        A fitted estimator, a fitted Pipeline whose last step is one, or a fitted
        search (``OptunaSearchCV``, ``GridSearchCV``) whose ``best_estimator_`` is
        one of these.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; ``None`` creates a new figure.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes with the losses. When the model holds validation scores (it trained
        with early stopping), the score's twin Axes is ``ax.right_ax``.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the estimator is not a ResNetClassifier or ResNetRegressor (or a Pipeline
        ending in one), or is a search without ``best_estimator_`` (not fitted, or
        fitted with ``refit=False``).
    sklearn.exceptions.NotFittedError
        If it is not fitted.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import make_classification
    >>> from sklearn_resnet import ResNetClassifier, plot_history
    >>> X, y = make_classification(300, 5, random_state=0)
    >>> clf = ResNetClassifier(depth=4, width=16, max_epochs=5, random_state=0).fit(X, y)
    >>> plot_history(clf).get_xlabel()
    'epoch'
    """
    from .base import _BaseResNet, kept_epoch

    estimator = getattr(estimator, "best_estimator_", estimator)
    if hasattr(estimator, "steps"):
        estimator = estimator[-1]
    if not isinstance(estimator, _BaseResNet):
        raise ValueError(
            f"plot_history needs a fitted ResNetClassifier or ResNetRegressor; got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    ax = _new_axes(ax)
    history = estimator.history_
    epochs = [int(row["epoch"]) for row in history]
    ax.plot(epochs, estimator.loss_curve_, marker=".", color="C0", label="training loss")
    # The fit that validated: this one, or the holdout fit that chose a refit's epochs.
    selection = getattr(estimator, "selection_history_", None)
    validated = history if selection is None else selection
    valid_epochs = [int(row["epoch"]) for row in validated]
    valid = [row.get("valid_loss", math.nan) for row in validated]
    if any(not math.isnan(v) for v in valid):
        holdout = "" if selection is None else " (holdout fit)"
        ax.plot(valid_epochs, valid, marker=".", color="C1", label="validation loss" + holdout)
    # The epoch whose weights the model keeps: the best by validation loss; without a
    # validation loss there (no early stopping, or partial_fit epochs after it) the final
    # epoch, or the one of the lowest training loss after a divergence or an interrupt.
    # After a refit, the holdout fit's best epoch, where the refit ends (partial_fit may
    # have trained on since).
    best = estimator.best_epoch_ if selection is None else kept_epoch(selection)
    best_valid = valid[valid_epochs.index(best)] if best in valid_epochs else math.nan
    if not math.isnan(best_valid):
        ax.plot([best], [best_valid], marker="o", markersize=9, color="C1")
        label = f"best epoch ({best})"
        if selection is not None:
            label = f"best epoch of the holdout fit ({best}), the refit's last"
    else:
        label = f"final epoch ({best})" if best == epochs[-1] else f"restored epoch ({best})"
    ax.axvline(best, color="0.4", linestyle=":", label=label)
    ax.set_xlabel("epoch")
    # The regressor trains on standardised targets: its loss is in those units.
    ax.set_ylabel("loss" if is_classifier(estimator) else "loss (MSE of standardised targets)")
    ax.set_title("Training history")
    _integer_ticks(ax)
    handles, labels = ax.get_legend_handles_labels()
    scores = estimator.validation_scores_
    if selection is not None:  # the holdout fit's
        scores = [row.get("valid_score") for row in selection]
    if scores is not None:
        name = "validation accuracy" if is_classifier(estimator) else "validation R²"
        right = ax.twinx()
        ax.right_ax = right
        values = [math.nan if s is None else s for s in scores]
        right.plot(valid_epochs, values, marker=".", linestyle="--", color="C2", label=name)
        right.set_ylabel(name)
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
        # Draw the losses and the legend above the twin Axes, so no line crosses it.
        ax.set_zorder(right.get_zorder() + 1)
        ax.patch.set_visible(False)
    # Losses fall and scores rise: the middle of the right side is usually free.
    ax.legend(handles, labels, loc="center right")
    return ax


def _study(search):
    """The optuna Study of a fitted search (its ``study_``), or ``search`` itself."""
    import optuna

    study = search if isinstance(search, optuna.Study) else getattr(search, "study_", None)
    if not isinstance(study, optuna.Study):
        raise ValueError(
            "Expected a fitted search with a study_ attribute (such as OptunaSearchCV "
            f"after fit) or an optuna Study; got {type(search).__name__}."
        )
    if len(study.directions) > 1:
        raise ValueError("Only single-objective studies can be plotted; this one has several.")
    return study


def _plotted(search):
    """The study of ``search``, the trials a figure shows and the note on the others.

    Shown are the completed trials with a finite value that, for a fitted search, its
    results count: a resumed study's trials scored with other settings are not among
    them, nor those another worker completed after the search's fit. The note,
    `` (2 pruned, 1 failed not shown)`` or ``""``, counts the rest.
    """
    from optuna.trial import TrialState

    from .search_study import scored_alike, scoring_key, trial_record

    study = _study(search)
    results = None if search is study else getattr(search, "cv_results_", None)
    counted = None
    if isinstance(results, dict) and "trial_number" in results:
        counted = {int(number) for number in results["trial_number"]}
    scoring = scoring_key(getattr(search, "scoring", None))
    n_splits = getattr(search, "n_splits_", None)
    shown, counts = [], {}
    for trial in study.get_trials(deepcopy=False):
        if trial.state != TrialState.COMPLETE:
            kind = "failed" if trial.state == TrialState.FAIL else trial.state.name.lower()
        elif counted is not None and trial.number not in counted:
            record = trial_record(trial) or {}
            alike = bool(record) and scored_alike(record, n_splits, scoring)
            kind = "completed after this fit" if alike else "scored otherwise"
        elif trial.value is None or not math.isfinite(trial.value):
            kind = "not finite"
        else:
            shown.append(trial)
            continue
        counts[kind] = counts.get(kind, 0) + 1
    if not shown:
        raise ValueError("The study has no completed trial with a finite value to plot.")
    parts = [f"{count} {kind}" for kind, count in counts.items()]
    return study, shown, f" ({', '.join(parts)} not shown)" if parts else ""


def _common_parameters(trials) -> tuple[list[str], list[str]]:
    """The parameters searched over one distribution in every trial, and the others.

    Optuna's importances use only the first kind; a resumed search that narrowed a range
    (which its study accepts) leaves that parameter out.
    """
    names = list(dict.fromkeys(name for trial in trials for name in trial.distributions))
    common = [
        name
        for name in names
        if all(name in t.distributions for t in trials)
        and all(t.distributions[name] == trials[0].distributions[name] for t in trials)
    ]
    return common, [name for name in names if name not in common]


def _objective_name(search) -> str:
    """What a trial's value is: the search's mean cross-validated score, named after the
    metric Optuna optimises (``refit``'s when it names one, else the first); a bare
    study says nothing of its metric."""
    from .search_study import objective_metric

    if not hasattr(search, "study_"):
        return "objective value"
    scoring = getattr(search, "scoring", None)
    metric = objective_metric(scoring, getattr(search, "refit", None))
    if metric is not None:
        return f"mean CV {metric}"
    if isinstance(scoring, str):
        return f"mean CV {scoring}"
    estimator = getattr(search, "estimator", None)
    if scoring is None and isinstance(estimator, BaseEstimator):
        if is_classifier(estimator):
            return "mean CV accuracy"
        if is_regressor(estimator):
            return "mean CV R²"
    return "mean CV score"


def plot_optimization_history(search, ax=None):
    """Plot every trial's objective value and the best value so far.

    Parameters
    ----------
    search : OptunaSearchCV or optuna.Study
        A fitted search with a ``study_`` attribute, or the study itself. Trials that
        failed, were pruned or are still running, and non-finite values (failed fits
        scored NaN), are left out; the legend counts them. The y-axis names the
        search's metric (a bare study's values are "objective value").
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; ``None`` creates a new figure.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``search`` has no study, the study has several objectives, or no trial
        completed with a finite value.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import optuna
    >>> from sklearn_resnet import plot_optimization_history
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=5)
    >>> plot_optimization_history(study).get_xlabel()
    'trial'
    """
    from optuna.study import StudyDirection

    study, trials, left_out = _plotted(search)
    ax = _new_axes(ax)
    maximize = study.direction == StudyDirection.MAXIMIZE
    numbers = [trial.number for trial in trials]
    values = [trial.value for trial in trials]
    running, best = [], None
    for value in values:
        better = best is None or (value > best if maximize else value < best)
        best = value if better else best
        running.append(best)
    label = f"trial value{left_out}"
    ax.plot(numbers, values, "o", color="C0", alpha=0.7, label=label)
    ax.step(numbers, running, where="post", color="C3", label="best value")
    top = values.index(max(values) if maximize else min(values))
    ax.plot([numbers[top]], [values[top]], "*", markersize=14, color="C3")
    ax.set_xlabel("trial")
    better = "higher is better" if maximize else "lower is better"
    ax.set_ylabel(f"{_objective_name(search)} ({better})")
    ax.set_title("Optimization history")
    _integer_ticks(ax)
    ax.legend(loc="best")
    return ax


#: What Optuna's fANOVA raises when no tree of its forest splits the trials.
_FANOVA_NO_VARIANCE = "zero total variance"


def plot_param_importances(search, ax=None, *, evaluator=None):
    """Plot how much each hyper-parameter explains the objective, as horizontal bars.

    Parameters
    ----------
    search : OptunaSearchCV or optuna.Study
        A fitted search with a ``study_`` attribute, or the study itself; it needs at
        least two completed trials. Importances are computed from the completed trials
        alone: a parameter whose values make trials fail or get pruned can show a low
        importance. The title counts the trials left out, and names the parameters left
        out because they were not searched over one distribution in every trial (a
        resumed search that narrowed a range). When every trial scored the same, each
        parameter gets importance zero and the title says so; so it does when the scores
        differ too little for fANOVA to split them, or only between trials with the same
        parameters.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; ``None`` creates a new figure.
    evaluator : optuna.importance.BaseImportanceEvaluator, optional
        How importances are computed; ``None`` uses fANOVA with a fixed seed, so the
        figure is reproducible.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``search`` has no study, the study has several objectives, fewer than two
        completed trials, or no parameter searched over one distribution in all of them.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import optuna
    >>> from sklearn_resnet import plot_param_importances
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> study.optimize(
    ...     lambda t: t.suggest_float("x", -1, 1) ** 2 + 0.01 * t.suggest_float("y", -1, 1),
    ...     n_trials=10,
    ... )
    >>> [bar.get_text() for bar in plot_param_importances(study).get_yticklabels()]
    ['y', 'x']
    """
    import optuna

    study, trials, left_out = _plotted(search)
    if len(trials) < 2:
        raise ValueError(
            f"Parameter importances need at least two completed trials; {len(trials)} to plot."
        )
    if not any(trial.params for trial in trials):
        raise ValueError("Parameter importances need parameters; no completed trial has any.")
    names, changed = _common_parameters(trials)
    if not names:
        raise ValueError(
            "Parameter importances need a parameter searched over the same distribution in "
            f"every shown trial; {', '.join(changed)} changed between them or is missing from "
            "some."
        )
    if changed:
        left_out += f" ({', '.join(changed)} not searched alike in every trial, left out)"
    if evaluator is None:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    if len({trial.value for trial in trials}) == 1:
        # Nothing to explain: every parameter gets zero (fANOVA itself would fail).
        importances = dict.fromkeys(names, 0.0)
        left_out = f" (all {len(trials)} shown trials scored {trials[0].value:.4g}){left_out}"
    else:
        from .search_study import quiet_optuna

        # Only the shown trials: a resumed study's trials scored otherwise stay out. The
        # study is the plot's own, so Optuna's "A new study created" stays unsaid.
        with quiet_optuna():
            shown = optuna.create_study(direction=study.direction)
        shown.add_trials(trials)
        try:
            with ignoring({"category": optuna.exceptions.ExperimentalWarning}):
                importances = optuna.importance.get_param_importances(shown, evaluator=evaluator)
        except RuntimeError as exc:
            if _FANOVA_NO_VARIANCE not in str(exc):
                raise
            # The scores differ by rounding alone (two means of the same fold scores in
            # another order), or only between trials with the same parameters: fANOVA's
            # trees find nothing to split on, so no parameter explains anything.
            importances = dict.fromkeys(names, 0.0)
            left_out = f" (no parameter explains the {len(trials)} shown trials' scores){left_out}"
    ax = _new_axes(ax)
    # Least important first, so the most important bar is drawn at the top.
    names = list(importances)[::-1]
    values = [importances[name] for name in names]
    bars = ax.barh(names, values, color="C0")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3)
    ax.set_xlabel(f"importance ({type(evaluator).__name__.removesuffix('ImportanceEvaluator')})")
    ax.set_xlim(0, max([*values, 1e-12]) * 1.15)
    ax.set_title(f"Hyperparameter importances{left_out}")
    return ax
