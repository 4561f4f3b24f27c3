"""``early_stopping="refit"``: a holdout fit picks the epoch count, a second fit uses every row."""

import re
import warnings

import numpy as np
import optuna
import pytest
import torch
from conftest import FAST_CNN_PARAMS, FAST_PARAMS, InterruptAt
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback

from sklearn_resnet import OptunaSearchCV, ResNetClassifier, ResNetRegressor, load_model, save_model
from sklearn_resnet.defaults import MLP_REGRESSOR_REFIT_VALIDATION_FRACTION
from sklearn_resnet.persistence import CONFIG_FILE
from sklearn_resnet.pruning import FOLD_ATTR
from sklearn_resnet.stopping import interrupts_propagate

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Enough epochs that the holdout's validation loss turns before the last one.
PARAMS = {**FAST_PARAMS, "max_epochs": 30, "n_iter_no_change": 3}
CASES = {
    # Batches of 32 (the small-data choice is the full batch): it overfits within 30 epochs.
    "mlp_classifier": (ResNetClassifier, {**PARAMS, "batch_size": 32}),
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


def _in_the_refit(net) -> bool:
    """Whether ``net`` trains the refit (it validates nothing), from epoch 2 on."""
    return "valid_loss" not in net.history[0]


class InterruptRefitAt(InterruptAt):
    """Ctrl-C in epoch ``epoch`` (at least 2) of the refit."""

    def on_batch_end(self, net, training=False, **kwargs):
        if _in_the_refit(net):
            super().on_batch_end(net, training=training, **kwargs)


class PoisonWeightsAt(Callback):
    """Set every weight to NaN at the start of epoch ``epoch`` (at least 2, with
    ``refit_only``: of the refit)."""

    def __init__(self, epoch, refit_only=False):
        self.epoch = epoch
        self.refit_only = refit_only

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.epoch and (_in_the_refit(net) or not self.refit_only):
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
    # The holdout fit alone, with the share "auto" holds out for this estimator's refit.
    fraction = MLP_REGRESSOR_REFIT_VALIDATION_FRACTION if case == "mlp_regressor" else 0.1
    holdout = Estimator(**params, early_stopping=True, validation_fraction=fraction).fit(X, y)
    assert model.n_iter_ == holdout.best_epoch_ == model.best_epoch_
    if case != "cnn_classifier":  # the CNN's few epochs may all improve
        assert holdout.best_epoch_ < params["max_epochs"]
    assert [row["valid_loss"] for row in model.selection_history_] == [
        row["valid_loss"] for row in holdout.history_
    ]
    # The kept network is the one early_stopping=False trains for that many epochs, with
    # the holdout fit's "auto" batch size (a fifth held out gives the regressor a smaller one).
    same = {"max_epochs": holdout.best_epoch_, "batch_size": holdout.net_.batch_size}
    plain = Estimator(**{**params, **same}, early_stopping=False)
    np.testing.assert_array_equal(_outputs(model, X), _outputs(plain.fit(X, y), X))
    assert model.early_stopping_ is False and model.validation_scores_ is None
    assert "valid_loss" not in model.history_[-1]


def test_the_refit_keeps_the_width_and_batch_size_the_epoch_count_was_chosen_for():
    # 1,050 rows: the holdout fit trains on 945, under the 1,000 rows of the small-data
    # choices (narrow width, an ensemble, full batches, standard scaling), which all the
    # rows would not get.
    X, y = make_classification(1050, 8, flip_y=0.3, random_state=0)
    params = {**PARAMS, "width": None, "max_epochs": 8}
    model = ResNetClassifier(**params, early_stopping="refit").fit(X, y)
    holdout = ResNetClassifier(**params, early_stopping=True).fit(X, y)
    assert model.width_ == holdout.width_ == 64
    assert model.n_members_ == holdout.n_members_ == 8
    assert model.scaling_ == holdout.scaling_ == "standard"
    assert model.net_.batch_size == holdout.net_.batch_size == 256
    on_every_row = ResNetClassifier(**params, early_stopping=False).fit(X, y)
    assert (on_every_row.width_, on_every_row.n_members_, on_every_row.scaling_) == (
        256,
        1,
        "robust",
    )
    same = {
        "width": 64,
        "n_members": 8,
        "scaling": "standard",
        "batch_size": 256,
        "max_epochs": holdout.best_epoch_,
    }
    plain = ResNetClassifier(**{**params, **same}, early_stopping=False).fit(X, y)
    np.testing.assert_array_equal(model.predict_proba(X), plain.predict_proba(X))


def test_the_refit_takes_sample_and_class_weights_as_a_plain_fit_does():
    X, y = _data(ResNetClassifier)
    weight = np.random.default_rng(0).uniform(0.0, 3.0, len(y))
    weight[:10] = 0.0
    params = {**PARAMS, "class_weight": "balanced"}
    model = ResNetClassifier(**params, early_stopping="refit").fit(X, y, sample_weight=weight)
    plain = ResNetClassifier(**{**params, "max_epochs": model.n_iter_}, early_stopping=False)
    plain.fit(X, y, sample_weight=weight)
    np.testing.assert_array_equal(model.predict_proba(X), plain.predict_proba(X))


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
    callbacks = [recorder, ReadsValidLoss, ("reader", ReadsValidLoss())]
    model = ResNetClassifier(**PARAMS, early_stopping="refit", callbacks=callbacks)
    model.fit(X, y)
    assert recorder.fits == 0  # the estimator trains with copies
    kept = dict(model.net_.callbacks_)
    assert kept["RecordsFits"].fits == 1  # the refit's own copy
    assert "ReadsValidLoss" not in kept and "reader" not in kept
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


def test_an_interrupted_holdout_fit_is_kept_without_a_refit():
    X, y = _data(ResNetClassifier)
    model = ResNetClassifier(**PARAMS, early_stopping="refit", callbacks=[InterruptAt(4)])
    with pytest.warns(UserWarning, match="interrupted after 3 finished epoch"):
        model.fit(X, y)
    assert model.early_stopping_ is True and not hasattr(model, "selection_history_")
    assert "valid_loss" in model.history_[-1]


@pytest.mark.parametrize("stop", ["interrupt", "divergence"])
def test_a_refit_that_ends_early_gives_way_to_the_holdout_fit(stop):
    X, y = _data(ResNetClassifier)
    holdout = ResNetClassifier(**PARAMS, early_stopping=True).fit(X, y)
    assert holdout.best_epoch_ >= 3
    if stop == "interrupt":
        ends, message = InterruptRefitAt(3), "interrupted after 2 finished epoch"
    else:
        ends, message = PoisonWeightsAt(3, refit_only=True), "diverged at epoch 3"
    model = ResNetClassifier(**PARAMS, early_stopping="refit", callbacks=[ends])
    category = UserWarning if stop == "interrupt" else ConvergenceWarning
    with pytest.warns(category, match=f"refit on every row .*{message}.* holdout fit"):
        model.fit(X, y)
    assert model.early_stopping_ is True and not hasattr(model, "selection_history_")
    np.testing.assert_array_equal(model.predict_proba(X), holdout.predict_proba(X))


@pytest.mark.parametrize("fraction, version", [(0.3, 4), ("auto", 6)])
def test_an_abandoned_refit_keeps_and_saves_its_holdout_fits_fraction(fraction, version, tmp_path):
    X, y = _data(ResNetRegressor)
    model = ResNetRegressor(**PARAMS, validation_fraction=fraction, callbacks=[InterruptRefitAt(2)])
    with pytest.warns(UserWarning, match="refit on every row"):
        model.fit(X, y)
    held_out = 0.3 if fraction == 0.3 else 0.2
    assert model.early_stopping_ is True and model.validation_fraction_ == held_out
    path = save_model(model.set_params(callbacks=None), tmp_path / "model")
    config = path / CONFIG_FILE
    text = config.read_text()
    assert f'"format_version": {version}' in text
    assert load_model(path).validation_fraction_ == held_out
    # A file without the attribute (of an earlier version, say) takes what the parameters tell.
    config.write_text(re.sub(r'\s*"validation_fraction_": [0-9.]+,', "", text))
    assert "validation_fraction_" not in config.read_text()
    assert load_model(path).validation_fraction_ == held_out


def test_an_interrupted_refit_inside_a_search_propagates_and_changes_nothing():
    X, y = _data(ResNetClassifier)
    model = ResNetClassifier(**PARAMS, early_stopping=True).fit(X, y)
    before = model.predict_proba(X)
    model.set_params(early_stopping="refit", callbacks=[InterruptRefitAt(3)])
    with interrupts_propagate(), pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    assert model.early_stopping_ is True and not hasattr(model, "selection_history_")
    np.testing.assert_array_equal(model.predict_proba(X), before)


def test_save_and_load_keep_the_selection_history(tmp_path):
    X, y = _data(ResNetClassifier)
    model = ResNetClassifier(**PARAMS, early_stopping="refit").fit(X, y)
    loaded = load_model(save_model(model, tmp_path / "model"))
    assert '"format_version": 7' in (tmp_path / "model" / CONFIG_FILE).read_text()  # an ensemble
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
    states = [trial.state for trial in search.study_.trials]
    assert optuna.trial.TrialState.PRUNED in states
    for trial in search.study_.trials:
        folds = [key for key in trial.system_attrs if key.startswith(FOLD_ATTR)]
        assert len(folds) <= 2  # one reporting fit per fold: the refits report nothing
        assert sorted(trial.intermediate_values)[0] == 1
    assert search.best_params_ == {"lr": 1e-2}
    best = search.best_estimator_
    assert best.n_iter_ == best.best_epoch_ <= len(best.selection_history_)


def test_verbose_output_announces_the_refit_between_the_two_tables(capsys):
    X, y = _data(ResNetClassifier)
    model = ResNetClassifier(**PARAMS, early_stopping="refit", verbose=2).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    rows = [i for i, line in enumerate(lines) if re.match(r"^\s*\d+\s", line)]
    [notice] = [i for i, line in enumerate(lines) if line.startswith("Refit on all")]
    assert lines[notice] == (
        f"Refit on all 300 rows for {model.n_iter_} epochs (the holdout fit's best)."
    )
    before = [i for i in rows if i < notice]
    assert len(before) == len(model.selection_history_)
    assert len(rows) - len(before) == model.n_iter_


def test_an_unknown_early_stopping_value_is_refused_before_training():
    X, y = _data(ResNetClassifier)
    model = ResNetClassifier(**PARAMS, early_stopping="refits")
    with pytest.raises(InvalidParameterError, match=r"'early_stopping' .*'refit'"):
        model.fit(X, y)
    assert not hasattr(model, "net_")


def _held_out(history) -> int:
    return sum(batch.get("valid_batch_size", 0) for batch in history[0]["batches"])


@pytest.mark.parametrize(
    "n_samples, fraction, held_out, refit_held_out, holdout_held_out",
    [
        (150, 0.1, 20, 15, 15),
        (150, 0.2, 30, 30, 30),
        # "auto": a fifth for the refit, at least 20 rows for "auto"'s; a tenth otherwise.
        (80, "auto", 20, 16, 8),
        (150, "auto", 30, 30, 15),
        (300, "auto", 60, 60, 30),
    ],
)
def test_an_mlp_regressors_auto_refit_holds_out_at_least_twenty_rows(
    n_samples, fraction, held_out, refit_held_out, holdout_held_out
):
    X, y = _data(ResNetRegressor, n_samples)
    params = {**PARAMS, "max_epochs": 2, "validation_fraction": fraction}
    auto = ResNetRegressor(**params).fit(X, y)
    assert _held_out(auto.selection_history_) == held_out
    explicit = ResNetRegressor(**params, early_stopping="refit").fit(X, y)
    assert _held_out(explicit.selection_history_) == refit_held_out
    holdout = ResNetRegressor(**params, early_stopping=True).fit(X, y)
    assert _held_out(holdout.history_) == holdout_held_out


def test_validation_fraction_is_what_the_last_fit_held_out():
    X, y = _data(ResNetRegressor, 300)
    params = {**PARAMS, "max_epochs": 2}
    assert ResNetRegressor(**params).fit(X, y).validation_fraction_ == 0.2  # the refit's
    holdout = ResNetRegressor(**params, early_stopping=True).fit(X, y)
    assert holdout.validation_fraction_ == 0.1
    assert ResNetRegressor(**params, validation_fraction=0.3).fit(X, y).validation_fraction_ == 0.3
    assert ResNetRegressor(**params, early_stopping=False).fit(X, y).validation_fraction_ is None
    assert holdout.partial_fit(X, y).validation_fraction_ is None
    X, y = _data(ResNetClassifier, 300)
    assert ResNetClassifier(**params).fit(X, y).validation_fraction_ is None  # no holdout
    refit = ResNetClassifier(**params, early_stopping="refit").fit(X, y)
    assert refit.validation_fraction_ == 0.1


def test_the_auto_validation_fraction_is_a_tenth_but_for_an_mlp_regressors_refit():
    X, y = _data(ResNetClassifier, 300)
    params = {**PARAMS, "max_epochs": 2, "early_stopping": "refit"}
    classifier = ResNetClassifier(**params).fit(X, y)
    assert _held_out(classifier.selection_history_) == 30
    X, y = _data(ResNetRegressor, 300)
    cnn = ResNetRegressor(**{**FAST_CNN_PARAMS, "max_epochs": 2}, input_shape=(1, 8))
    cnn.set_params(early_stopping="refit").fit(X, y)
    assert _held_out(cnn.selection_history_) == 30
    assert ResNetRegressor().validation_fraction == "auto"
    with pytest.raises(InvalidParameterError, match=r"'validation_fraction' .*'auto'"):
        ResNetRegressor(**PARAMS, validation_fraction="fifth").fit(X, y)


def test_an_mlp_regressors_auto_is_the_refit_and_a_classifiers_is_not():
    X, y = _data(ResNetRegressor)
    auto = ResNetRegressor(**PARAMS).fit(X, y)
    refit = ResNetRegressor(**PARAMS, early_stopping="refit").fit(X, y)
    np.testing.assert_array_equal(auto.predict(X), refit.predict(X))
    assert auto.n_iter_ == refit.n_iter_ == refit.best_epoch_
    assert len(auto.selection_history_) == len(refit.selection_history_)
    numpy_true = ResNetRegressor(**PARAMS, early_stopping=np.True_).fit(X, y)
    assert numpy_true.early_stopping_ and not hasattr(numpy_true, "selection_history_")
    X, y = _data(ResNetClassifier)
    assert not hasattr(ResNetClassifier(**PARAMS).fit(X, y), "selection_history_")
    cnn = ResNetRegressor(**{**FAST_CNN_PARAMS, "max_epochs": 2}, input_shape=(1, 8))
    cnn.fit(*_data(ResNetRegressor))
    assert cnn.backbone_ == "cnn" and cnn.early_stopping_
    assert not hasattr(cnn, "selection_history_")
