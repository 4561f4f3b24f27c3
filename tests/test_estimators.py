import io
import os
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST_CNN_PARAMS, FAST_PARAMS, InterruptAt
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_resnet import ResNetClassifier, ResNetRegressor

ESTIMATORS = [ResNetClassifier, ResNetRegressor]


def data_for(Estimator, n=120, n_features=6, seed=0):
    if Estimator is ResNetClassifier:
        return make_classification(n, n_features, n_informative=4, n_classes=3, random_state=seed)
    return make_regression(n, n_features, noise=1.0, random_state=seed)


# ---- basic contract -----------------------------------------------------------------------
def test_binary_and_multiclass_with_string_labels():
    X, y = make_classification(150, 5, n_informative=3, n_classes=3, random_state=0)
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, labels)
    assert clf.classes_.tolist() == ["cat", "dog", "emu"]
    pred = clf.predict(X)
    assert pred.dtype == labels.dtype and set(pred) <= set(labels)
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    binary = ResNetClassifier(**FAST_PARAMS).fit(X, labels == "dog")
    assert binary.classes_.tolist() == [False, True]
    assert binary.decision_function(X).shape == (150,)


def test_pandas_categorical_labels_and_feature_names():
    X, y = make_classification(100, 4, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    labels = pd.Series(pd.Categorical(np.where(y == 1, "yes", "no")))
    clf = ResNetClassifier(**FAST_PARAMS).fit(frame, labels)
    assert clf.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert set(clf.predict(frame)) <= {"yes", "no"}
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"a": "z"}))
    shuffled = frame.set_axis(np.random.default_rng(0).permutation(100) + 5)
    np.testing.assert_array_equal(clf.predict_proba(shuffled), clf.predict_proba(frame))


def test_regressor_single_and_multi_output_with_target_standardisation():
    X, y = make_regression(200, 5, n_targets=2, noise=0.1, random_state=0)
    y = y * 1000 + 5000  # far from zero mean / unit scale
    reg = ResNetRegressor(**FAST_PARAMS).fit(X, y)
    assert reg.n_outputs_ == 2 and reg.predict(X).shape == (200, 2)
    assert reg.score(X, y) > 0.8
    np.testing.assert_allclose(reg._y_mean, y.mean(axis=0))
    single = ResNetRegressor(**FAST_PARAMS).fit(X, y[:, 0])
    assert single.predict(X).shape == (200,) and single.predict(X).dtype == np.float64


def test_fitted_attributes():
    X, y = data_for(ResNetClassifier, n=1200)
    clf = ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 4}, early_stopping=True).fit(X, y)
    assert clf.early_stopping_
    assert clf.n_features_in_ == 6 and clf.n_outputs_ == 3
    assert clf.n_iter_ == len(clf.history_) == len(clf.loss_curve_) == 4
    assert len(clf.validation_scores_) == 4 and 1 <= clf.best_epoch_ <= 4
    assert clf.best_validation_score_ == clf.validation_scores_[clf.best_epoch_ - 1]
    assert isinstance(clf.module_, torch.nn.Module) and clf.module_ is clf.net_.module_
    assert clf.device_ == "cpu" and clf.backbone_ == "mlp" and clf.precision_ == "32"
    every_row = ResNetClassifier(**FAST_PARAMS).fit(X, y)  # an MLP on 1,200 rows: no holdout
    assert not every_row.early_stopping_ and every_row.validation_scores_ is None
    assert every_row.best_validation_score_ is None
    assert every_row.best_epoch_ == every_row.n_iter_ == 5
    assert clf.width_ == 32 and clf.scaling_ == "robust" and clf.augment_ is None
    auto = ResNetClassifier(**{**FAST_PARAMS, "width": None}).fit(X[:200], y[:200])
    assert auto.width_ == 64  # a narrower MLP below 1,000 training rows
    reg = ResNetRegressor(**{**FAST_PARAMS, "width": None}).fit(X[:200], y[:200])
    assert reg.width_ == 256  # the regressor keeps its width


@pytest.mark.parametrize("cls", [ResNetClassifier, ResNetRegressor])
def test_both_estimators_default_to_the_same_auto_recipe(cls):
    assert cls().get_params()["augment"] == "auto" and cls().get_params()["scaling"] == "auto"
    X, y = data_for(cls, n=40)
    cnn = cls(**{**FAST_CNN_PARAMS, "max_epochs": 1}, input_shape=(1, 6)).fit(X, y)
    assert cnn.augment_ == "shift" and cnn.scaling_ == "standard"


