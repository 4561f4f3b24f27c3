"""The input contract case by case, and nothing half-fitted.

Named hostile inputs the property tests in ``test_properties.py`` generate in bulk,
plus the ones a generator does not reach: memory maps, dates, huge Python integers,
channels-last images, targets and weights at the edge of float64. Each either fits
and predicts finite values or raises a ``ValueError``/``TypeError`` naming the
problem; a refused fit leaves a fresh estimator unfitted and a fitted one with its
previous model.
"""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import FAST_CNN_PARAMS, FAST_PARAMS
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_resnet import ResNetClassifier, ResNetRegressor
from sklearn_resnet.inputs import split_indices

ESTIMATORS = [ResNetClassifier, ResNetRegressor]
MLP = {**FAST_PARAMS, "max_epochs": 2}
CNN = {**FAST_CNN_PARAMS, "max_epochs": 2}


def data(Estimator, n=24, shape=(4,), seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *shape))
    if Estimator is ResNetClassifier:
        return X, np.array(["a", "b", "c"])[np.arange(n) % 3]
    return X, rng.normal(size=n) * 5 + 10


def outputs(est, X):
    """Every prediction method's output, checked to be finite."""
    if isinstance(est, ResNetClassifier):
        result = [est.predict_proba(X), est.decision_function(X)]
    else:
        result = [est.predict(X)]
    assert all(np.isfinite(r).all() for r in result)
    return result


def assert_unfitted(est):
    assert vars(est).keys() == vars(clone(est)).keys()
    with pytest.raises(NotFittedError):
        est.predict(np.zeros((2, 4)))


# ---- dtypes: scikit-learn's rules --------------------------------------------------------
@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int8, np.uint64, bool, object])
def test_float16_bool_integer_and_object_numbers_are_accepted(Estimator, dtype):
    X, y = data(Estimator)
    X = (X > 0) if dtype is bool else (np.abs(X) * 10).astype(dtype)
    est = Estimator(**MLP).fit(X, y)
    assert est.predict(X).shape == (24,)
    outputs(est, X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_complex_X_is_refused_at_fit_and_predict(Estimator):
    X, y = data(Estimator)
    est = Estimator(**MLP)
    with pytest.raises(ValueError, match="Complex data not supported"):
        est.fit(X + 1j, y)
    assert_unfitted(est)
    est.fit(X, y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        est.predict(X + 0j)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_numbers_written_as_text_are_read_and_words_are_refused(Estimator):
    X, y = data(Estimator)
    est = Estimator(**MLP).fit(X.astype(str), y)
    for got, want in zip(outputs(est, X.astype(str).tolist()), outputs(est, X), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    words = X.astype(object)
    words[3, 2] = "three"
    with pytest.raises(ValueError, match="could not convert string to float: 'three'"):
        Estimator(**MLP).fit(words, y)
    with pytest.raises(ValueError, match="could not convert string to float: 'three'"):
        est.predict(words)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.full((24, 4), np.datetime64("2024-01-01")), r"dtype datetime64\[D\], which is not"),
        (np.full((24, 4), np.timedelta64(3, "s")), r"dtype timedelta64\[s\], which is not"),
        (np.zeros((24, 4), dtype=[("a", float)]), r"dtype \[\('a', '<f8'\)\], which is not"),
        (np.array([[10**400, 1.0]] * 24, dtype=object), r"number too large for float32"),
        ([[10**400, 1.0]] * 24, r"number too large for float32"),
        (np.full((24, 4), 1e300), r"too large .*\)\. The network computes in float32, whose l"),
    ],
    ids=["datetime", "timedelta", "structured", "huge-python-int", "huge-int-list", "1e300"],
)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_dates_structures_and_numbers_beyond_float32_are_refused(Estimator, X, message):
    _, y = data(Estimator)
    est = Estimator(**MLP)
    with pytest.raises(ValueError, match=message), warnings.catch_warnings():
        warnings.simplefilter("error")  # nor numpy's overflow warnings before the error
        est.fit(X, y)
    assert_unfitted(est)
    fitted = Estimator(**MLP).fit(np.ones((24, np.shape(X)[1] if np.ndim(X) == 2 else 1)), y)
    with pytest.raises(ValueError, match=message), warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.predict(X)


@pytest.mark.parametrize(
    "container",
    [np.asarray, lambda X: X.tolist(), sp.csr_matrix, pd.DataFrame],
    ids=["array", "list", "sparse", "frame"],
)
def test_values_beyond_float32_get_the_advice_once_whatever_the_container(container):
    X, y = data(ResNetClassifier)
    est = ResNetClassifier(**MLP).fit(X, y)
    X[0, 0] = 1e300
    with pytest.raises(ValueError) as error:
        est.predict(container(X))
    assert str(error.value).count("The network computes in float32") == 1


