"""Figures: what each plot draws, from a fitted estimator or an Optuna study."""

import logging.handlers
import math
import sys
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from conftest import FAST_PARAMS
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import (
    ResNetClassifier,
    ResNetRegressor,
    plot_history,
    plot_optimization_history,
    plot_param_importances,
)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def early_stopped():
    X, y = make_classification(200, 5, n_informative=3, random_state=0)
    clf = ResNetClassifier(
        **{**FAST_PARAMS, "max_epochs": 6}, early_stopping=True, validation_fraction=0.3
    )
    return clf.fit(X, y), X, y


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_history_draws_losses_score_and_best_epoch(early_stopped):
    clf = early_stopped[0]
    ax = plot_history(clf)
    lines = _lines(ax)
    epochs = list(range(1, clf.n_iter_ + 1))
    np.testing.assert_array_equal(lines["training loss"].get_xdata(), epochs)
    np.testing.assert_allclose(lines["training loss"].get_ydata(), clf.loss_curve_)
    valid = [row["valid_loss"] for row in clf.history_]
    np.testing.assert_allclose(lines["validation loss"].get_ydata(), valid)
    best = lines[f"best epoch ({clf.best_epoch_})"]
    assert list(best.get_xdata()) == [clf.best_epoch_] * 2
    score = _lines(ax.right_ax)["validation accuracy"]
    np.testing.assert_allclose(score.get_ydata(), clf.validation_scores_)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "validation accuracy" in legend and "training loss" in legend
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "loss")


def test_history_without_validation_marks_the_final_epoch():
    X, y = make_regression(100, 4, random_state=0)
    reg = ResNetRegressor(**{**FAST_PARAMS, "max_epochs": 3}, early_stopping=False).fit(X, y)
    ax = plot_history(reg)
    assert set(_lines(ax)) == {"training loss", "final epoch (3)"}
    assert not hasattr(ax, "right_ax")
    assert ax.get_ylabel() == "loss (MSE of standardised targets)"
    # After a diverged or interrupted epoch the weights are an earlier epoch's.
    reg.history_[-1]["weights_epoch"] = 2
    assert "restored epoch (2)" in _lines(plot_history(reg))


def test_history_of_a_refit_draws_the_holdout_fits_validation(early_stopped):
    _, X, y = early_stopped
    params = {**FAST_PARAMS, "max_epochs": 30, "n_iter_no_change": 2, "batch_size": 16}
    clf = ResNetClassifier(**params, early_stopping="refit", validation_fraction=0.3).fit(X, y)
    selection = clf.selection_history_
    assert clf.n_iter_ < len(selection)  # the holdout fit stopped after its best epoch
    ax = plot_history(clf)
    lines = _lines(ax)
    np.testing.assert_allclose(lines["training loss"].get_ydata(), clf.loss_curve_)
    valid = lines["validation loss (holdout fit)"]
    np.testing.assert_array_equal(valid.get_xdata(), range(1, len(selection) + 1))
    np.testing.assert_allclose(valid.get_ydata(), selection[:, "valid_loss"])
    mark = lines[f"best epoch of the holdout fit ({clf.n_iter_}), the refit's last"]
    assert list(mark.get_xdata()) == [clf.n_iter_] * 2
    score = _lines(ax.right_ax)["validation accuracy"]
    np.testing.assert_allclose(score.get_ydata(), selection[:, "valid_score"])
    # Epochs trained on with partial_fit move the model's epoch, not the holdout's best.
    clf.partial_fit(X, y)
    assert f"best epoch of the holdout fit ({clf.n_iter_ - 1}), the refit's last" in _lines(
        plot_history(clf)
    )