# ---- backbones through the estimator ------------------------------------------------------
def test_depth_20_on_tabular_rows_and_resnet20_cnn_on_flat_digits():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16, y[:300]
    mlp = ResNetClassifier(depth=20, width=32, n_members=1, max_epochs=2, random_state=0)
    mlp.fit(X, y)
    assert mlp.backbone_ == "mlp" and len(mlp.module_.blocks) == 9
    cnn = ResNetClassifier(depth=20, input_shape=(1, 8, 8), max_epochs=2, random_state=0)
    cnn.fit(X, y)
    assert cnn.backbone_ == "cnn" and cnn.input_shape_ == (1, 8, 8)
    # ResNet-20 has 272,474 parameters for 3 input channels; one channel saves 2x9x16 stem weights.
    assert sum(p.numel() for p in cnn.module_.parameters()) == 272_474 - 2 * 9 * 16
    assert cnn.predict(X).shape == (300,)


def test_auto_backbone_uses_cnn_for_images_and_accepts_flat_rows_at_predict():
    X, y = load_digits(return_X_y=True)
    images = X[:200].reshape(-1, 1, 8, 8) / 16
    clf = ResNetClassifier(**FAST_CNN_PARAMS).fit(images, y[:200])
    assert clf.backbone_ == "cnn" and clf.n_features_in_ == 64
    np.testing.assert_array_equal(clf.predict(images), clf.predict(X[:200] / 16))


def test_1d_cnn_for_signals():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2, 30)).astype(np.float32)
    y = (X[:, 0, :10].mean(axis=1) > 0).astype(int)
    clf = ResNetClassifier(**FAST_CNN_PARAMS).fit(X, y)
    assert clf.input_shape_ == (2, 30)
    assert isinstance(clf.module_.stem, torch.nn.Conv1d)
    flat = ResNetRegressor(backbone="cnn", **FAST_CNN_PARAMS).fit(X.reshape(120, -1), y)
    assert flat.input_shape_ == (1, 60)


@pytest.mark.parametrize("block, depth", [("bottleneck", 11), ("preact", 8), ("basic", 8)])
def test_cnn_blocks(block, depth):
    X, y = load_digits(return_X_y=True)
    params = {**FAST_CNN_PARAMS, "depth": depth, "max_epochs": 1}
    clf = ResNetClassifier(block=block, input_shape=(1, 8, 8), **params).fit(X[:100], y[:100])
    assert clf.predict(X[:5]).shape == (5,)


# ---- training behaviour -------------------------------------------------------------------
def test_every_callback_sees_the_epoch_that_ends_training():
    from skorch.callbacks import Callback

    class Seen(Callback):
        def initialize(self):
            self.epochs = []
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs.append(net.history[-1]["epoch"])

    X, y = make_classification(600, 10, n_informative=3, flip_y=0.3, random_state=0)
    seen = Seen()
    clf = ResNetClassifier(
        **{**FAST_PARAMS, "max_epochs": 60},
        lr=1e-2,
        early_stopping=True,
        n_iter_no_change=2,
        callbacks=[seen],
    ).fit(X, y)
    assert clf.early_stopping_ and clf.n_iter_ < 60  # stopped early
    assert clf.net_.callbacks_[-1][0] == "stop"
    fitted_seen = clf.net_.callbacks_[-2][1]  # the fit's own copy of the callback
    assert fitted_seen.epochs == list(range(1, clf.n_iter_ + 1))


def test_printed_tables_show_the_epoch_that_ends_training(capsys):
    """skorch moves PrintLog callbacks to the end of the list; the stop comes after them."""
    from skorch.callbacks import PrintLog

    X, y = make_classification(600, 10, n_informative=3, flip_y=0.3, random_state=0)
    rows = []
    params = {**FAST_PARAMS, "max_epochs": 60, "lr": 1e-2, "verbose": 2}
    params.update(early_stopping=True, n_iter_no_change=2)
    clf = ResNetClassifier(**params, callbacks=[PrintLog(sink=rows.append)]).fit(X, y)
    assert clf.n_iter_ < 60 and clf.net_.callbacks_[-1][0] == "stop"
    epochs = [int(row.split()[0]) for row in rows if row.strip()[:1].isdigit()]
    assert epochs == list(range(1, clf.n_iter_ + 1))
    printed = capsys.readouterr().out.splitlines()
    own = [int(line.split()[0]) for line in printed if line.strip()[:1].isdigit()]
    assert own == list(range(1, clf.n_iter_ + 1))