# ---- containers ---------------------------------------------------------------------------
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_memory_maps_read_only_arrays_and_lists_give_the_same_model(Estimator, tmp_path):
    X, y = data(Estimator)
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    read_only = X.copy()
    read_only.flags.writeable = False
    reference = outputs(Estimator(**MLP).fit(X, y), X)
    for variant in (mapped, read_only, X.tolist(), np.asfortranarray(X), X[:, ::-1][:, ::-1]):
        est = Estimator(**MLP).fit(variant, y)
        for got, want in zip(outputs(est, variant), reference, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "X, message",
    [
        (3.0, "Expected 2D array, got scalar array"),
        (None, "Expected 2D array, got scalar array"),
        (np.arange(24.0), "Expected 2D array, got 1D array"),
        ([[1.0, 2.0], [3.0]] * 12, "inhomogeneous"),
        ([], "Expected 2D array"),
        (np.zeros((24, 0)), r"0 feature\(s\)"),
        (np.zeros((0, 4)), r"0 sample\(s\)"),
        (pd.DataFrame(index=range(24)), r"0 feature\(s\) \(shape=\(24, 0\)\)"),
        (pd.Series(np.arange(24.0)), "Expected a 2-dimensional container"),
    ],
    ids=[
        "scalar",
        "None",
        "1-D",
        "ragged",
        "empty-list",
        "no-columns",
        "no-rows",
        "empty-frame",
        "series",
    ],
)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_scalars_1d_ragged_and_empty_inputs_are_refused(Estimator, X, message):
    _, y = data(Estimator)
    est = Estimator(**MLP)
    with pytest.raises(ValueError, match=message):
        est.fit(X, y[: len(X)] if np.ndim(X) >= 1 and len(X) < 24 else y)
    assert_unfitted(est)
    fitted = Estimator(**MLP).fit(data(Estimator)[0], y)
    with pytest.raises(ValueError, match=message if "0 feature" not in message else "0 feature"):
        fitted.predict(X)


