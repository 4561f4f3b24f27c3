"""Reliability guarantees of training and prediction.

Sparse input, divergence, interrupts, out-of-memory errors, threads and global
state, and bounded memory. Input validation lives in test_reliability_inputs.py and
test_properties.py, safe loading in test_reliability_loading.py and killed searches
in test_reliability_search.py.
"""

import logging
import os
import pickle
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import FAST_CNN_PARAMS, FAST_PARAMS, InterruptAt
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from sklearn_resnet import ResNetClassifier, ResNetRegressor, load_model, save_model
from sklearn_resnet import sparse_rows as sparse_module
from sklearn_resnet.backbones.layers import GeneratorDropout
from sklearn_resnet.search_study import quiet_optuna
from sklearn_resnet.stopping import interrupts_propagate
from sklearn_resnet.training import Callback, ResNetNet
from sklearn_resnet.user_warnings import ignoring

SPARSE_X, SPARSE_Y = make_classification(300, 40, n_informative=8, random_state=0)
SPARSE_X[np.abs(SPARSE_X) < 1.0] = 0.0


def _recorded(callable_):
    """Run ``callable_`` and return its result with the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = callable_()
    return result, [w for w in caught]


# ---- sparse input -------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("scaling", ["robust", "quantile"])
def test_sparse_fit_and_predict_equal_the_dense_array(fmt, scaling):
    params = {**FAST_PARAMS, "scaling": scaling, "early_stopping": True}
    weight = np.linspace(0.5, 2.0, len(SPARSE_Y))
    dense = ResNetClassifier(**params).fit(SPARSE_X, SPARSE_Y, sample_weight=weight)
    matrix = sp.csr_matrix(SPARSE_X).asformat(fmt)
    sparse = ResNetClassifier(**params).fit(matrix, SPARSE_Y, sample_weight=weight)
    expected = dense.predict_proba(SPARSE_X)
    np.testing.assert_array_equal(sparse.predict_proba(matrix), expected)
    np.testing.assert_array_equal(dense.predict_proba(sp.csr_array(SPARSE_X)), expected)


def test_sparse_regression_and_partial_fit_match_dense():
    X, y = make_regression(200, 30, random_state=1)
    X[np.abs(X) < 1.0] = 0.0
    dense = ResNetRegressor(**FAST_PARAMS).fit(X, y)
    sparse = ResNetRegressor(**FAST_PARAMS).fit(sp.csr_matrix(X), y)
    np.testing.assert_array_equal(sparse.predict(sp.csr_matrix(X)), dense.predict(X))
    dense.partial_fit(X, y)
    sparse.partial_fit(sp.csc_matrix(X), y)
    np.testing.assert_array_equal(sparse.predict(X), dense.predict(X))


@pytest.mark.parametrize("early_stopping", [True, False])
def test_sparse_input_is_densified_one_batch_at_a_time(monkeypatch, early_stopping):
    from sklearn_resnet.base import _CHECKED_ROWS

    rows_seen = []
    original = sparse_module.dense_rows

    def spy(X):
        rows_seen.append(X.shape[0])
        return original(X)

    monkeypatch.setattr(sparse_module, "dense_rows", spy)
    clf = ResNetClassifier(**FAST_PARAMS, batch_size=32, early_stopping=early_stopping)
    clf.fit(sp.csr_matrix(SPARSE_X), SPARSE_Y)
    # A last sample merges into its batch. Without a validation set, a fixed number of
    # training rows is also run through the trained network to check its outputs.
    limit = 32 + 1 if early_stopping else max(32 + 1, _CHECKED_ROWS)
    assert rows_seen and max(rows_seen) <= limit and rows_seen.count(32) >= 8
    rows_seen.clear()
    monkeypatch.setattr("sklearn_resnet.base.dense_rows", spy)
    monkeypatch.setattr("sklearn_resnet.base.PREDICT_BATCH_SIZE", 64)
    clf.predict(sp.csr_matrix(SPARSE_X))
    assert rows_seen == [64, 64, 64, 64, 44]


def test_a_dataframe_of_sparse_columns_fits_and_predicts_like_its_dense_frame():
    pd = pytest.importorskip("pandas")
    dense = pd.DataFrame(SPARSE_X, columns=[f"f{i}" for i in range(SPARSE_X.shape[1])])
    frame = dense.astype(pd.SparseDtype("float64", 0.0))
    clf = ResNetClassifier(**FAST_PARAMS).fit(frame, SPARSE_Y)
    np.testing.assert_array_equal(clf.feature_names_in_, dense.columns)
    np.testing.assert_array_equal(clf.predict_proba(frame), clf.predict_proba(dense))
    reference = ResNetClassifier(**FAST_PARAMS).fit(dense, SPARSE_Y)
    np.testing.assert_array_equal(clf.predict_proba(dense), reference.predict_proba(dense))


def test_sparse_input_with_the_cnn_backbone_is_refused():
    clf = ResNetClassifier(**FAST_PARAMS, backbone="cnn", input_shape=(1, 40))
    with pytest.raises(ValueError, match="sparse X with the MLP backbone only"):
        clf.fit(sp.csr_matrix(SPARSE_X), SPARSE_Y)
    assert not hasattr(clf, "n_features_in_")


@pytest.mark.parametrize("Estimator", [ResNetClassifier, ResNetRegressor])
def test_sparse_input_to_a_fitted_cnn_is_refused_by_partial_fit(Estimator):
    y = SPARSE_Y if Estimator is ResNetClassifier else SPARSE_Y.astype(float)
    model = Estimator(**FAST_CNN_PARAMS, input_shape=(1, 40)).fit(SPARSE_X, y)
    before, epochs = model.predict(SPARSE_X), model.n_iter_
    with pytest.raises(ValueError, match="sparse X with the MLP backbone only"):
        model.partial_fit(sp.csr_matrix(SPARSE_X), y)
    assert model.n_iter_ == epochs
    np.testing.assert_array_equal(model.predict(SPARSE_X), before)


# ---- divergence ---------------------------------------------------------------------
class PoisonWeights(Callback):
    """Set every weight to NaN at the start of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.ended = []

    def on_epoch_end(self, net, **kwargs):
        self.ended.append(net.history[-1]["epoch"])

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.epoch:
            with torch.no_grad():
                for parameter in net.module_.parameters():
                    parameter.fill_(float("nan"))