def test_best_epoch_follows_training_continued_by_partial_fit():
    X, y = data_for(ResNetClassifier, n=1200)
    clf = ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 4}, early_stopping=True).fit(X, y)
    assert clf.early_stopping_
    clf.partial_fit(X, y)
    # The module now holds the weights of the epoch partial_fit just trained.
    assert clf.n_iter_ == 5 and clf.best_epoch_ == 5
    assert clf.best_validation_score_ is None


def test_sample_weight_zero_is_the_same_as_removing_the_sample():
    X, y = data_for(ResNetRegressor)
    weight = np.ones(len(X))
    weight[::3] = 0
    weighted = ResNetRegressor(**FAST_PARAMS).fit(X, y, sample_weight=weight)
    removed = ResNetRegressor(**FAST_PARAMS).fit(X[weight > 0], y[weight > 0])
    np.testing.assert_array_equal(weighted.predict(X), removed.predict(X))


def test_sample_weight_and_class_weight_change_the_model():
    X, y = make_classification(200, 5, weights=[0.9], random_state=0)
    plain = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    balanced = ResNetClassifier(class_weight="balanced", **FAST_PARAMS).fit(X, y)
    dict_weight = ResNetClassifier(class_weight={0: 1, 1: 9}, **FAST_PARAMS).fit(X, y)
    assert balanced.predict(X).mean() > plain.predict(X).mean()
    assert dict_weight.predict(X).mean() > plain.predict(X).mean()
    uniform = ResNetClassifier(**FAST_PARAMS).fit(X, y, sample_weight=np.full(200, 3.0))
    np.testing.assert_array_equal(uniform.predict_proba(X), plain.predict_proba(X))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_partial_fit_continues_training(Estimator):
    X, y = data_for(Estimator)
    est = Estimator(**FAST_PARAMS)
    kwargs = {"classes": np.unique(y)} if Estimator is ResNetClassifier else {}
    est.partial_fit(X, y, **kwargs)
    assert est.n_iter_ == 1
    module = est.module_
    first = _outputs(est, X)
    est.partial_fit(X, y)
    assert est.n_iter_ == 2 and est.module_ is module
    assert not np.array_equal(first, _outputs(est, X))
    fitted = est.fit(X, y).n_iter_
    est.partial_fit(X, y)  # continues a fitted model
    assert est.n_iter_ == fitted + 1


def test_a_first_chunk_smaller_than_batch_size_does_not_shrink_later_batches():
    X, y = make_classification(400, 6, random_state=0)
    clf = ResNetClassifier(**{**FAST_PARAMS, "batch_size": 64})
    clf.partial_fit(X[:10], y[:10], classes=[0, 1])
    clf.partial_fit(X, y)
    steps = [len(clf.net_.history[epoch, "batches"]) for epoch in range(2)]
    assert steps == [1, 7]  # 10 rows in one batch, then 400 rows in batches of 64
    fitted = ResNetClassifier(**{**FAST_PARAMS, "batch_size": 64, "max_epochs": 1})
    fitted.fit(X[:10], y[:10]).partial_fit(X, y)
    assert len(fitted.net_.history[-1, "batches"]) == 7


def test_partial_fit_errors():
    X, y = data_for(ResNetClassifier)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        ResNetClassifier(**FAST_PARAMS).partial_fit(X, y)
    clf = ResNetClassifier(**FAST_PARAMS).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes_"):
        clf.partial_fit(X, np.full(len(X), 7))
    with pytest.raises(ValueError, match="X has 5 features"):
        clf.partial_fit(X[:, :5], y)


# ---- reproducibility and global state -----------------------------------------------------
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_random_state_gives_bit_identical_refits(Estimator):
    X, y = data_for(Estimator, n=1100)  # large enough for early stopping's split
    params = {**FAST_PARAMS, "dropout": 0.2, "max_epochs": 3}
    first = _outputs(Estimator(**params).fit(X, y), X)
    second = _outputs(Estimator(**params).fit(X, y), X)
    np.testing.assert_array_equal(first, second)
    other = _outputs(Estimator(**{**params, "random_state": 1}).fit(X, y), X)
    assert not np.array_equal(first, other)