# ---- signals and images (CNN) ------------------------------------------------------------
@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("shape", [(1, 8), (2, 5), (1, 4, 4), (3, 2, 2), (1, 1), (1, 1, 1)])
def test_cnn_fits_signals_and_images_of_any_small_size(Estimator, shape):
    X, y = data(Estimator, shape=shape)
    est = Estimator(**CNN).fit(X, y)
    assert est.backbone_ == "cnn" and est.input_shape_ == shape
    outputs(est, X)
    outputs(est, X.reshape(24, -1))  # flat rows are reshaped
    outputs(est, X[:1])


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda X: np.where(X > 1.5, np.nan, X), "Input X contains NaN"),
        (lambda X: np.where(X > 1.5, -np.inf, X), "Input X contains infinity"),
        (lambda X: X + 1j, "Complex data not supported"),
        (lambda X: X[:, :, :0], r"0 feature\(s\) \(shape=\(24, 1, 0, 4\)\)"),
        (lambda X: X[:, :0], r"0 feature\(s\)"),
        (lambda X: X[:0], r"0 sample\(s\)"),
        (lambda X: X.reshape(24, 1, 1, 4, 4), r"takes samples shaped \(C, L\) or \(C, H, W\)"),
        (lambda X: X.reshape(24, 1, 1, 1, 4, 4), r"got per-sample shape \(1, 1, 1, 4, 4\)"),
        (lambda X: X[:1], "needs at least 2 training samples .* got 1 sample|2 classes"),
    ],
    ids=["nan", "inf", "complex", "zero-height", "zero-channels", "no-rows", "5-D", "6-D", "1-row"],
)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_cnn_refuses_hostile_images_before_training(Estimator, corrupt, message):
    X, y = data(Estimator, shape=(1, 4, 4))
    bad = corrupt(X)
    est = Estimator(**CNN)
    with pytest.raises(ValueError, match=message):
        est.fit(bad, y[: len(bad)] if len(bad) < 24 else y)
    assert_unfitted(est)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_cnn_refuses_batches_that_leave_batch_norm_one_value_per_channel(Estimator):
    # 4x4 images and 4-long signals end in one position per sample in the last stage.
    for shape in [(1, 4, 4), (2, 4)]:
        X, y = data(Estimator, shape=shape)
        est = Estimator(**CNN, batch_size=1)
        with pytest.raises(ValueError, match="batch_size=1 is too small for the CNN"):
            est.fit(X, y)
        assert_unfitted(est)
        pair = Estimator(**CNN, early_stopping=True, validation_fraction=0.5)
        with pytest.raises(ValueError, match=r"2 training samples .* 1 remain after early"):
            pair.fit(X[:2], y[:2] if Estimator is ResNetRegressor else ["a", "b"])
        assert_unfitted(pair)
    # Larger samples keep several positions, where a batch of one trains.
    X, y = data(Estimator, n=6, shape=(1, 8, 8))
    outputs(Estimator(**CNN, batch_size=1).fit(X, y), X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_fitted_cnn_refuses_samples_of_another_shape(Estimator):
    X, y = data(Estimator, shape=(3, 2, 2))
    est = Estimator(**CNN).fit(X, y)
    channels_last = np.moveaxis(X, 1, -1)  # (24, 2, 2, 3): 12 values, misread if reshaped
    with pytest.raises(ValueError, match=r"samples shaped \(2, 2, 3\), but .* \(3, 2, 2\)"):
        est.predict(channels_last)
    with pytest.raises(ValueError, match=r"samples shaped \(1, 3, 2, 2\)"):
        est.predict(X[:, None])
    with pytest.raises(ValueError, match=r"X has 8 features, but .* expecting 12"):
        est.predict(X[:, :2])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_fitted_mlp_takes_flat_rows_or_samples_of_its_fitted_shape(Estimator):
    X, y = data(Estimator, shape=(3, 2, 2))
    mlp = Estimator(**MLP, backbone="mlp").fit(X, y)  # flattened in training
    np.testing.assert_array_equal(mlp.predict(X.reshape(24, 12)), mlp.predict(X))
    for scrambled in (np.moveaxis(X, 1, -1), X.reshape(24, 2, 6)):
        with pytest.raises(ValueError, match=r"fitted on samples shaped \(3, 2, 2\); pass X"):
            mlp.predict(scrambled)
        with pytest.raises(ValueError, match=r"fitted on samples shaped \(3, 2, 2\); pass X"):
            mlp.partial_fit(scrambled, y)
    rows = Estimator(**MLP).fit(X.reshape(24, 12), y)
    with pytest.raises(ValueError, match=r"fitted on rows of 12 features; pass X shaped"):
        rows.predict(X)
    # Given input_shape, flat rows train it and samples of that shape predict.
    shaped = Estimator(**MLP, backbone="mlp", input_shape=(3, 2, 2)).fit(X.reshape(24, 12), y)
    np.testing.assert_array_equal(shaped.predict(X), shaped.predict(X.reshape(24, 12)))
    with pytest.raises(ValueError, match=r"samples shaped \(2, 2, 3\), but input_shape="):
        Estimator(**MLP, backbone="mlp", input_shape=(3, 2, 2)).fit(np.moveaxis(X, 1, -1), y)
    # A refit on rows forgets the sample shape.
    assert mlp.fit(X.reshape(24, 12), y)._sample_shape == (12,)
    with pytest.raises(ValueError, match=r"fitted on rows of 12 features"):
        mlp.predict(X)
    # An MLP of an earlier release (pickled without a sample shape) takes any shape of its
    # number of values, as it did, or the shape of its input_shape.
    del mlp._sample_shape
    np.testing.assert_array_equal(mlp.predict(X), mlp.predict(X.reshape(24, 2, 6)))
    del shaped._sample_shape
    np.testing.assert_array_equal(shaped.predict(X), shaped.predict(X.reshape(24, 12)))
    with pytest.raises(ValueError, match=r"fitted on samples shaped \(3, 2, 2\); pass X"):
        shaped.predict(X.reshape(24, 2, 6))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_fit_refuses_samples_shaped_otherwise_than_input_shape(Estimator):
    X, y = data(Estimator, shape=(3, 2, 2))
    channels_last = np.moveaxis(X, 1, -1)
    est = Estimator(**CNN, input_shape=(3, 2, 2))
    message = r"samples shaped \(2, 2, 3\), but input_shape=\(3, 2, 2\).* channel axis first"
    with pytest.raises(ValueError, match=message):
        est.fit(channels_last, y)
    assert_unfitted(est)
    # Flat rows and samples of exactly input_shape are what it takes.
    shaped = clone(est).fit(X, y)
    flat = clone(est).fit(X.reshape(24, 12), y)
    np.testing.assert_array_equal(shaped.predict(X), flat.predict(X))


# ---- pandas -------------------------------------------------------------------------------
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_frames_with_categorical_and_object_columns(Estimator):
    X, y = data(Estimator)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["b"] = pd.Categorical((X[:, 1] > 0).astype(int))  # numbers: read as numbers
    frame["c"] = X[:, 2].astype(object)
    est = Estimator(**MLP).fit(frame, y)
    assert est.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    outputs(est, frame)
    words = frame.assign(b=pd.Categorical(np.where(X[:, 1] > 0, "up", "down")))
    words["when"] = pd.date_range("2024-01-01", periods=24)
    message = r"not numeric: 'b' \(category\), 'when' \(datetime64\[\w+\]\)\. Encode them"
    fresh = Estimator(**MLP)
    with pytest.raises(ValueError, match=message):
        fresh.fit(words, y)
    assert_unfitted(fresh)
    with pytest.raises(ValueError, match=r"not numeric: 'b' \(category\)"):
        est.predict(words.drop(columns="when"))
    missing = frame.assign(c=pd.array([None, *frame["c"][1:].astype(str)], dtype="string"))
    with pytest.raises(ValueError, match=r"Input X contains NaN \(missing values in column 'c'\)"):
        Estimator(**MLP).fit(missing, y)
    nullable = frame.assign(b=pd.array([None, *range(23)], dtype="Int64"))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        Estimator(**MLP).fit(nullable, y)


# ---- huge and tiny values -----------------------------------------------------------------
@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "params",
    [
        {**MLP, "scaling": "robust"},
        {**MLP, "scaling": "standard"},
        {**MLP, "scaling": "quantile"},
        {**CNN, "input_shape": (1, 4)},
    ],
    ids=["mlp-robust", "mlp-standard", "mlp-quantile", "cnn-standard"],
)
def test_scaled_networks_give_finite_outputs_for_values_up_to_float32_limits(Estimator, params):
    X, y = data(Estimator)
    for train in (X, X * 1e30, X * 1e-30):
        est = Estimator(**params).fit(train, y)
        for far in (X * 1e30, X * 3e38 / np.abs(X).max(), X * 1e-30, -X * 1e20):
            assert all(r.shape[0] == 24 for r in outputs(est, far))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_without_input_scaling_overflowing_outputs_raise(Estimator):
    X, y = data(Estimator)
    est = Estimator(**MLP, scaling=None).fit(X, y)
    with pytest.raises(ValueError, match=r"NaN or infinite outputs: X holds values too large"):
        est.predict(X * 1e30)
    fresh = Estimator(**MLP, scaling=None)
    with pytest.raises(ValueError, match=r"diverged|NaN or infinite"):
        fresh.fit(X * 1e30, y)
    assert_unfitted(fresh)