@pytest.mark.parametrize("early_stopping", [False, True])
def test_divergence_restores_the_best_finite_epoch_and_warns(early_stopping):
    X, y = make_regression(200, 8, noise=5.0, random_state=0)
    params = {**FAST_PARAMS, "max_epochs": 8, "early_stopping": early_stopping}
    reg, caught = _recorded(
        lambda: ResNetRegressor(**params, callbacks=[PoisonWeights(5)]).fit(X, y)
    )
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(messages) == 1
    assert "diverged at epoch 5" in messages[0] and "lower learning rate" in messages[0]
    assert reg.n_iter_ == 5 and reg.best_epoch_ <= 4
    assert np.isfinite(reg.predict(X)).all()
    assert np.isnan(reg.loss_curve_[-1]) and np.isfinite(reg.loss_curve_[:4]).all()
    poison = reg.net_.callbacks_[-2][1]
    assert poison.ended == [1, 2, 3, 4, 5]  # the diverged epoch's end is seen too
    # The restored model is the one of the best epoch: training on a clean copy for
    # that many epochs with a constant rate would not be comparable, so check instead
    # that further training from it works.
    reg.partial_fit(X, y)
    assert np.isfinite(reg.predict(X)).all()


def test_divergence_from_the_first_epoch_raises_and_leaves_the_estimator_unchanged():
    X, y = make_regression(200, 8, random_state=0)
    params = {**FAST_PARAMS, "optimizer": "sgd", "lr": 1e6, "early_stopping": False}
    fresh = ResNetRegressor(**params)
    advice = r"lower learning rate than lr=1e\+06 or check the targets for extreme values\.$"
    with pytest.raises(ValueError, match=r"diverged.*" + advice):  # robust scaling already
        fresh.fit(X, y)
    advice = r"values, or use scaling='robust'\.$"
    with pytest.raises(ValueError, match=advice):
        ResNetRegressor(**params, scaling="standard").fit(X, y)
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    fitted = ResNetRegressor(**FAST_PARAMS).fit(X, y)
    before, history = fitted.predict(X), len(fitted.history_)
    fitted.set_params(optimizer="sgd", lr=1e6)
    with pytest.raises(ValueError, match="diverged"):
        fitted.fit(X, y)
    np.testing.assert_array_equal(fitted.predict(X), before)
    assert fitted.get_params()["lr"] == 1e6 and len(fitted.history_) == history