def test_history_after_partial_fit_marks_the_final_epoch_the_model_keeps(early_stopped):
    clf, X, y = early_stopped
    clf = clone(clf).fit(X, y).partial_fit(X, y).partial_fit(X, y)
    ax = plot_history(clf)
    assert clf.best_epoch_ == clf.n_iter_  # epochs without validation: the last weights
    assert f"final epoch ({clf.n_iter_})" in _lines(ax)
    assert "validation loss" in _lines(ax)  # of the epochs that had one
    markers = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert not markers  # no best-epoch marker at a validation loss that does not exist


def test_history_draws_into_the_given_axes_and_accepts_a_pipeline(early_stopped):
    clf, X, y = early_stopped
    pipeline = make_pipeline(StandardScaler(), ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 2}))
    pipeline.fit(X, y)
    _, (left, right) = plt.subplots(1, 2)
    assert plot_history(clf, ax=left) is left
    assert plot_history(pipeline, ax=right) is right
    assert len(_lines(right)["training loss"].get_xdata()) == 2
    search = GridSearchCV(pipeline, {"resnetclassifier__max_epochs": [1, 3]}, cv=2).fit(X, y)
    best = search.best_params_["resnetclassifier__max_epochs"]
    assert len(_lines(plot_history(search))["training loss"].get_xdata()) == best


def test_history_needs_a_fitted_estimator():
    with pytest.raises(NotFittedError, match="not fitted"):
        plot_history(ResNetClassifier())
    with pytest.raises(NotFittedError, match="not fitted"):
        plot_history(make_pipeline(StandardScaler(), ResNetRegressor()))
    with pytest.raises(ValueError, match="got StandardScaler"):
        plot_history(StandardScaler())