def test_regression_targets_near_the_float64_limit():
    X, _ = data(ResNetRegressor)
    rng = np.random.default_rng(1)
    for scale in (1e30, 1e300, 1e-300):
        y = rng.normal(size=24) * scale
        reg = ResNetRegressor(**MLP).fit(X, y)
        pred = reg.predict(X)
        assert np.isfinite(pred).all() and np.abs(pred).max() < 100 * np.abs(y).max()
    y = rng.normal(size=24) * 1e306
    with pytest.raises(ValueError, match=r"magnitude .*e\+30\d; ResNetRegressor takes targets up"):
        ResNetRegressor(**MLP).fit(X, y)
    reg = ResNetRegressor(**MLP).fit(X, rng.normal(size=24))
    before = reg.predict(X)
    with pytest.raises(ValueError, match=r"standard deviations .* partial_fit only on targets"):
        reg.partial_fit(X, rng.normal(size=24) * 1e12)
    np.testing.assert_array_equal(reg.predict(X), before)


# ---- targets ------------------------------------------------------------------------------
CLASSIFIER_TARGETS = {
    "ints": (lambda n: np.arange(n) % 3, None),
    "words": (lambda n: np.array(["a", "b", "c"])[np.arange(n) % 3], None),
    "bools": (lambda n: np.arange(n) % 2 == 0, None),
    "integral floats": (lambda n: (np.arange(n) % 2).astype(float), None),
    "column vector": (lambda n: (np.arange(n) % 2).reshape(-1, 1), None),
    "pandas categorical": (lambda n: pd.Series(pd.Categorical(np.arange(n) % 2)), None),
    "NaN": (lambda n: np.r_[np.nan, np.arange(n - 1) % 2], r"Input y contains NaN"),
    "infinity": (lambda n: np.r_[np.inf, np.arange(n - 1) % 2], r"Input y contains infinity"),
    "continuous": (lambda n: np.linspace(0, 1, n), r"Unknown label type: continuous"),
    "one class": (lambda n: np.zeros(n), r"at least 2 classes .* only one class: 0\.0"),
    "multilabel indicator": (
        lambda n: np.eye(3, dtype=int)[np.arange(n) % 3],
        r"does not support multilabel or multi-output targets; got y of shape \(24, 3\)",
    ),
    "wrong length": (lambda n: np.arange(n + 1) % 2, r"inconsistent numbers of samples"),
    "row vector": (
        lambda n: (np.arange(n) % 2).reshape(1, n),
        r"y should be a 1d array, got an array of shape \(1, 24\)",
    ),
    "3-D": (lambda n: (np.arange(n) % 2).reshape(n, 1, 1), r"dim 3|y should be a 1d array"),
    "words and numbers": (
        lambda n: np.array([1, "a"] * n, dtype=object)[:n],
        r"Unknown label type|cannot be used as classes",
    ),
    "sparse": (
        lambda n: sp.csr_matrix((np.arange(n) % 2).reshape(n, 1)),
        r"takes y as a dense array; got a scipy.sparse y",
    ),
    "None": (lambda n: None, r"requires y to be passed"),
}
REGRESSOR_TARGETS = {
    "floats": (lambda n: np.linspace(-1, 1, n), None),
    "ints": (lambda n: np.arange(n), None),
    "bools": (lambda n: np.arange(n) % 2 == 0, None),
    "numbers as text": (lambda n: np.linspace(-1, 1, n).astype(str), None),
    "objects": (lambda n: np.linspace(-1, 1, n).astype(object), None),
    "constant": (lambda n: np.full(n, 5.0), None),
    "two outputs": (lambda n: np.c_[np.arange(n), -np.arange(n)], None),
    "multilabel indicator": (lambda n: np.eye(3, dtype=int)[np.arange(n) % 3], None),
    "1e300": (lambda n: np.linspace(-1, 1, n) * 1e300, None),
    "words": (lambda n: np.array(["a", "b"] * n)[:n], r"could not convert string to float"),
    "NaN": (lambda n: np.r_[np.nan, np.arange(n - 1)], r"Input y contains NaN"),
    "NaN as text": (lambda n: np.r_[np.nan, np.arange(n - 1)].astype(str), r"y contains NaN"),
    "infinity": (lambda n: np.r_[-np.inf, np.arange(n - 1)], r"Input y contains infinity"),
    "1e306": (lambda n: np.linspace(-1, 1, n) * 1e306, r"takes targets up to 1e\+304"),
    "wrong length": (lambda n: np.arange(n - 1), r"inconsistent numbers of samples"),
    "3-D": (lambda n: np.arange(n).reshape(n, 1, 1), r"Found array with dim 3"),
    "sparse": (
        lambda n: sp.csr_matrix(np.arange(n, dtype=float).reshape(n, 1)),
        r"takes y as a dense array; got a scipy.sparse y",
    ),
    "None": (lambda n: None, r"requires y to be passed"),
}
TARGET_CASES = [(ResNetClassifier, k, *v) for k, v in CLASSIFIER_TARGETS.items()]
TARGET_CASES += [(ResNetRegressor, k, *v) for k, v in REGRESSOR_TARGETS.items()]