def test_diverging_partial_fit_keeps_the_previous_weights_and_optimizer():
    X, y = make_regression(200, 8, random_state=0)
    reg = ResNetRegressor(**FAST_PARAMS, early_stopping=False).fit(X, y)
    before, history = reg.predict(X), len(reg.history_)
    reg.set_params(callbacks=None)
    reg.net_.callbacks_.append(("poison", PoisonWeights(history + 1)))
    left = f"epoch of this call \\(epoch {history + 1}\\) on, .* left as it was before the call"
    with pytest.raises(ValueError, match=f"diverged: .*{left}"):
        reg.partial_fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), before)
    assert len(reg.history_) == history
    reg.net_.callbacks_ = [(n, cb) for n, cb in reg.net_.callbacks_ if n != "poison"]
    reg.partial_fit(X, y)
    assert np.isfinite(reg.predict(X)).all()
    # The failed call also left the shuffling stream as it was: the retry above trained
    # exactly as a call on a model that never failed.
    untouched = ResNetRegressor(**FAST_PARAMS, early_stopping=False).fit(X, y).partial_fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), untouched.predict(X))


class FailsAtTrainEnd(Callback):
    """Raise at the end of training, after the guard has put the best weights back."""

    def __init__(self, error):
        self.error = error

    def on_train_end(self, net, **kwargs):
        raise self.error


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_an_error_after_partial_fits_epochs_still_leaves_the_model_unchanged(error):
    X, y = make_regression(200, 8, random_state=0)
    reg = ResNetRegressor(**FAST_PARAMS, early_stopping=False).fit(X, y)
    guard = dict(reg.net_.callbacks_)["guard"]
    assert guard.initial_weights_ is None  # a finished call keeps no copy to pickle
    before, history = reg.predict(X), len(reg.history_)
    reg.net_.callbacks_.append(("fails", FailsAtTrainEnd(error)))
    with pytest.raises(type(error)):
        reg.partial_fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), before)
    assert len(reg.history_) == history and reg.n_iter_ == history
    reg.net_.callbacks_.pop()
    # The retry trains exactly as a call on a model that never failed.
    reg.partial_fit(X, y)
    untouched = ResNetRegressor(**FAST_PARAMS, early_stopping=False).fit(X, y).partial_fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), untouched.predict(X))


def test_a_net_pickled_before_the_stop_callback_still_stops_on_divergence():
    X, y = make_regression(200, 8, random_state=0)
    reg = ResNetRegressor(**FAST_PARAMS, early_stopping=False).fit(X, y)
    reg.net_.callbacks_ = [(n, cb) for n, cb in reg.net_.callbacks_ if n != "stop"]
    old = pickle.loads(pickle.dumps(reg))
    before, history = old.predict(X), len(old.history_)
    old.net_.callbacks_.insert(0, ("poison", PoisonWeights(history + 1)))
    with pytest.raises(ValueError, match="diverged"):
        old.partial_fit(X, y)
    np.testing.assert_array_equal(old.predict(X), before)
    assert old.net_.callbacks_[-1][0] == "stop"


# ---- interrupt ----------------------------------------------------------------------