def test_fit_leaves_global_rngs_and_settings_unchanged():
    X, y = data_for(ResNetClassifier)
    np.random.seed(123)
    torch.manual_seed(123)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    for random_state in (0, None):
        clf = ResNetClassifier(**{**FAST_PARAMS, "random_state": random_state, "dropout": 0.1})
        clf.fit(X, y).predict(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert torch.get_num_threads() == threads and torch.get_default_dtype() == dtype


def test_random_state_none_draws_fresh_seeds():
    X, y = data_for(ResNetRegressor)
    params = {**FAST_PARAMS, "random_state": None}
    a = ResNetRegressor(**params).fit(X, y).predict(X)
    b = ResNetRegressor(**params).fit(X, y).predict(X)
    assert not np.array_equal(a, b)


# ---- bad input ----------------------------------------------------------------------------
BAD_INPUT = [
    (
        lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), y),
        ValueError,
        "Input X contains NaN",
    ),
    (
        lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), y),
        ValueError,
        "Input X contains infinity",
    ),
    (lambda X, y: (X[:0], y[:0]), ValueError, "0 sample"),
    (lambda X, y: (X, y[:-1]), ValueError, "inconsistent numbers of samples"),
    (lambda X, y: (X.astype(str).astype(object) + "x", y), ValueError, "could not convert"),
    (lambda X, y: (X[:, 0], y), ValueError, "Expected 2D array"),
]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("corrupt, error, message", BAD_INPUT)
def test_bad_input_is_refused_before_training(Estimator, corrupt, error, message):
    X, y = data_for(Estimator)
    est = Estimator(**FAST_PARAMS)
    with pytest.raises(error, match=message):
        est.fit(*corrupt(X, y))
    assert not hasattr(est, "net_") and not hasattr(est, "n_features_in_")


def test_nan_in_y_and_single_class():
    X, y = data_for(ResNetRegressor)
    with pytest.raises(ValueError, match="Input y contains NaN"):
        ResNetRegressor(**FAST_PARAMS).fit(X, np.where(np.arange(len(y)) == 2, np.nan, y))
    with pytest.raises(ValueError, match="at least 2 classes"):
        ResNetClassifier(**FAST_PARAMS).fit(X, np.zeros(len(X)))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"lr": 0}, "'lr' parameter"),
        ({"lr": -1.0}, "'lr' parameter"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"backbone": "rnn"}, "'backbone' parameter"),
        ({"block": "wide"}, "'block' parameter"),
        ({"depth": 21}, r"'depth' parameter .* 20, 22"),
        ({"backbone": "cnn", "depth": 21}, r"'depth' parameter .*14, 20, 26, 32.*6n\+2.* Got 21"),
        ({"device": "cuda:7"}, r"'device' parameter .* available: \['cpu'"),
        ({"device": "tpu"}, r"'device' parameter .* available"),
        (
            {"input_shape": (1, 3, 3)},
            r"'input_shape' parameter .* 9 values per sample, but X has 6",
        ),
        ({"input_shape": (1, 2, 1, 3)}, r"takes samples shaped \(C, L\) or \(C, H, W\)"),
    ],
)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_parameters_name_the_parameter(Estimator, params, message):
    X, y = data_for(Estimator)
    est = Estimator(**{**FAST_PARAMS, **params})
    with pytest.raises((ValueError, InvalidParameterError), match=message):
        est.fit(X, y)
    assert not hasattr(est, "net_")


def test_wrong_features_at_predict_and_unfitted():
    X, y = data_for(ResNetClassifier)
    clf = ResNetClassifier(**FAST_PARAMS)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    clf.fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but ResNetClassifier is expecting 6"):
        clf.predict(X[:, :5])
    cnn = ResNetClassifier(input_shape=(1, 2, 3), **FAST_CNN_PARAMS).fit(X, y)
    with pytest.raises(ValueError, match="X has 8 features"):
        cnn.predict(np.zeros((2, 1, 2, 4)))