@pytest.mark.parametrize(
    "Estimator, kind, make, message",
    TARGET_CASES,
    ids=[f"{E.__name__[6:]}-{k}" for E, k, *_ in TARGET_CASES],
)
def test_targets_fit_or_the_message_names_the_problem(Estimator, kind, make, message):
    X, _ = data(Estimator)
    y = make(24)
    est = Estimator(**MLP)
    if message is not None:
        with pytest.raises(ValueError, match=message):
            est.fit(X, y)
        assert_unfitted(est)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a column-vector y warns, as in scikit-learn
        est.fit(X, y)
    pred = est.predict(X)
    y_2d = Estimator is ResNetRegressor and np.ndim(y) == 2
    assert pred.shape == ((24, np.shape(y)[1]) if y_2d else (24,))
    outputs(est, X)


def test_later_partial_fit_calls_validate_the_parameters_and_change_nothing_on_error():
    X, y = data(ResNetClassifier)
    clf = ResNetClassifier(**MLP).partial_fit(X, y, classes=["a", "b", "c"])
    before = clf.predict_proba(X)
    clf.set_params(verbose="loud")
    with pytest.raises(InvalidParameterError, match="'verbose' parameter"):
        clf.partial_fit(X, y)
    assert clf.net_.verbose == 0 and len(clf.history_) == 1
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    # Settings read when the net is built are not checked (nor used) by later calls,
    # as scikit-learn's own partial_fit does not check them.
    clf.set_params(verbose=0, lr="fast")
    clf.partial_fit(X, y)
    assert len(clf.history_) == 2


def test_cnn_messages_name_sample_weight_and_input_shape():
    X, y = make_classification(10, 8, random_state=0)
    weight = np.r_[1.0, np.zeros(9)]  # nine of the ten rows dropped
    with pytest.raises(ValueError, match="got 1 sample with a positive sample_weight"):
        ResNetClassifier(**CNN, input_shape=(1, 8)).fit(X, y, sample_weight=weight)
    with pytest.raises(ValueError, match=r"input_shape=\(8,\) has 1 dimension\(s\)"):
        ResNetClassifier(**CNN, input_shape=(8,)).fit(X, y)


def test_partial_fit_classes_must_be_a_1d_array_of_labels():
    X, y = data(ResNetClassifier)
    with pytest.raises(ValueError, match=r"classes must be a 1-D array .* shape \(1, 3\)"):
        ResNetClassifier(**MLP).partial_fit(X, y, classes=[["a", "b", "c"]])
    with pytest.raises(ValueError, match=r"Invalid classes \[0\.0, 0\.5, 1\.0\]: Unknown label"):
        ResNetClassifier(**MLP).partial_fit(X, np.arange(24) % 2, classes=[0, 0.5, 1])
    with pytest.raises(ValueError, match=r"labels \['c'\] that are not in classes_"):
        ResNetClassifier(**MLP).partial_fit(X, y, classes=["a", "b"])
    for mixed in (np.array(["a", 1, "b"], dtype=object), ["a", None, "b"]):
        with pytest.raises(ValueError, match=r"Invalid classes \['a', (1|None), 'b'\]"):
            ResNetClassifier(**MLP).partial_fit(X, y, classes=mixed)
    # The data holds three classes: the message blames classes=, not the data.
    with pytest.raises(ValueError, match=r"classes=\['a'\] names only one class"):
        ResNetClassifier(**MLP).partial_fit(X, y, classes=["a"])


# ---- sample and class weights -------------------------------------------------------------
WEIGHT_CASES = [
    (np.r_[np.nan, np.ones(23)], "Input sample_weight contains NaN"),
    (np.r_[np.inf, np.ones(23)], "Input sample_weight contains infinity"),
    (np.r_[-1.0, np.ones(23)], "Negative values in data passed to `sample_weight`"),
    # Newer scikit-learn refuses it first, in its own words; older leaves it to us.
    (np.zeros(24), "(Sample weights|sample_weight) must contain at least one (non-zero|positive)"),
    (np.ones(23), r"sample_weight.shape == \(23,\), expected \(24,\)"),
    (np.ones((24, 2)), "Sample weights must be 1D array or scalar"),
    (np.ones(24) + 1j, "Complex data not supported"),
    (np.array(["heavy"] * 24), "could not convert string to float"),
    ([10**400] * 24, "sample_weight contains a number too large for a float"),
]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("weight, message", WEIGHT_CASES)
def test_hostile_sample_weights_are_refused(Estimator, weight, message):
    X, y = data(Estimator)
    est = Estimator(**MLP)
    with pytest.raises(ValueError, match=message):
        est.fit(X, y, sample_weight=weight)
    assert_unfitted(est)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "weight",
    [
        np.r_[np.full(12, 1e308), np.ones(12)],
        np.full(24, 5e-324),
        3.0,
        np.arange(24) % 2,
    ],
    ids=["near-float64-max", "subnormal", "scalar", "half-zero"],
)
def test_extreme_but_valid_sample_weights_train(Estimator, weight):
    X, y = data(Estimator)
    est = Estimator(**MLP).fit(X, y, sample_weight=weight)
    assert np.isfinite(est.loss_curve_).all() and est.loss_curve_[0] > 0
    outputs(est, X)