def test_interrupt_keeps_the_finished_epochs_and_warns():
    X, y = make_classification(300, 10, random_state=0)
    params = {**FAST_PARAMS, "max_epochs": 10, "lr_schedule": "constant", "early_stopping": False}
    clf, caught = _recorded(
        lambda: ResNetClassifier(**params, callbacks=[InterruptAt(4)]).fit(X, y)
    )
    [warning] = [w for w in caught if "interrupted after 3 finished epoch(s)" in str(w.message)]
    # Attributed to the user's line (here the lambda above), not to the package's code.
    assert warning.filename == __file__
    assert clf.n_iter_ == 3 and clf.best_epoch_ == 3
    # The weights are those at the end of epoch 3: the same as training 3 epochs.
    three = ResNetClassifier(**{**params, "max_epochs": 3}).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), three.predict_proba(X))


def test_interrupt_with_early_stopping_keeps_the_best_validated_epoch():
    X, y = make_classification(400, 10, random_state=0)
    params = {**FAST_PARAMS, "max_epochs": 10, "early_stopping": True}
    clf, caught = _recorded(
        lambda: ResNetClassifier(**params, callbacks=[InterruptAt(6)]).fit(X, y)
    )
    assert any("interrupted" in str(w.message) for w in caught)
    assert clf.n_iter_ == 5
    losses = [row["valid_loss"] for row in clf.history_]
    assert clf.best_epoch_ == int(np.argmin(losses)) + 1
    assert "batches" in clf.history_[-1] and "train_loss" in clf.history_[-1]


def test_interrupt_before_the_first_epoch_ends_propagates_and_leaves_nothing():
    X, y = make_classification(100, 5, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, callbacks=[InterruptAt(1)])
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert not hasattr(clf, "net_") and not hasattr(clf, "classes_")


# ---- out of memory ------------------------------------------------------------------
def _raise_out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_in_fit_names_the_batch_size_and_device(monkeypatch):
    X, y = make_classification(100, 5, random_state=0)
    monkeypatch.setattr("sklearn_resnet.backbones.mlp.ResidualMLP.forward", _raise_out_of_memory)
    clf = ResNetClassifier(**FAST_PARAMS, batch_size=64)
    with pytest.raises(
        torch.OutOfMemoryError,
        match=r"'cpu': training .*\(n_members=8, width=32, depth=4, batch_size=64\) .*smaller "
        r"batch_size, a smaller width or depth, fewer n_members,",
    ):
        clf.fit(X, y)
    assert not hasattr(clf, "net_")
    # A batch size beyond the rows names what the batches held.
    with pytest.raises(torch.OutOfMemoryError, match=r"batch_size=100\)"):
        clf.set_params(batch_size=512).fit(X, y)
    clf.set_params(batch_size=64)
    # bf16 is advised only to a model that does not train in reduced precision already.
    with pytest.raises(torch.OutOfMemoryError) as caught:
        clf.fit(X, y)
    assert "precision='bf16'" in str(caught.value)
    with pytest.raises(torch.OutOfMemoryError) as caught:
        clf.set_params(precision="bf16").fit(X, y)
    assert "precision='bf16'" not in str(caught.value) and "or another device" in str(caught.value)


def test_out_of_memory_in_partial_fit_says_the_first_calls_batch_size_is_kept(monkeypatch):
    X, y = make_classification(100, 5, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, batch_size=64).fit(X, y)
    monkeypatch.setattr("sklearn_resnet.backbones.mlp.ResidualMLP.forward", _raise_out_of_memory)
    clf.set_params(batch_size=8)  # read when the network is built, not here
    with pytest.raises(torch.OutOfMemoryError, match=r"batch_size=64.*refit with fit"):
        clf.partial_fit(X, y)


def test_out_of_memory_in_predict_halves_the_batch_and_retries(monkeypatch):
    X, y = make_classification(300, 5, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    expected = clf.predict_proba(X)
    module = clf.net_.module_
    real_forward, sizes = module.forward, []

    def forward_with_little_memory(x):
        sizes.append(len(x))
        if len(x) > 48:
            _raise_out_of_memory()
        return real_forward(x)

    monkeypatch.setattr(module, "forward", forward_with_little_memory)
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-6, atol=1e-7)
    # 8192 rows, then 4096, ... 64 fail; batches of 32 (the last 12 rows padded to 16)
    # succeed for the rest of the call.
    assert sizes[0] == 304 and {s for s in sizes if s <= 48} == {32, 16}
    monkeypatch.setattr(module, "forward", _raise_out_of_memory)
    with pytest.raises(torch.OutOfMemoryError, match="CUDA out of memory"):
        clf.predict(X)