def test_predict_never_copies_all_of_X():
    import tracemalloc

    X, y = data_for(ResNetClassifier, n=200, n_features=64)
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    big = np.random.default_rng(0).normal(size=(200_000, 64))  # 102 MB of float64
    tracemalloc.start()
    proba = clf.predict_proba(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    output = proba.nbytes  # 200,000 x 3 float64 = 4.8 MB
    # A float32 copy of X alone would be 51 MB; allow the output, its softmax and a few batches.
    assert peak < 3 * output + 8 * 8192 * 64 * 4, peak


def test_predict_checks_values_batch_by_batch():
    X, y = data_for(ResNetClassifier)
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    bad = np.repeat(X, 100, axis=0)
    bad[-1, 0] = np.nan  # in the last of several prediction batches
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(bad)
    with pytest.raises(ValueError, match="0 sample"):
        clf.predict(X[:0])
    with pytest.raises(ValueError, match="Expected 2D array"):
        clf.predict(X[0])


def test_failed_refit_keeps_the_previous_model():
    X, y = data_for(ResNetClassifier)
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    before, net = clf.predict_proba(X), clf.net_
    with pytest.raises(ValueError, match="needs samples of at least 2 classes"):
        clf.fit(X[:, :4], np.zeros(len(X)))
    assert clf.net_ is net and clf.n_features_in_ == 6
    np.testing.assert_array_equal(clf.predict_proba(X), before)


# ---- quiet by default, chatty on request --------------------------------------------------
def test_verbose_0_is_silent_and_writes_no_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = data_for(ResNetClassifier, n=1100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ResNetClassifier(**FAST_PARAMS).fit(X, y).predict(X)
        ResNetRegressor(**FAST_PARAMS).fit(*data_for(ResNetRegressor)).predict(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert os.listdir(tmp_path) == []


def test_verbose_1_shows_a_progress_bar_and_2_a_table(capsys):
    X, y = data_for(ResNetClassifier, n=1100)
    params = {**FAST_PARAMS, "early_stopping": True}
    ResNetClassifier(**params, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "epoch" in err and "valid_loss" in err and "5/5" in err
    ResNetClassifier(**params, verbose=2).fit(X, y)
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_loss" in out
    assert "\x1b[" not in out  # no colour codes: the captured stdout is not a terminal


def test_the_epoch_table_keeps_its_colours_in_a_notebook():
    from sklearn_resnet.training import _shows_colours

    notebook_stream = type("OutStream", (), {"__module__": "ipykernel.iostream"})()
    assert _shows_colours(notebook_stream)
    assert not _shows_colours(io.StringIO())


def test_partial_fit_follows_verbose_changed_after_fit(capsys):
    X, y = data_for(ResNetClassifier)
    clf = ResNetClassifier(**{**FAST_PARAMS, "verbose": 2}).fit(X, y)
    capsys.readouterr()
    clf.set_params(verbose=0).partial_fit(X, y)
    assert capsys.readouterr() == ("", "")
    clf.set_params(verbose=2).partial_fit(X, y)
    captured = capsys.readouterr()
    assert "1/1" in captured.err and "train_loss" in captured.out
    names = [name for name, _ in clf.net_.callbacks_]
    assert names.index("progress") == names.index("guard") + 1


# ---- precision --------------------------------------------------------------------------
@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_reduced_precision_on_cpu_trains_fp32_weights_and_predicts_float64(Estimator, precision):
    X, y = data_for(Estimator)
    est = Estimator(**{**FAST_PARAMS, "precision": precision}).fit(X, y)
    assert est.precision_ == precision
    assert all(p.dtype == torch.float32 for p in est.module_.parameters())
    pred = est.predict(X)
    assert np.all(np.isfinite(est._forward(X))) and est._forward(X).dtype == np.float64
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), pred)
    # Autocast really ran: the outputs differ from a float32 forward of the same weights.
    with torch.inference_mode():
        fp32 = est.module_(torch.as_tensor(X, dtype=torch.float32)).double().numpy()
    assert not np.array_equal(fp32, est._forward(X))


def test_bf16_on_cpu_refits_a_cnn_on_tiny_signals_identically():
    """Signals of length 2 reach the later stages as one position. A stride of 2 along
    it made PyTorch's bfloat16 convolutions return NaN gradients in some runs and not
    others (more often on a busy machine), so equal fits ended as "diverged"."""
    rng = np.random.default_rng(22)
    X, y = rng.normal(size=(7, 2)), rng.normal(size=7)
    params = {"backbone": "cnn", "input_shape": (1, 2), "depth": 8, "width": 8}
    params |= {"block": "preact", "scaling": None, "batch_size": 3, "max_epochs": 2}
    fits = [
        ResNetRegressor(**params, precision="bf16", random_state=1).fit(X, y).predict(X)
        for _ in range(8)
    ]
    assert np.isfinite(fits[0]).all()
    for fit in fits[1:]:
        np.testing.assert_array_equal(fit, fits[0])


def test_compile_trains_and_saves_the_plain_module():
    X, y = data_for(ResNetClassifier)
    params = {**FAST_PARAMS, "max_epochs": 2, "compile": True, "n_members": 1}
    clf = ResNetClassifier(**params).fit(X, y)
    assert type(clf.net_.module_).__name__ == "OptimizedModule"
    assert type(clf.module_).__name__ == "ResidualMLP"
    assert not any(key.startswith("_orig_mod.") for key in clf.module_.state_dict())
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize(
    ("compile", "mode"),
    [
        (True, None),
        ("default", None),
        ("reduce-overhead", "reduce-overhead"),
        ("max-autotune", "max-autotune"),
    ],
)
def test_a_compile_mode_reaches_torch_compile(compile, mode, monkeypatch):
    calls = []

    def recorded(module, **kwargs):
        calls.append(kwargs)
        return module

    monkeypatch.setattr(torch, "compile", recorded)
    X, y = data_for(ResNetClassifier)
    ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 1, "compile": compile}).fit(X, y)
    # The network only: the loss is left uncompiled.
    assert len(calls) == 1 and calls[0].get("mode") == mode