@pytest.fixture(scope="module")
def study():
    """Twelve trials where ``x`` matters far more than ``y``, plus a failed one."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        x, y = trial.suggest_float("x", -2, 2), trial.suggest_float("y", -1, 1)
        if trial.number == 3:
            return math.nan  # a failed fit scored NaN: Optuna marks the trial failed
        return -(x**2) + 0.01 * y

    study.optimize(objective, n_trials=13)
    return study


def test_optimization_history_draws_trials_and_running_best(study):
    ax = plot_optimization_history(SimpleNamespace(study_=study))
    lines = _lines(ax)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(completed) == 12
    trials = lines["trial value (1 failed not shown)"]
    np.testing.assert_array_equal(trials.get_xdata(), [t.number for t in completed])
    running = lines["best value"].get_ydata()
    best_so_far = np.maximum.accumulate([t.value for t in completed])
    np.testing.assert_array_equal(running, best_so_far)
    assert running[-1] == study.best_value
    assert ax.get_xlabel() == "trial"


def test_optimization_history_of_a_minimised_study_leaves_out_values_that_are_not_finite():
    study = optuna.create_study()  # Optuna's default direction: minimise
    values = iter([3.0, 1.0, float("-inf"), 2.0])
    study.optimize(lambda trial: next(values), n_trials=4)
    assert study.trials[2].state == optuna.trial.TrialState.COMPLETE  # -inf is a value
    ax = plot_optimization_history(study)
    trials = _lines(ax)["trial value (1 not finite not shown)"]
    np.testing.assert_array_equal(trials.get_xdata(), [0, 1, 3])
    np.testing.assert_array_equal(_lines(ax)["best value"].get_ydata(), [3.0, 1.0, 1.0])
    star = next(line for line in ax.get_lines() if line.get_marker() == "*")
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([1], [1.0])
    assert ax.get_ylabel() == "objective value (lower is better)"


def test_optimization_history_names_the_metric_and_counts_what_it_leaves_out():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number in (1, 2):
            raise optuna.TrialPruned()
        return x

    study.optimize(objective, n_trials=5)
    study.ask()  # a trial still running (another worker's)
    ax = plot_optimization_history(study)
    assert ax.get_ylabel() == "objective value (lower is better)"
    assert "trial value (2 pruned, 1 running not shown)" in _lines(ax)


def _search_of(numbers, **attributes):
    """A fitted search as the plots see it: a maximised study of trials 0 to 5, of which
    its results count ``numbers`` (a resumed study's others were scored otherwise)."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=6)
    return SimpleNamespace(study_=study, cv_results_={"trial_number": numbers}, **attributes)


def test_optimization_history_names_the_metric_optuna_optimises():
    def scores(estimator, X, y):
        return {"z": 0.0}

    searches = {
        "mean CV neg_log_loss": {"scoring": "neg_log_loss"},
        "mean CV nll": {"scoring": {"acc": "accuracy", "nll": "neg_log_loss"}, "refit": "nll"},
        "mean CV acc": {"scoring": ["acc", "nll"], "refit": False},
        "mean CV z": {"scoring": scores, "refit": "z"},
        "mean CV score": {"scoring": scores, "refit": True},
        "mean CV accuracy": {"scoring": None, "estimator": ResNetClassifier()},
        "mean CV R²": {"scoring": None, "estimator": make_pipeline(ResNetRegressor())},
    }
    for name, attributes in searches.items():
        ax = plot_optimization_history(_search_of(list(range(6)), **attributes))
        assert ax.get_ylabel() == f"{name} (higher is better)"


def test_search_plots_leave_out_the_trials_its_results_do_not_count():
    search = _search_of([3, 4, 5], scoring="accuracy")
    ax = plot_optimization_history(search)
    trials = _lines(ax)["trial value (3 scored otherwise not shown)"]
    assert list(trials.get_xdata()) == [3, 4, 5]
    best = max(search.study_.trials[n].value for n in (3, 4, 5))
    assert _lines(ax)["best value"].get_ydata()[-1] == best
    title = plot_param_importances(search).get_title()
    assert title == "Hyperparameter importances (3 scored otherwise not shown)"


def test_param_importances_of_trials_that_all_scored_the_same_are_zero():
    constant = optuna.create_study()
    constant.optimize(lambda trial: trial.suggest_float("x", 0, 1) * 0 + 1.0, n_trials=3)
    ax = plot_param_importances(constant)
    assert [bar.get_width() for bar in ax.patches] == [0.0]
    assert ax.get_title() == "Hyperparameter importances (all 3 shown trials scored 1)"


@pytest.mark.parametrize("second", ["rounding", "same parameters"])
def test_param_importances_of_scores_no_parameter_explains_are_zero(second):
    """Scores apart by one unit in the last place (two means of the same fold scores summed
    in another order), or apart between trials with the same parameters, leave fANOVA's
    trees unsplit; the plot says so instead of failing."""
    space = {"x": optuna.distributions.FloatDistribution(0, 1)}
    points = [(0.2, 0.125), (0.7, np.nextafter(0.125, 1))]
    if second == "same parameters":
        points = [(0.2, 0.125), (0.2, 0.5)]
    study = optuna.create_study()
    study.add_trials(
        optuna.trial.create_trial(params={"x": x}, distributions=space, value=value)
        for x, value in points
    )
    ax = plot_param_importances(study)
    assert [bar.get_width() for bar in ax.patches] == [0.0]
    title = "Hyperparameter importances (no parameter explains the 2 shown trials' scores)"
    assert ax.get_title() == title


def test_param_importances_rank_the_parameters(study):
    ax = plot_param_importances(study)
    names = [label.get_text() for label in ax.get_yticklabels()]
    widths = [bar.get_width() for bar in ax.patches]
    assert names == ["y", "x"]  # most important at the top
    assert widths[1] > widths[0]
    assert sum(widths) == pytest.approx(1.0)
    assert ax.get_xlabel() == "importance (Fanova)"
    assert ax.get_title() == "Hyperparameter importances (1 failed not shown)"
    again = [bar.get_width() for bar in plot_param_importances(study).patches]
    assert again == widths  # fANOVA's forest is seeded


def test_param_importances_log_nothing_at_optunas_default_verbosity(study):
    records = logging.handlers.BufferingHandler(capacity=100)
    logger, level = logging.getLogger("optuna"), optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    logger.addHandler(records)
    try:
        plot_param_importances(study)
    finally:
        logger.removeHandler(records)
        optuna.logging.set_verbosity(level)
    assert [record.getMessage() for record in records.buffer] == []
    assert optuna.logging.get_verbosity() == level


def test_search_plots_refuse_what_they_cannot_draw(study):
    with pytest.raises(ValueError, match="study_ attribute"):
        plot_optimization_history(StandardScaler())
    multi = optuna.create_study(directions=["minimize", "maximize"])
    with pytest.raises(ValueError, match="single-objective"):
        plot_optimization_history(SimpleNamespace(study_=multi))
    with pytest.raises(ValueError, match="no completed trial"):
        plot_optimization_history(optuna.create_study())
    single = optuna.create_study()
    single.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(ValueError, match="at least two completed trials"):
        plot_param_importances(single)
    no_parameters = optuna.create_study()
    no_parameters.optimize(lambda trial: float(trial.number), n_trials=3)
    with pytest.raises(ValueError, match="no completed trial has any"):
        plot_param_importances(no_parameters)


def test_search_plots_count_the_trials_of_another_worker_apart(tmp_path):
    """Trials another worker completed after the fit (or still runs) are not 'scored
    otherwise': they are scored alike, only not yet counted by this fit's results."""
    from sklearn.linear_model import LogisticRegression

    from sklearn_resnet import OptunaSearchCV

    X, y = make_classification(100, 4, random_state=0)
    space = {"C": optuna.distributions.FloatDistribution(1e-3, 1e2, log=True)}
    settings = {"storage": str(tmp_path / "s.log"), "study_name": "s", "load_if_exists": True}
    search = OptunaSearchCV(LogisticRegression(), space, n_trials=3, cv=2, **settings)
    first = search.set_params(random_state=0).fit(X, y)
    OptunaSearchCV(LogisticRegression(), space, n_trials=2, cv=2, random_state=1, **settings).fit(
        X, y
    )
    journal = optuna.storages.journal.JournalFileBackend(settings["storage"])
    storage = optuna.storages.JournalStorage(journal)
    optuna.load_study(study_name="s", storage=storage).ask()  # a third worker's, running
    note = "(2 completed after this fit, 1 running not shown)"
    assert f"trial value {note}" in _lines(plot_optimization_history(first))
    assert plot_param_importances(first).get_title() == f"Hyperparameter importances {note}"


def test_param_importances_name_the_parameters_searched_otherwise():
    """A resumed search may narrow a range; Optuna's importances then leave the parameter
    out, and the title says so."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    wide, narrow = (-2, 2), (-1, 1)
    study.optimize(lambda t: t.suggest_float("x", *wide) + t.suggest_float("y", 0, 1), 5)
    study.optimize(lambda t: t.suggest_float("x", *narrow) + t.suggest_float("y", 0, 1), 5)
    ax = plot_param_importances(study)
    assert [label.get_text() for label in ax.get_yticklabels()] == ["y"]
    title = "Hyperparameter importances (x not searched alike in every trial, left out)"
    assert ax.get_title() == title
    only_x = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    only_x.optimize(lambda t: t.suggest_float("x", *wide), 3)
    only_x.optimize(lambda t: t.suggest_float("x", *narrow), 3)
    with pytest.raises(ValueError, match="x changed between them"):
        plot_param_importances(only_x)


@pytest.mark.parametrize(
    ("plot", "argument"),
    [(plot_history, "early_stopped"), (plot_optimization_history, "study")],
)
def test_missing_matplotlib_gives_an_install_hint(plot, argument, request, monkeypatch):
    target = request.getfixturevalue(argument)
    target = target[0] if isinstance(target, tuple) else target
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"install sklearn-resnet\[plot\]"):
        plot(target)