def test_a_one_row_validation_part_scores_zero_not_rounding_noise():
    # R² of targets without spread is 0 by convention; float32 sums of one row used to
    # leave a "variance" of rounding noise and scores near -1e8.
    rng = np.random.default_rng(0)
    for n_samples in (5, 10):  # one validation row each
        X = rng.normal(size=(n_samples, 4))
        reg = ResNetRegressor(**FAST_PARAMS, early_stopping=True).fit(X, X[:, 0])
        assert reg.validation_scores_ == [0.0] * len(reg.validation_scores_)


@pytest.mark.parametrize("max_epochs", [1, 2])
def test_weights_thrown_off_by_the_last_steps_are_refused_not_kept(max_epochs):
    # The epoch's mean loss (1.8e14) was finite, so the guard kept the weights of epoch 1;
    # they give infinite outputs, and predict on the training rows used to blame X. (A
    # width-32 net trained without a validation set: a wider one's loss is NaN from the
    # first epoch, a case of its own.)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    y = X @ [1, 2, -1, 0.5] + 0.1 * rng.normal(size=100) + 5
    reg = ResNetRegressor(
        max_epochs=max_epochs,
        width=32,
        early_stopping=False,
        lr=0.2,
        optimizer="sgd",
        lr_schedule="constant",
        random_state=0,
    )
    message = r"diverged: the weights training kept \(those of epoch 1, whose mean training"
    with pytest.raises(ValueError, match=message), warnings.catch_warnings():
        warnings.simplefilter("error")  # no divergence warning before the error
        reg.fit(X, y)
    assert not hasattr(reg, "net_")
    fitted = ResNetRegressor(random_state=0, max_epochs=2).fit(X, y)
    before = fitted.predict(X)
    with pytest.raises(ValueError, match="diverged: the weights training kept"):
        fitted.set_params(**reg.get_params()).fit(X, y)  # a refit keeps the model it had
    np.testing.assert_array_equal(fitted.predict(X), before)


def test_a_constant_target_predicted_exactly_scores_one_as_in_r2_score():
    from sklearn.metrics import r2_score

    from sklearn_resnet.inputs import spawn_seeds, split_indices

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    Y = np.c_[X @ [1.0, 2.0, -1.0, 0.5] + 0.5 * rng.normal(size=300), np.full(300, 3.0)]
    reg = ResNetRegressor(**FAST_PARAMS, early_stopping=True).fit(X, Y)
    _, valid = split_indices(300, 0.1, spawn_seeds(FAST_PARAMS["random_state"], 4)[2])
    per_output = r2_score(Y[valid], reg.predict(X[valid]), multioutput="raw_values")
    assert per_output[1] == 1.0
    kept = reg.validation_scores_[reg.best_epoch_ - 1]  # the epoch whose weights it holds
    assert kept == pytest.approx(per_output.mean(), abs=1e-5)
    constant = ResNetRegressor(**FAST_PARAMS, early_stopping=True).fit(X, Y[:, 1])
    assert constant.validation_scores_ == [1.0] * len(constant.validation_scores_)


def test_the_training_rows_weights_do_not_depend_on_the_validation_rows():
    from sklearn_resnet.inputs import spawn_seeds, split_indices

    X, y = make_classification(300, 6, random_state=0)
    params = {**FAST_PARAMS, "early_stopping": True}
    split_seed = spawn_seeds(params["random_state"], 4)[2]
    _, valid_idx = split_indices(len(y), 0.1, split_seed, y)
    losses = []
    for heavy in (2.0, 1e300):  # 1e300 used to turn every training weight into 0 in float32
        weight = np.ones(len(y))
        weight[valid_idx[0]] = heavy
        clf = ResNetClassifier(**params).fit(X, y, sample_weight=weight)
        losses.append(clf.history_[:, "train_loss"])
    assert losses[0] == losses[1]
    assert losses[1][-1] < losses[1][0]