class _CountingModule(torch.nn.Module):
    """Stands in for torch.compile's wrapper: counts the calls in evaluation mode."""

    def __init__(self, module):
        super().__init__()
        self._orig_mod = module
        self.evaluations = 0

    def forward(self, x):
        self.evaluations += not self.training
        return self._orig_mod(x)


@pytest.mark.parametrize(
    ("compile", "compiled_predictions"),
    [(True, True), ("max-autotune-no-cudagraphs", True), ("reduce-overhead", False)],
)
def test_prediction_skips_the_compiled_network_where_it_records_cuda_graphs(
    compile, compiled_predictions, monkeypatch
):
    """Predictions come in many padded batch sizes, and each would record a graph."""
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: _CountingModule(module))
    X, y = data_for(ResNetClassifier)
    params = {**FAST_PARAMS, "max_epochs": 1, "early_stopping": False, "compile": compile}
    clf = ResNetClassifier(**params).fit(X, y)
    wrapper = clf.net_.module_
    before = wrapper.evaluations
    clf.predict_proba(X)
    assert (wrapper.evaluations > before) is compiled_predictions


class _UncompilableModule(torch.nn.Module):
    """What torch.compile returns on a machine whose compiler is missing: it fails on use."""

    def __init__(self, module):
        super().__init__()
        self.inner = module

    def forward(self, *args, **kwargs):
        from torch._dynamo.exc import BackendCompilerFailed

        raise BackendCompilerFailed(lambda: None, OSError("no C++ compiler found"), None)


def test_a_compiler_failure_names_compile_and_leaves_the_estimator_as_it_was(monkeypatch):
    X, y = data_for(ResNetClassifier)
    clf = ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 2}).fit(X, y)
    before = clf.predict_proba(X)
    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: _UncompilableModule(module))
    fresh = ResNetClassifier(**{**FAST_PARAMS, "compile": True})
    message = r"compile=True: .* on device 'cpu' \(OSError: no C\+\+ compiler found\)"
    for est in (fresh, clf.set_params(compile=True)):
        with pytest.raises(RuntimeError, match=f"{message}. Use compile=False"):
            est.fit(X, y)
    assert not hasattr(fresh, "net_")
    with pytest.raises(RuntimeError, match=r"^compile='reduce-overhead': torch.compile could"):
        clf.set_params(compile="reduce-overhead").fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)