def test_extreme_sample_weights_times_class_weights_train():
    # Each is finite, but their product overflowed and was blamed on sample_weight.
    X, y = data(ResNetClassifier)
    weight = np.where(np.arange(len(y)) == np.flatnonzero(y == y[0])[0], 1e308, 1.0)
    classes = np.unique(y)
    class_weight = {label: 2.0 + k for k, label in enumerate(classes)}
    class_weight[y[0]] = 10.0
    est = ResNetClassifier(**MLP, class_weight=class_weight).fit(X, y, sample_weight=weight)
    assert np.isfinite(est.loss_curve_).all() and est.loss_curve_[0] > 0


def test_class_weights_that_zero_every_weighted_row_are_named():
    X, y = data(ResNetClassifier)
    classes = np.unique(y)
    class_weight = {label: float(label != y[0]) for label in classes}
    est = ResNetClassifier(**MLP, class_weight=class_weight)
    with pytest.raises(ValueError, match="sample_weight times class_weight must contain"):
        est.fit(X, y, sample_weight=(y == y[0]).astype(float))
    assert_unfitted(est)


def test_a_target_that_outweighs_the_others_by_1e300_trains():
    # The weighted spread is 1e-150 of the targets' range; the target scale must not
    # shrink with it (the other targets would lie 1e150 scales from the mean).
    X, y = data(ResNetRegressor)
    weight = np.r_[np.zeros(22), 1.0, 1e300]
    est = ResNetRegressor(**MLP).fit(X, y, sample_weight=weight)
    assert np.isfinite(est.loss_curve_).all()
    assert est.predict(X[-1:])[0] == pytest.approx(y[-1], abs=1e-6 * np.ptp(y))
    outputs(est, X)


def test_partial_fit_refuses_targets_far_beyond_the_first_fits_scale():
    X, y = data(ResNetRegressor)
    est = ResNetRegressor(**MLP).partial_fit(X, y)
    before = est.predict(X)
    with pytest.raises(ValueError, match=r"continue with partial_fit only on targets of the"):
        est.partial_fit(X, y * 1e9)
    np.testing.assert_array_equal(est.predict(X), before)


@pytest.mark.parametrize(
    "class_weight, message",
    [
        ({"a": -1.0, "b": 1.0, "c": 1.0}, r"finite, non-negative weight; got \{'a': -1\.0"),
        ({"a": np.nan, "b": 1.0}, "finite, non-negative weight"),
        ({"a": np.inf, "b": 1.0}, "finite, non-negative weight"),
        ({"a": 0.0, "b": 0.0, "c": 0.0}, "weight of zero"),
        ({"a": "heavy", "b": 1.0}, "Invalid class_weight .*could not convert string to float"),
        ({"a": 10**400, "b": 1.0}, r"Invalid class_weight \{'a': 1000.*too large to convert"),
    ],
    ids=["negative", "nan", "inf", "all-zero", "text", "beyond-float"],
)
def test_hostile_class_weights_are_refused_by_name(class_weight, message):
    X, y = data(ResNetClassifier)
    est = ResNetClassifier(**MLP, class_weight=class_weight)
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)
    assert_unfitted(est)


def test_partial_fit_refuses_other_classes_and_balanced_weights_after_the_first_call():
    X, y = data(ResNetClassifier)
    est = ResNetClassifier(**MLP).partial_fit(X, y, classes=["a", "b", "c"])
    before = est.predict_proba(X)
    for classes in (["a", "b", "c", "d"], [0, 1, 2]):
        with pytest.raises(ValueError, match=r"is not the same as the classes .*\['a', 'b', 'c'\]"):
            est.partial_fit(X, y, classes=classes)
    est.partial_fit(X, y, classes=["c", "b", "a"])  # the same classes in any order
    assert est.n_iter_ == 2
    np.testing.assert_array_equal(est.classes_, ["a", "b", "c"])
    balanced = ResNetClassifier(**MLP, class_weight="balanced")
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported by partial_fit"):
        balanced.partial_fit(X, y, classes=["a", "b", "c"])
    assert_unfitted(balanced)
    assert not np.array_equal(est.predict_proba(X), before)


@pytest.mark.parametrize("entry", [1, "print", (1, None), ("name",), ResNetClassifier], ids=repr)
def test_callbacks_that_are_not_skorch_callbacks_are_refused_before_training(entry):
    X, y = data(ResNetClassifier)
    est = ResNetClassifier(**MLP, callbacks=[entry])
    with pytest.raises(
        ValueError, match=r"callbacks\[0\] of ResNetClassifier is .* skorch Callback"
    ):
        est.fit(X, y)
    assert_unfitted(est)


def _skorch_callbacks():
    from skorch.callbacks import (
        BatchScoring,
        Checkpoint,
        EarlyStopping,
        EpochScoring,
        LRScheduler,
        PrintLog,
    )

    return {
        "scoring": (EpochScoring("accuracy"), "EpochScoring, which the estimator cannot run"),
        "batch scoring": (BatchScoring("accuracy"), "BatchScoring, which the estimator"),
        "scheduler": (LRScheduler("StepLR", step_size=1), "LRScheduler, whose learning rates"),
        "reserved name": (("early_stopping", PrintLog()), "named 'early_stopping', a name"),
        "early stopping": (EarlyStopping(), "EarlyStopping; the estimator stops early itself"),
        "needs validation": (Checkpoint(dirname="unused"), "monitors 'valid_loss_best', which"),
        # A class is made with its defaults, which monitor the validation loss too.
        "needs validation (class)": (Checkpoint, "monitors 'valid_loss_best', which"),
        "load best": (
            Checkpoint(dirname="unused", load_best=True, monitor="train_loss_best"),
            "load_best=True, which would also replace history_",
        ),
        "same name": (("clip", PrintLog()), "named 'clip', as callbacks\\[0\\] is"),
    }