# ---- threads and global state -------------------------------------------------------
def _global_state():
    return (
        torch.get_num_threads(),
        torch.get_default_dtype(),
        torch.are_deterministic_algorithms_enabled(),
        torch.get_rng_state(),
        np.random.get_state()[1].copy(),
    )


def _assert_same_state(before, after):
    assert before[:3] == after[:3]
    assert torch.equal(before[3], after[3])
    np.testing.assert_array_equal(before[4], after[4])


def test_fit_and_predict_leave_torch_and_numpy_globals_as_found():
    X, y = make_classification(200, 6, random_state=0)
    torch.manual_seed(123)
    np.random.seed(7)
    before = _global_state()
    clf = ResNetClassifier(**FAST_PARAMS, dropout=0.2, early_stopping=True).fit(X, y)
    clf.partial_fit(X, y)
    clf.predict_proba(X)
    ResNetRegressor(**{**FAST_PARAMS, "random_state": None}).fit(X, y.astype(float)).predict(X)
    _assert_same_state(before, _global_state())


def test_concurrent_fits_in_threads_equal_sequential_fits():
    X, y = make_classification(300, 8, random_state=0)
    params = [
        {**FAST_PARAMS, "dropout": 0.3, "random_state": seed, "max_epochs": 4} for seed in (0, 1, 2)
    ]
    sequential = [ResNetClassifier(**p).fit(X, y).predict_proba(X) for p in params]
    results = [None] * len(params)

    def fit(i):
        results[i] = ResNetClassifier(**params[i]).fit(X, y).predict_proba(X)

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(len(params))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, expected in zip(results, sequential, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_dropout_masks_come_from_a_generator_seeded_per_training_call(monkeypatch):
    # Each training call seeds its own dropout generator: from random_state for fit, and
    # a fresh draw for each partial_fit, so that continued training gets new masks.
    X, y = make_classification(120, 6, random_state=0)
    seeds = []
    forward = GeneratorDropout.forward

    def recording_forward(layer, x):
        if layer.training:
            seeds.append(layer.generator.initial_seed())
        return forward(layer, x)

    monkeypatch.setattr(GeneratorDropout, "forward", recording_forward)

    def seeds_of(call):
        seeds.clear()
        call()
        assert seeds  # dropout ran
        return set(seeds)

    params = {**FAST_PARAMS, "dropout": 0.2, "early_stopping": False}
    first = seeds_of(lambda: ResNetClassifier(**params).fit(X, y))
    again = seeds_of(lambda: ResNetClassifier(**params).fit(X, y))
    other = seeds_of(lambda: ResNetClassifier(**{**params, "random_state": 1}).fit(X, y))
    assert len(first) == 1 and first == again and first != other
    model = ResNetClassifier(**params).fit(X, y)
    continued = [seeds_of(lambda: model.partial_fit(X, y)) for _ in range(2)]
    assert len({*continued[0], *continued[1], *first}) == 3


def test_a_float64_default_dtype_changes_neither_the_model_nor_loading(tmp_path):
    # Scientific code often sets torch's default dtype to float64; the networks stay
    # float32, and the seeded initial weights do not depend on it.
    X, y = make_classification(120, 6, random_state=0)
    images = np.random.default_rng(0).normal(size=(40, 1, 8, 8))
    fits = {
        "classifier": lambda: ResNetClassifier(**FAST_PARAMS, scaling="quantile").fit(X, y),
        "regressor": lambda: ResNetRegressor(**FAST_PARAMS).fit(X, y.astype(float)),
        "cnn": lambda: ResNetClassifier(**FAST_CNN_PARAMS, augment="flip").fit(images, y[:40]),
    }
    data = {"classifier": X, "regressor": X, "cnn": images}
    expected = {name: fit() for name, fit in fits.items()}
    save_model(expected["classifier"], tmp_path / "model")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for name, fit in fits.items():
            np.testing.assert_array_equal(
                fit().predict(data[name]), expected[name].predict(data[name])
            )
        loaded = load_model(tmp_path / "model")
        loaded.partial_fit(X, y)
        exported = _onnx_outputs(expected["regressor"], X, tmp_path / "model.onnx")
    finally:
        torch.set_default_dtype(previous)
    assert next(loaded.net_.module_.parameters()).dtype == torch.float32
    if exported is not None:
        np.testing.assert_allclose(exported, expected["regressor"].predict(X), atol=1e-5)


def _onnx_outputs(estimator, X, path):
    """The exported model's outputs for ``X``, or ``None`` without the onnx extra."""
    try:
        import onnxruntime
    except ImportError:
        return None
    from sklearn_resnet import to_onnx

    session = onnxruntime.InferenceSession(str(to_onnx(estimator, path)))
    return session.run(None, {"input": X.astype(np.float32)})[0]


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_fit_works_inside_the_callers_no_grad_or_inference_mode(mode, tmp_path):
    X, y = make_classification(100, 6, random_state=0)
    expected = ResNetClassifier(**FAST_PARAMS).fit(X, y).predict_proba(X)
    save_model(ResNetClassifier(**FAST_PARAMS).fit(X, y), tmp_path / "model")
    with mode():
        clf = ResNetClassifier(**FAST_PARAMS).fit(X, y)
        got = clf.predict_proba(X)
        clf.partial_fit(X, y)
        loaded = load_model(tmp_path / "model")
        assert torch.is_inference_mode_enabled() == (mode is torch.inference_mode)
    np.testing.assert_array_equal(got, expected)
    assert clf.n_iter_ == FAST_PARAMS["max_epochs"] + 1
    loaded.partial_fit(X, y)  # a model loaded inside the mode still trains
    assert loaded.n_iter_ == FAST_PARAMS["max_epochs"] + 1


def test_overlapping_quiet_searches_restore_optunas_verbosity():
    optuna = pytest.importorskip("optuna")
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        first, second = quiet_optuna(), quiet_optuna()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # the first search ends while the second runs
        assert optuna.logging.get_verbosity() == optuna.logging.WARNING
        second.__exit__(None, None, None)
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(previous)


def test_quiet_blocks_in_two_threads_leave_the_warning_filters_as_found():
    # Without the shared lock the second block would enter while the first runs and,
    # exiting last, put back a filter list that holds the first block's filter.
    before = list(warnings.filters)
    first_inside, second_inside, first_done = (threading.Event() for _ in range(3))

    def first():
        with ignoring({"category": FutureWarning}):
            first_inside.set()
            second_inside.wait(timeout=0.5)  # in vain: the second waits for the lock
        first_done.set()

    def second():
        first_inside.wait()
        with ignoring({"category": DeprecationWarning}):
            second_inside.set()
            first_done.wait(timeout=5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert warnings.filters == before


# ---- memory -------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_many_one_row_predicts_do_not_grow_memory():
    X, y = make_classification(200, 8, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    for row in X[:300]:
        clf.predict(row[None])
    start = _rss_bytes()
    for _ in range(10):
        for row in X[:300]:
            clf.predict(row[None])
    assert _rss_bytes() - start < 4 * 2**20


def test_predict_memory_is_the_output_plus_one_batch(monkeypatch):
    monkeypatch.setattr("sklearn_resnet.base.PREDICT_BATCH_SIZE", 1024)
    X, y = make_regression(50_000, 32, random_state=0)
    reg = ResNetRegressor(**{**FAST_PARAMS, "max_epochs": 1}).fit(X[:500], y[:500])
    clf = ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 1}).fit(X[:500], y[:500] > 0)
    batch_bytes = 1024 * 32 * 4
    for predict, output_bytes in [
        (reg.predict, 50_000 * 8),
        (clf.predict, 50_000 * 8),
        (clf.predict_proba, 50_000 * 2 * 8),
    ]:
        tracemalloc.start()
        predict(X)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < output_bytes + 4 * batch_bytes, (predict, peak)


@pytest.mark.parametrize(
    "early_stopping, width", [(True, "n_members=8, width=64"), ("auto", "width=256")]
)
def test_out_of_memory_names_the_width_planned_for_the_training_rows(
    monkeypatch, early_stopping, width
):
    """1,050 rows leave 945 for training once early stopping takes its tenth: the
    small-data choices (eight networks of width 64), not those for 1,050 rows (one of
    256). An MLP classifier's "auto" holds nothing out on 1,050 rows, and trains at 256."""
    X, y = make_classification(1050, 5, random_state=0)
    monkeypatch.setattr("sklearn_resnet.backbones.mlp.ResidualMLP.forward", _raise_out_of_memory)
    clf = ResNetClassifier(depth=4, max_epochs=1, device="cpu", random_state=0)
    clf.set_params(early_stopping=early_stopping)
    with pytest.raises(torch.OutOfMemoryError, match=rf"\({width}, depth=4, batch_size="):
        clf.fit(X, y)


def test_the_first_reason_to_stop_in_an_epoch_wins():
    # The guard asks first: an epoch that diverges as patience runs out is a divergence
    # (with its warning and restored weights), not an ordinary early stop.
    from types import SimpleNamespace

    from sklearn_resnet.stopping import DIVERGED, EARLY_STOPPED, request_stop

    net = SimpleNamespace()
    request_stop(net, DIVERGED)
    request_stop(net, EARLY_STOPPED)
    assert net.stop_request_ == DIVERGED


def test_one_infinite_output_among_finite_ones_is_enough_to_refuse_the_weights(monkeypatch):
    import sklearn_resnet.base as base_module

    original = base_module.batched_inference

    def one_infinite(*args, **kwargs):
        outputs = original(*args, **kwargs)
        outputs[3, 0] = np.inf
        return outputs

    monkeypatch.setattr(base_module, "batched_inference", one_infinite)
    X, y = make_regression(100, 4, random_state=0)
    reg = ResNetRegressor(**FAST_PARAMS, early_stopping=False)
    with pytest.raises(ValueError, match="diverged: the weights training kept"):
        reg.fit(X, y)
    assert not hasattr(reg, "net_")


def test_ignoring_silences_warnings_and_loggers_inside_and_restores_them_after():
    logger = logging.getLogger("sklearn_resnet.test.ignoring")
    logger.setLevel(logging.INFO)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with ignoring({"category": UserWarning}, loggers=[logger.name]):
            assert logger.level == logging.CRITICAL
            warnings.warn("library noise", UserWarning, stacklevel=1)
        warnings.warn("the user's own", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == ["the user's own"]
    assert logger.level == logging.INFO


def test_a_non_finite_validation_loss_counts_as_a_divergence(monkeypatch):
    real = ResNetNet.get_loss

    def nan_when_validating(self, y_pred, y_true, X=None, training=False):
        loss = real(self, y_pred, y_true, X=X, training=training)
        return loss if training else loss * float("nan")

    monkeypatch.setattr(ResNetNet, "get_loss", nan_when_validating)
    X, y = make_classification(300, 4, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, early_stopping=True)
    with pytest.raises(ValueError, match="diverged"):
        clf.fit(X, y)


def test_an_interrupt_inside_interrupts_propagate_raises_even_after_finished_epochs():
    X, y = make_classification(200, 4, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, callbacks=[InterruptAt(2)])
    with interrupts_propagate(), pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert not hasattr(clf, "net_")


def test_a_failed_fp16_partial_fit_puts_the_gradient_scaler_back():
    X, y = make_regression(200, 8, random_state=0)
    reg = ResNetRegressor(**FAST_PARAMS, precision="16", early_stopping=False).fit(X, y)
    before = reg.net_.grad_scaler_.state_dict()
    reg.net_.callbacks_.append(("fails", FailsAtTrainEnd(OSError("disk full"))))
    with pytest.raises(OSError):
        reg.partial_fit(X, y)
    assert reg.net_.grad_scaler_.state_dict() == before
