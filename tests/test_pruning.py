"""Pruning internals: each fold judged against the same fold of comparable trials."""

import math

import optuna
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from sklearn_resnet import OptunaSearchCV, ResNetClassifier
from sklearn_resnet.pruning import EpochReporter, StudyHandle, claim_fold, live_study, report
from sklearn_resnet.search_study import RECORD_ATTR
from sklearn_resnet.stopping import StopTraining

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Fold curves of a finished trial: good on fold 0, poor on fold 1.
FINISHED = [[0.9, 0.9, 0.9], [0.1, 0.1, 0.1]]


def _study(pruner):
    return optuna.create_study(direction="maximize", pruner=pruner)


def _run_trial(study, folds, record=None, finish=None):
    """Report each fold's curve epoch by epoch; the pruning decisions, in order."""
    trial = study.ask()
    if record is not None:
        study._storage.set_trial_user_attr(trial._trial_id, RECORD_ATTR, record)
    decisions = []
    for curve in folds:
        key = claim_fold(study, trial._trial_id)
        decisions += [report(study, trial._trial_id, key, curve[:e]) for e in range(1, 4)]
    if finish is not None:
        study.tell(trial, finish)
    return decisions


@pytest.mark.parametrize("second_fold, pruned", [(0.0, True), (0.3, False)])
def test_successive_halving_ranks_each_fold_against_the_same_fold(second_fold, pruned):
    # Its rungs used to be shared by the folds of a trial: the first fold to reach a
    # rung filled it, and later folds were never judged.
    study = _study(optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2))
    _run_trial(study, FINISHED, finish=0.5)
    decisions = _run_trial(study, [[0.95] * 3, [second_fold] * 3])
    assert decisions[:3] == [False] * 3  # fold 0 beats the other trial's fold 0
    assert any(decisions[3:]) is pruned  # fold 1 against 0.1: 0.0 loses, 0.3 wins
    rungs = {k for k in study.trials[0].system_attrs if "completed_rung" in k}
    assert rungs and all(k.startswith("sklearn_resnet:") for k in rungs)


def test_a_resumed_study_judges_only_trials_scored_on_the_same_splits():
    study = _study(optuna.pruners.MedianPruner(n_startup_trials=1))
    _run_trial(study, FINISHED, {"n_splits": 2, "scoring": "accuracy"}, finish=0.5)
    other_cv = _run_trial(study, [[0.5] * 3], {"n_splits": 3, "scoring": "accuracy"})
    assert not any(other_cv)  # no comparable trial has completed
    same_cv = _run_trial(study, [[0.5] * 3], {"n_splits": 2, "scoring": "accuracy"})
    assert any(same_cv)  # below the other trial's 0.9 on fold 0


def test_a_pruned_trial_still_averages_the_reports_of_its_other_folds():
    study = _study(optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    first, second = (claim_fold(study, trial._trial_id) for _ in range(2))
    assert report(study, trial._trial_id, first, [0.2])
    assert report(study, trial._trial_id, second, [0.9])  # pruned already
    assert study.trials[0].intermediate_values == {1: pytest.approx(0.55)}


class _Net:
    def __init__(self, row):
        self.history = [row]


def test_a_diverged_epoch_is_left_to_the_divergence_guard():
    # A pruner judging a NaN epoch used to stop the fit as pruned, hiding the divergence.
    study = _study(optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    with live_study("token", study):
        reporter = EpochReporter(StudyHandle("token", study.study_name, None, study.pruner), 0)
        reporter.on_train_begin(None)
        row = {"valid_score": 0.1, "train_loss": math.nan, "valid_loss": math.nan}
        reporter.on_epoch_end(_Net(row))  # no StopTraining
        assert study.trials[trial.number].intermediate_values == {}
        with pytest.raises(StopTraining, match="pruned"):
            reporter.on_epoch_end(_Net({**row, "train_loss": 1.0, "valid_loss": 1.0}))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("patient", [False, True])
def test_the_wilcoxon_pruner_is_refused_before_any_training(patient):
    pruner = optuna.pruners.WilcoxonPruner()
    if patient:
        pruner = optuna.pruners.PatientPruner(pruner, patience=1)
    X, y = make_classification(60, 4, random_state=0)
    net = ResNetClassifier(max_epochs=2, early_stopping=True, random_state=0)
    search = OptunaSearchCV(net, {"lr": [1e-3, 1e-2]}, n_trials=2, cv=2, pruner=pruner)
    with pytest.raises(ValueError, match=r"WilcoxonPruner.* learning curve"):
        search.fit(X, y)
    assert not hasattr(search, "study_")


def test_an_explicit_pruner_that_could_never_act_is_refused():
    X, y = make_classification(60, 4, random_state=0)
    net = ResNetClassifier(max_epochs=2, early_stopping=False, random_state=0)
    pruner = optuna.pruners.ThresholdPruner(lower=0.0)  # never prunes a real score
    search = OptunaSearchCV(net, {"lr": [1e-3, 1e-2]}, n_trials=2, cv=2, pruner=pruner)
    with pytest.raises(ValueError, match=r"early_stopping=False\) holds out no validation set"):
        search.fit(X, y)
    # Searched, or with the default pruner, it is fine.
    space = {"lr": [1e-3], "early_stopping": [False, True]}
    OptunaSearchCV(net, space, n_trials=1, cv=2, pruner=pruner, random_state=0).fit(X, y)
    OptunaSearchCV(net, {"lr": [1e-3]}, n_trials=1, cv=2, random_state=0).fit(X, y)


def test_the_nop_pruner_turns_pruning_off_for_any_estimator():
    X, y = make_classification(60, 4, random_state=0)
    off = optuna.pruners.NopPruner()
    net = ResNetClassifier(max_epochs=2, early_stopping=False, random_state=0)
    for estimator, space in ((LogisticRegression(), {"C": [0.1, 1.0]}), (net, {"lr": [1e-3]})):
        search = OptunaSearchCV(estimator, space, n_trials=2, cv=2, pruner=off, random_state=0)
        search.fit(X, y)
        assert isinstance(search.study_.pruner, optuna.pruners.NopPruner)