@pytest.mark.parametrize("case", list(_skorch_callbacks()))
def test_skorch_callbacks_the_estimator_cannot_run_are_refused_before_training(case):
    entry, message = _skorch_callbacks()[case]
    X, y = data(ResNetClassifier)
    from skorch.callbacks import PrintLog

    first = [("clip", PrintLog())] if case == "same name" else []
    est = ResNetClassifier(**MLP, early_stopping=False, callbacks=[*first, entry])
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)
    assert_unfitted(est)


def test_a_callback_monitoring_validation_runs_when_a_validation_set_is_held_out(tmp_path):
    from skorch.callbacks import Checkpoint

    X, y = data(ResNetClassifier, n=120)
    saved = Checkpoint(dirname=str(tmp_path / "checkpoints"), f_optimizer=None, f_history=None)
    ResNetClassifier(**MLP, early_stopping=True, callbacks=[saved]).fit(X, y)
    assert (tmp_path / "checkpoints" / "params.pt").exists()


def test_partial_fit_refuses_to_continue_with_a_callback_that_monitors_validation(tmp_path):
    from skorch.callbacks import Checkpoint

    X, y = data(ResNetClassifier, n=120)
    saved = Checkpoint(dirname=str(tmp_path), f_optimizer=None, f_history=None)
    est = ResNetClassifier(**MLP, early_stopping=True, callbacks=[saved]).fit(X, y)
    before = est.predict_proba(X)
    message = "'Checkpoint' .* monitors 'valid_loss_best'.*partial_fit"
    with pytest.raises(ValueError, match=message):
        est.partial_fit(X, y)
    assert est.n_iter_ == MLP["max_epochs"]
    np.testing.assert_array_equal(est.predict_proba(X), before)


def test_a_checkpoint_can_monitor_the_best_validation_score(tmp_path):
    from skorch.callbacks import Checkpoint

    X, y = data(ResNetClassifier, n=120)
    saved = Checkpoint(monitor="valid_score_best", dirname=str(tmp_path), f_optimizer=None)
    est = ResNetClassifier(**MLP, early_stopping=True, callbacks=[saved]).fit(X, y)
    scores = est.history_[:, "valid_score"]
    best = [score > max(scores[:i], default=-np.inf) for i, score in enumerate(scores)]
    assert est.history_[:, "valid_score_best"] == best
    assert (tmp_path / "params.pt").exists()


def test_a_callback_that_cannot_be_deep_copied_is_shared_shallowly():
    """A logger holding a writer (a lock, a file, a connection) is copied shallowly: the
    copy writes to the same place, and the user's instance is left as it was."""
    import threading

    from skorch.callbacks import Callback

    class Logger(Callback):
        def __init__(self, lines):
            self.lines, self.lock = lines, threading.Lock()

        def on_epoch_end(self, net, **kwargs):
            with self.lock:
                self.lines.append(net.history[-1]["epoch"])
            self.last_ = net.history[-1]["epoch"]

    X, y = data(ResNetClassifier)
    lines = []
    logger = Logger(lines)
    ResNetClassifier(**MLP, callbacks=[logger, ("named", logger)]).fit(X, y)
    epochs = list(range(1, MLP["max_epochs"] + 1))
    assert sorted(lines) == sorted(epochs * 2)
    assert not hasattr(logger, "last_")


def test_skorch_callbacks_as_instances_classes_and_named_pairs_are_taken():
    from skorch.callbacks import Callback

    class Count(Callback):
        epochs = 0

        def on_epoch_end(self, net, **kwargs):
            type(self).epochs += 1

    X, y = data(ResNetClassifier)
    pairs = [("named", Count()), ["listed", Count()]]  # skorch takes lists as pairs too
    ResNetClassifier(**MLP, callbacks=[Count(), Count, *pairs]).fit(X, y)
    assert Count.epochs == 4 * MLP["max_epochs"]


def test_fitted_attributes_of_an_unfitted_estimator_raise_not_fitted():
    est = ResNetClassifier()
    for name in ("module_", "history_", "n_iter_", "best_epoch_", "loss_curve_"):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(est, name)
        assert not hasattr(est, name)  # NotFittedError is an AttributeError


def test_a_huge_invalid_depth_is_refused_at_once_with_its_neighbours():
    X, y = data(ResNetClassifier)
    with pytest.raises(ValueError, match="999999998, 1000000000, 1000000002"):
        ResNetClassifier(depth=10**9 + 1).fit(X, y)