# ---- persistence ---------------------------------------------------------------------------
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_pickle_round_trip_gives_identical_predictions(Estimator):
    X, y = data_for(Estimator)
    est = Estimator(**FAST_PARAMS).fit(X, y)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    # The optimizer state travels too: one more epoch on each gives the same model.
    loaded.partial_fit(X, y)
    est.partial_fit(X, y)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_model_fitted_on_a_gpu_loads_on_a_cpu_only_machine_silently():
    X, y = data_for(ResNetClassifier)
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    expected = clf.predict_proba(X)
    # Pretend the model lives on a GPU this machine does not have.
    clf.device_, clf.precision_, clf.net_.precision = "cuda:3", "bf16", "bf16"
    payload = pickle.dumps(clf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = pickle.loads(payload)
    assert loaded.device_ == "cpu" and loaded.precision_ == "32"
    assert next(loaded.module_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


def _outputs(est, X):
    """The model's outputs: probabilities of a classifier (labels can stay the same while
    the model changes), predictions of a regressor."""
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def _tensors_in(value, seen=None) -> list:
    """Tensors reachable from ``value`` through containers and the objects' pickled state."""
    seen = set() if seen is None else seen
    if id(value) in seen or isinstance(value, str | bytes | int | float | type | np.ndarray):
        return []
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list | tuple | set):
        children = list(value)
    else:
        getstate = getattr(value, "__getstate__", None)  # objects have none before 3.11
        state = getstate() if getstate is not None else getattr(value, "__dict__", {})
        children = list(state.values()) if isinstance(state, dict) else [state]
    return [tensor for child in children for tensor in _tensors_in(child, seen)]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_pickled_net_holds_tensors_only_where_they_are_mapped_to_the_cpu(Estimator):
    """skorch pickles ``module_``, ``optimizer_`` and the like apart and loads them onto the
    CPU where there is no GPU; a tensor anywhere else in the net's pickled state (the
    module the net was built with, validation sums of the last epoch) would keep a
    GPU-fitted model from loading on a machine without one."""
    X, y = data_for(Estimator)
    est = Estimator(**FAST_PARAMS, early_stopping=True, validation_fraction=0.3).fit(X, y)
    state = est.net_.__getstate__()
    mapped = state.pop("__cuda_dependent_attributes__")
    assert mapped and not _tensors_in(state)
    loaded = pickle.loads(pickle.dumps(est))
    assert loaded.net_.module is loaded.net_.module_  # one network, not a stale copy
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@pytest.mark.parametrize("during", ["training", "validation"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_net_interrupted_mid_epoch_pickles_no_tensors(Estimator, during):
    """Ctrl-C in the middle of an epoch leaves that epoch's batch losses and validation
    sums unread; on a GPU they are device tensors, so the pickle must hold none."""
    X, y = data_for(Estimator)
    params = {**FAST_PARAMS, "early_stopping": True, "validation_fraction": 0.3}
    est = Estimator(**params, batch_size=8, callbacks=[InterruptAt(3, during=during)])
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(X, y)
    state = est.net_.__getstate__()
    state.pop("__cuda_dependent_attributes__")
    assert not _tensors_in(state)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["32", "bf16", "16"])
def test_fit_on_cuda_pickle_and_predict_on_cpu(precision):
    X, y = data_for(ResNetClassifier)
    clf = ResNetClassifier(**{**FAST_PARAMS, "device": "cuda", "precision": precision}).fit(X, y)
    assert clf.device_ == "cuda" and next(clf.module_.parameters()).is_cuda
    loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.device_ == "cuda"
    from sklearn_resnet.training import move_net

    move_net(loaded.net_, "cpu")
    loaded.device_ = "cpu"
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_the_mlp_checks_an_input_shape_and_trains_on_flat_rows():
    """So that one search can try both backbones with one input_shape."""
    X, y = make_classification(n_samples=60, n_features=16, random_state=0)
    params = {**FAST_PARAMS, "backbone": "mlp", "random_state": 0}
    shaped = ResNetClassifier(input_shape=(1, 4, 4), **params).fit(X, y)
    assert shaped.backbone_ == "mlp" and shaped.input_shape_ == (16,)
    flat = ResNetClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(shaped.predict_proba(X), flat.predict_proba(X))
    with pytest.raises(ValueError, match="input_shape"):
        ResNetClassifier(input_shape=(1, 3, 3), **params).fit(X, y)


def test_a_nested_name_into_the_callbacks_list_is_a_clear_error():
    from skorch.callbacks import GradientNormClipping

    clf = ResNetClassifier(callbacks=[GradientNormClipping()], max_epochs=1)
    with pytest.raises(
        ValueError,
        match=r"'callbacks__gradient_clip_value' .* 'callbacks' holds a list, .* instead "
        r"\(callbacks=\[GradientNormClipping\(gradient_clip_value=1.0\)\], say\)",
    ):
        clf.set_params(callbacks__gradient_clip_value=1.0)
    # The list the message suggests is one that fit accepts.
    clf.set_params(callbacks=[GradientNormClipping(gradient_clip_value=1.0)])
    clf.fit(*data_for(ResNetClassifier))
    with pytest.raises(
        ValueError, match=r"'lr__x' .* 'lr' holds a float, .* Set 'lr' itself instead\.$"
    ):
        ResNetClassifier(lr=0.1).set_params(lr__x=1)
    assert clf.set_params(lr=0.5).lr == 0.5
    with pytest.raises(ValueError, match="Invalid parameter 'colour'"):
        clf.set_params(colour=1)  # scikit-learn's own refusal


def test_probabilities_of_huge_logits_stay_exact_and_finite():
    from sklearn_resnet.estimators import _log_softmax, _softmax

    logits = np.array([[1000.0, 0.0], [-1000.0, 1000.0]])
    np.testing.assert_array_equal(_softmax(logits.copy()), [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(_log_softmax(logits.copy()), [[0.0, -1000.0], [-2000.0, 0.0]])


def test_balanced_class_weights_with_a_class_weighted_zero_throughout():
    X, y = make_classification(150, 5, n_informative=3, n_classes=3, random_state=0)
    weight = np.where(y == 2, 0.0, 1.0)  # its samples are dropped; the class stays known
    clf = ResNetClassifier(max_epochs=1, random_state=0, class_weight="balanced")
    clf.fit(X, y, sample_weight=weight)
    assert clf.classes_.tolist() == [0, 1, 2]


# ---- targets, outputs and validation scores ---------------------------------------------


def test_partial_fit_refuses_another_number_of_outputs_and_leaves_the_model_unchanged():
    # estimators.py: "y has k outputs, but ... was fitted with m" (continued training).
    X, y = data_for(ResNetRegressor)
    reg = ResNetRegressor(**FAST_PARAMS).fit(X, np.column_stack([y, -y]))
    before = reg.predict(X)
    with pytest.raises(ValueError, match="y has 1 outputs, but ResNetRegressor was fitted with 2"):
        reg.partial_fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), before)


def test_all_zero_targets_fit_and_predict_zero():
    # Constant targets are "divided by their own size"; a zero target has none.
    X, _ = data_for(ResNetRegressor)
    reg = ResNetRegressor(**FAST_PARAMS).fit(X, np.zeros(len(X)))
    pred = reg.predict(X)
    assert np.all(np.isfinite(pred)) and np.abs(pred).max() < 1e-3


def test_target_standardisation_uses_the_weighted_mean_and_deviation():
    # training-recipe: targets standardised with the (weighted) mean and standard deviation.
    X, y = data_for(ResNetRegressor)
    w = np.linspace(0.1, 10.0, len(y))
    reg = ResNetRegressor(**FAST_PARAMS).fit(X, y, sample_weight=w)
    mean = np.average(y, weights=w)
    std = np.sqrt(np.average((y - mean) ** 2, weights=w))
    np.testing.assert_allclose(reg._y_mean, [mean], rtol=1e-9)
    np.testing.assert_allclose(reg._y_scale, [std], rtol=1e-9)


def test_best_validation_score_is_that_of_the_best_epoch_not_the_last():
    # base: best_validation_score_ is the validation score at best_epoch_.
    X, y = data_for(ResNetRegressor, n=300)
    params = {**FAST_PARAMS, "max_epochs": 40}
    reg = ResNetRegressor(**params, lr=3e-2, n_iter_no_change=2, early_stopping=True).fit(X, y)
    assert reg.best_epoch_ < reg.n_iter_  # early stopping ended it past the best epoch
    scores = reg.validation_scores_
    assert reg.best_validation_score_ == scores[reg.best_epoch_ - 1]
    assert reg.best_validation_score_ != scores[-1]
