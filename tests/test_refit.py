"""``early_stopping="refit"``: a holdout fit picks the epoch count, a second fit uses every row."""

import warnings

import numpy as np
import optuna
import pytest
import torch
from conftest import FAST_CNN_PARAMS, FAST_PARAMS
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback

from sklearn_resnet import OptunaSearchCV, ResNetClassifier, ResNetRegressor, load_model, save_model
from sklearn_resnet.pruning import FOLD_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Enough epochs that the holdout's validation loss turns before the last one.
PARAMS = {**FAST_PARAMS, "max_epochs": 30, "n_iter_no_change": 3}
CASES = {
    "mlp_classifier": (ResNetClassifier, PARAMS),
    "mlp_regressor": (ResNetRegressor, PARAMS),
    "cnn_classifier": (ResNetClassifier, {**FAST_CNN_PARAMS, "max_epochs": 6}),
}


def _data(Estimator, n_samples=300):
    if Estimator is ResNetRegressor:
        return make_regression(n_samples, 8, noise=30.0, random_state=0)
    return make_classification(n_samples, 8, flip_y=0.3, random_state=0)


def _outputs(model, X):
    return model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)


class RecordsFits(Callback):
    """Counts the training runs it takes part in."""

    def __init__(self):
        self.fits = 0

    def on_train_begin(self, net, **kwargs):
        self.fits += 1


class ReadsValidLoss(Callback):
    """Monitors the validation loss, as skorch's ``EarlyStopping`` does by default."""

    monitor = "valid_loss"

    def on_epoch_end(self, net, **kwargs):
        assert np.isfinite(net.history[-1]["valid_loss"])


class PoisonWeightsAt(Callback):
    """Set every weight to NaN at the start of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.epoch:
            with torch.no_grad():
                for parameter in net.module_.parameters():
                    parameter.fill_(float("nan"))


@pytest.mark.parametrize("case", list(CASES))
def test_refit_is_a_fit_on_every_row_for_the_holdouts_best_epoch(case):
    Estimator, params = CASES[case]
    X, y = _data(Estimator)
    if case.startswith("cnn"):
        X = X.reshape(len(X), 1, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # silent, like any other fit
        model = Estimator(**params, early_stopping="refit").fit(X, y)
    holdout = Estimator(**params, early_stopping=True).fit(X, y)
    assert model.n_iter_ == holdout.best_epoch_ == model.best_epoch_
    if case != "cnn_classifier":  # the CNN's few epochs may all improve
        assert holdout.best_epoch_ < params["max_epochs"]
    assert [row["valid_loss"] for row in model.selection_history_] == [
        row["valid_loss"] for row in holdout.history_
    ]
    # The kept network is the one early_stopping=False trains for that many epochs.
    plain = Estimator(**{**params, "max_epochs": holdout.best_epoch_}, early_stopping=False)
    np.testing.assert_array_equal(_outputs(model, X), _outputs(plain.fit(X, y), X))
    assert model.early_stopping_ is False and model.validation_scores_ is None
    assert "valid_loss" not in model.history_[-1]


def test_fits_without_refit_drop_the_selection_history_and_partial_fit_keeps_it():
    X, y = _data(ResNetClassifier)
    model = ResNetClassifier(**PARAMS, early_stopping="refit").fit(X, y)
    selection = model.selection_history_
    model.partial_fit(X, y)
    assert model.selection_history_ is selection and model.n_iter_ == len(model.history_)
    model.set_params(early_stopping=True).fit(X, y)
    assert not hasattr(model, "selection_history_")


def test_validation_callbacks_run_in_the_holdout_fit_only():
    X, y = _data(ResNetClassifier)
    with pytest.raises(ValueError, match=r"callbacks\[1\] .* monitors 'valid_loss'"):
        callbacks = [RecordsFits, ReadsValidLoss]  # classes: skorch makes the instances
        ResNetClassifier(**PARAMS, early_stopping=False, callbacks=callbacks).fit(X, y)
    recorder = RecordsFits()
    model = ResNetClassifier(**PARAMS, early_stopping="refit", callbacks=[recorder, ReadsValidLoss])
    model.fit(X, y)
    assert recorder.fits == 0  # the estimator trains with copies
    kept = dict(model.net_.callbacks_)
    assert kept["RecordsFits"].fits == 1  # the refit's own copy
    assert "ReadsValidLoss" not in kept
    model.partial_fit(X, y)  # nothing left that needs a validation set


def test_a_diverged_holdout_fit_is_kept_without_a_refit():
    X, y = _data(ResNetRegressor)
    model = ResNetRegressor(**{**PARAMS, "max_epochs": 8}, early_stopping="refit")
    model.set_params(callbacks=[PoisonWeightsAt(5)])
    with pytest.warns(ConvergenceWarning, match="diverged at epoch 5"):
        model.fit(X, y)
    assert model.early_stopping_ is True and not hasattr(model, "selection_history_")
    assert model.n_iter_ == 5 and model.best_epoch_ <= 4
    assert np.isfinite(model.predict(X)).all()


def test_save_and_load_keep_the_selection_history(tmp_path):
    X, y = _data(ResNetClassifier)
    model = ResNetClassifier(**PARAMS, early_stopping="refit").fit(X, y)
    loaded = load_model(save_model(model, tmp_path / "model"))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    for key in ("epoch", "valid_loss", "valid_score", "train_loss"):
        assert loaded.selection_history_[:, key] == model.selection_history_[:, key]
    assert loaded.early_stopping == "refit" and loaded.n_iter_ == model.n_iter_


def test_a_search_prunes_on_the_holdout_fit_and_scores_the_refit():
    X, y = make_classification(240, 6, class_sep=2.0, random_state=0)
    net = ResNetClassifier(**{**PARAMS, "max_epochs": 6}, early_stopping="refit")
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1)
    search = OptunaSearchCV(
        net, {"lr": [1e-2, 80.0]}, n_trials=4, cv=2, pruner=pruner, random_state=0
    ).fit(X, y)
    for trial in search.study_.trials:
        folds = [key for key in trial.system_attrs if key.startswith(FOLD_ATTR)]
        assert len(folds) <= 2  # one reporting fit per fold: the refits report nothing
        assert sorted(trial.intermediate_values)[0] == 1
    assert search.best_params_ == {"lr": 1e-2}
    best = search.best_estimator_
    assert best.n_iter_ == best.best_epoch_ <= len(best.selection_history_)


def test_an_unknown_early_stopping_value_is_refused_before_training():
    X, y = _data(ResNetClassifier)
    model = ResNetClassifier(**PARAMS, early_stopping="refits")
    with pytest.raises(InvalidParameterError, match=r"'early_stopping' .*'refit'"):
        model.fit(X, y)
    assert not hasattr(model, "net_")