# ---- nothing half-fitted ------------------------------------------------------------------
def refusals(Estimator):
    """Fits refused in validation, in building the network and in training."""
    X, y = data(Estimator)
    one_row = "needs at least 2 training samples" if Estimator is ResNetRegressor else "2 classes"
    return {
        "NaN in X": (MLP, np.where(X > 1, np.nan, X), y, "Input X contains NaN"),
        "wrong y length": (MLP, X, y[:-1], "inconsistent numbers of samples"),
        "text X": (MLP, np.full(X.shape, "x"), y, "could not convert string to float"),
        "bad depth": ({**MLP, "depth": 5}, X, y, "'depth' parameter"),
        "bad input_shape": ({**MLP, "input_shape": (3, 3)}, X, y, "'input_shape' parameter"),
        "CNN on 1 sample": (CNN, X[:1].reshape(1, 1, 4), y[:1], one_row),
        "diverges": ({**MLP, "scaling": None, "lr": 1.0}, X * 1e30, y, "diverged"),
    }


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_a_refused_fit_leaves_a_fresh_estimator_unfitted(Estimator):
    for name, (params, X, y, message) in refusals(Estimator).items():
        est = Estimator(**params)
        with pytest.raises(ValueError, match=message):
            est.fit(X, y)
        assert vars(est) == vars(Estimator(**params)), name
        assert_unfitted(est)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("backbone", ["mlp", "cnn"])
def test_a_refused_refit_keeps_the_previous_model_and_predictions(Estimator, backbone):
    X, y = data(Estimator, shape=(4,) if backbone == "mlp" else (1, 4))
    est = Estimator(**(MLP if backbone == "mlp" else CNN)).fit(X, y)
    before, attributes = outputs(est, X), dict(vars(est))
    weights = {k: v.clone() for k, v in est.module_.state_dict().items()}
    n_epochs, original = len(est.history_), est.get_params()
    attempts = [
        (name, "fit", params, X_bad, y_bad)
        for name, (params, X_bad, y_bad, _) in refusals(Estimator).items()
    ]
    unknown = np.full(24, "zebra") if Estimator is ResNetClassifier else y * 1e12
    attempts += [
        ("partial_fit NaN", "partial_fit", {}, np.where(X > 1, np.nan, X), y),
        ("partial_fit features", "partial_fit", {}, X.reshape(24, -1)[:, :2], y),
        ("partial_fit targets", "partial_fit", {}, X, unknown),
        ("invalid parameter", "fit", {"lr": -1.0}, X, y),
    ]
    if backbone == "cnn":
        attempts.append(("partial_fit 1 sample", "partial_fit", {}, X[:1], y[:1]))
    for name, method, params, X_bad, y_bad in attempts:
        est.set_params(**params)
        with pytest.raises((ValueError, InvalidParameterError)), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            getattr(est, method)(X_bad, y_bad)
        est.set_params(**original)
        state = vars(est)
        assert state.keys() == attributes.keys(), name
        assert all(state[k] is v for k, v in attributes.items()), name
        assert len(est.history_) == n_epochs, name
        for key, tensor in est.module_.state_dict().items():
            assert tensor.equal(weights[key]), (name, key)
        for got, want in zip(outputs(est, X), before, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_refused_predictions_change_nothing(Estimator):
    X, y = data(Estimator)
    est = Estimator(**MLP).fit(X, y)
    snapshot = copy.deepcopy(est)
    refusals = [
        (X[:, :3], "X has 3 features, but .* is expecting 4"),
        (np.where(X > 1, np.nan, X), "Input X contains NaN"),
        (X + 1j, "Complex data not supported"),
        (X[0], "Expected 2D array, got 1D array"),
        (X.astype(str)[:, :1], "X has 1 features, but .* is expecting 4"),
    ]
    for bad, message in refusals:
        with pytest.raises(ValueError, match=message):
            est.predict(bad)
    for got, want in zip(outputs(est, X), outputs(snapshot, X), strict=True):
        np.testing.assert_array_equal(got, want)
    assert vars(est).keys() == vars(snapshot).keys()


def test_a_validation_part_too_small_for_every_class_is_drawn_unstratified():
    y = np.repeat([0, 1, 2], 10)  # every class splittable, but 2 validation rows < 3 classes
    train, valid = split_indices(30, 0.05, 0, y)
    assert len(valid) == 2 and len(train) == 28
    y = np.repeat([0, 1, 2], [2, 2, 26])
    train, valid = split_indices(30, 0.95, 0, y)  # 1 training row < 3 classes
    assert len(train) == 1 and len(valid) == 29


def test_a_validation_fraction_that_leaves_no_training_rows_is_named():
    with pytest.raises(ValueError, match=r"validation_fraction=0\.95 of 10 samples leaves one"):
        split_indices(10, 0.95, 0)


@pytest.mark.parametrize("fraction, shown", [("auto", r"'auto' \(0\.1\)"), (0.5, r"0\.5")])
def test_the_error_of_a_split_too_small_names_the_fraction_as_it_was_given(fraction, shown):
    X, y = np.random.default_rng(0).normal(size=(1, 3)), np.array([1.0])
    est = ResNetRegressor(**FAST_PARAMS, early_stopping=True, validation_fraction=fraction)
    with pytest.raises(ValueError, match=rf"validation_fraction={shown} of 1 samples leaves"):
        est.fit(X, y)
    assert_unfitted(est)


def test_small_arrays_for_a_model_fitted_with_feature_names_warn_as_in_sklearn():
    X, y = make_classification(100, 4, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcd"))
    clf = ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 1}).fit(frame, y)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(X[:5])
