"""Property tests of the input contract, over generated inputs.

For every generated input, an estimator either fits and predicts finite values of the
right shape and type, or raises a ``ValueError`` or ``TypeError`` whose message names
one of the problems the input was built with; never another exception, and a refused
fit leaves the estimator as it was. Each case records its problems while it is built,
so a test knows which message to expect. Examples are derandomized (the same on every
run) and tiny, so the whole module takes a few seconds.
"""

import copy
import functools
import math
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FAST_CNN_PARAMS, FAST_PARAMS
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from sklearn.base import clone

from sklearn_resnet import ResNetClassifier, ResNetRegressor

# Hypothesis caches go to the temporary directory, not into the checkout.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "sklearn-resnet-hypothesis")
# numpy and scikit-learn's checks warn while they find overflowing or infinite values.
pytestmark = pytest.mark.filterwarnings(
    "ignore:(overflow|invalid value) encountered:RuntimeWarning"
)

ESTIMATORS = [ResNetClassifier, ResNetRegressor]
MLP = {**FAST_PARAMS, "max_epochs": 1}
CNN = {**FAST_CNN_PARAMS, "max_epochs": 1}
#: Derandomized (the same examples on every run), no deadline for the first fit's warm-up.
CONTRACT = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: More examples for the properties over every shape, dtype and defect of X.
WIDE = settings(CONTRACT, max_examples=50)

# What each problem's message says.
MESSAGES = {
    "not 2-D": r"Expected 2D array",
    "no rows": r"0 sample\(s\)",
    "no features": r"0 feature\(s\)|X has 0 features",
    "complex": r"Complex data not supported|not 'complex'",
    "words": r"could not convert string to float",
    "nan": r"Input X contains NaN",
    "inf": r"Input X contains infinity",
    "sample ndim": r"takes samples shaped \(C, L\) or \(C, H, W\)",
    "one class": r"at least 2 classes",
    "one cnn sample": r"needs at least 2 training samples",
    "feature count": r"X has \d+ features, but ResNet\w+ is expecting \d+ features",
    "sample shape": r"X has samples shaped .* but ResNet\w+ was fitted on (samples shaped|rows)",
    "overflow": r"diverged|NaN or infinite outputs",
    "ragged": r"inhomogeneous|setting an array element with a sequence",
}


@dataclass
class Case:
    """A generated X with the problems it was built with."""

    X: object
    ndim: int
    n_rows: int
    sample_shape: tuple
    problems: set = field(default_factory=set)


#: Dtypes X is accepted in; complex numbers and words are added as defects.
DTYPES = ["float64", "float32", "float16", "int64", "uint8", "bool"]
DTYPES += ["object-numbers", "str-numbers"]
#: Values every float dtype takes (1e30 overflows float16: a defect there).
VALUES = ["normal", "constant", "1e30", "1e-30"]
#: What can be wrong with X: each case has up to two of these.
DEFECTS = ["nan", "inf", "complex", "words", "no rows", "one row", "no features"]
DEFECTS += ["1-D", "scalar", "5-D", "ragged"]


@st.composite
def cases(draw, sample_shapes=None):
    """X of 0 to 5 dimensions, 0 to 12 rows, any dtype, with up to two defects.

    ``sample_shapes`` draws the shape of one sample; by default rows of 1 to 3
    features, signals (C, L) and images (C, H, W).
    """
    dims = st.integers(1, 3)
    default_shapes = st.lists(dims, min_size=1, max_size=3).map(tuple)
    sample_shape = draw(default_shapes if sample_shapes is None else sample_shapes)
    n_rows = draw(st.sampled_from([12, 5, 2]))
    dtype = draw(st.sampled_from(DTYPES))
    values = draw(st.sampled_from(VALUES)) if dtype not in ("int64", "uint8", "bool") else "normal"
    container = draw(st.sampled_from(["array", "list"]))
    defects = set(draw(st.lists(st.sampled_from(DEFECTS), max_size=2, unique=True)))
    seed = draw(st.integers(0, 2**16))

    problems = set()
    if "no rows" in defects:
        n_rows = 0
    elif "one row" in defects:
        n_rows = 1
    if "no features" in defects:
        sample_shape = (*sample_shape[:-1], 0)
    if "5-D" in defects:
        sample_shape = (1,) * (4 - len(sample_shape)) + sample_shape
    ndim = 1 + len(sample_shape)
    if "1-D" in defects or "scalar" in defects:
        ndim, sample_shape = (0 if "scalar" in defects else 1), ()
    if defects & {"nan", "inf"} and dtype in ("int64", "uint8", "bool"):
        dtype = "float64"
    if "words" in defects:
        dtype = "object-words" if dtype == "object-numbers" else "str-words"
    elif "complex" in defects:
        dtype = "complex"
    if "ragged" in defects and ndim >= 2 and n_rows >= 2:
        container = "ragged list"

    shape = () if ndim == 0 else (n_rows, *sample_shape)
    size = math.prod(shape)
    X = np.random.default_rng(seed).normal(size=shape) * 3
    if values == "constant" and ndim >= 2 and size:
        X[:, 0] = 7.0
    elif values in ("1e30", "1e-30"):
        X = X * float(values)
    for kind, value in [("nan", np.nan), ("inf", -np.inf)]:
        if kind in defects and size:
            X.flat[seed % size] = value
            problems.add(kind)
    if dtype == "float16" and values == "1e30" and size:
        problems.add("inf")
    if dtype == "complex":
        problems.add("complex")

    if dtype in ("int64", "uint8"):
        X = np.abs(X * 10).astype(dtype)
    elif dtype == "bool":
        X = X > 0
    elif dtype.startswith("object"):
        X = np.asarray(X, dtype=object)
    elif dtype.startswith("str"):
        X = np.asarray(X).astype(str)
    else:
        with np.errstate(over="ignore"):
            X = np.asarray(X).astype(dtype)
    if dtype.endswith("words") and size:
        X.flat[(seed // 7) % size] = "word"
        problems.add("words")

    if ndim == 0:
        X = X[()]
        problems.add("not 2-D")
    elif container != "array":
        X = X.tolist()
        if n_rows == 0:
            problems.add("not 2-D")  # an empty list has no columns
        if container == "ragged list":
            X[-1] = X[-1][:-1]
            problems.add("ragged")
    if ndim == 1:
        problems.add("not 2-D")
    if ndim >= 1 and n_rows == 0:
        problems.add("no rows")
    if 0 in sample_shape:
        problems.add("no features")
    if len(sample_shape) >= 4:
        problems.add("sample ndim")
    return Case(X, ndim, n_rows, sample_shape, problems)


def params_for(case) -> dict:
    """MLP parameters for rows, CNN parameters for signals and images."""
    return CNN if case.ndim >= 3 else MLP


def targets_for(Estimator, n_rows: int) -> np.ndarray:
    """Two classes of words for the classifier, a smooth curve for the regressor."""
    if Estimator is ResNetClassifier:
        return np.array(["no", "yes"])[np.arange(n_rows) % 2]
    return np.linspace(-1.0, 1.0, n_rows) ** 2


def assert_refused(error: Exception, problems: set) -> None:
    """The message names one of the problems the input was built with."""
    assert problems, f"a valid input was refused: {error!r}"
    pattern = "|".join(MESSAGES[p] for p in sorted(problems))
    assert re.search(pattern, str(error), flags=re.IGNORECASE), (sorted(problems), str(error))


def assert_valid_predictions(est, X, n_rows: int, y_train) -> None:
    """Finite predictions of the right shape and type from every prediction method."""
    pred = est.predict(X)
    if isinstance(est, ResNetClassifier):
        assert pred.shape == (n_rows,) and pred.dtype == est.classes_.dtype
        assert set(pred) <= set(est.classes_)
        proba = est.predict_proba(X)
        assert proba.shape == (n_rows, len(est.classes_)) and proba.dtype == np.float64
        assert np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert np.isfinite(est.decision_function(X)).all()
    else:
        expected = (n_rows,) if np.ndim(y_train) == 1 else (n_rows, np.shape(y_train)[1])
        assert pred.shape == expected and pred.dtype == np.float64
        assert np.isfinite(pred).all()
    if n_rows >= 2:
        assert est.score(X, pred) == pytest.approx(1.0)


def assert_unfitted(est) -> None:
    """Nothing half-fitted: a refused fit adds no attribute to a fresh estimator."""
    assert vars(est).keys() == vars(clone(est)).keys()
    assert not hasattr(est, "n_features_in_")


# ---- X at fit time -------------------------------------------------------------------------
@WIDE
@given(case=cases(), Estimator=st.sampled_from(ESTIMATORS))
def test_fit_accepts_or_names_the_problem_of_any_X(case, Estimator):
    problems = set(case.problems)
    if Estimator is ResNetClassifier and case.n_rows == 1:
        problems.add("one class")
    if case.ndim >= 3 and case.n_rows == 1:
        problems.add("one cnn sample")
    y = targets_for(Estimator, case.n_rows)
    est = Estimator(**params_for(case))
    try:
        est.fit(case.X, y)
    except (ValueError, TypeError) as error:
        event(f"refused: {', '.join(sorted(problems))}")
        assert_refused(error, problems)
        assert_unfitted(est)
        return
    event("accepted")
    assert not problems, f"accepted an input with problems {sorted(problems)}"
    assert_valid_predictions(est, case.X, case.n_rows, y)


# ---- X at predict time ---------------------------------------------------------------------
@functools.cache
def fitted(Estimator, backbone: str):
    """A model fitted on 12 clean samples of 3 values: rows for the MLP, (1, 3) for the CNN."""
    X = np.random.default_rng(0).normal(size=(12, 3))
    if backbone == "cnn":
        X = X.reshape(12, 1, 3)
    y = targets_for(Estimator, 12)
    return Estimator(**(CNN if backbone == "cnn" else MLP)).fit(X, y), X, y


@WIDE
@given(
    case=cases(sample_shapes=st.sampled_from([(3,), (1, 3), (3,), (1, 3), (3, 1), (2,)])),
    Estimator=st.sampled_from(ESTIMATORS),
    backbone=st.sampled_from(["mlp", "cnn"]),
)
def test_predict_accepts_or_names_the_problem_of_any_X(case, Estimator, backbone):
    est, X_train, y_train = fitted(Estimator, backbone)
    before = est.predict(X_train)
    problems = set(case.problems)
    if case.ndim >= 2 and math.prod(case.sample_shape) != 3:
        problems.add("feature count")
    if backbone == "cnn" and case.ndim >= 3 and case.sample_shape != (1, 3):
        problems.add("sample shape")  # the CNN takes flat rows or (1, 3) samples
    if backbone == "mlp" and case.ndim >= 3:
        problems.add("sample shape")  # the MLP, fitted on rows, takes rows only
    problems.discard("sample ndim")  # a fitted network's shape is known: see above
    try:
        assert_valid_predictions(est, case.X, case.n_rows, y_train)
    except (ValueError, TypeError) as error:
        event(f"refused: {', '.join(sorted(problems))}")
        assert_refused(error, problems)
    else:
        event("accepted")
        assert not problems, f"accepted an input with problems {sorted(problems)}"
    np.testing.assert_array_equal(est.predict(X_train), before)


# ---- magnitudes of X, with every input scaling ---------------------------------------------
magnitudes = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False)
scalings = st.sampled_from(["auto", "standard", "robust", "quantile", None])


@CONTRACT
@given(
    scale=magnitudes,
    offset=magnitudes,
    scaling=scalings,
    Estimator=st.sampled_from(ESTIMATORS),
    cnn=st.booleans(),
)
def test_any_magnitude_of_X_fits_and_predicts_finite_values(scale, offset, scaling, Estimator, cnn):
    base = np.random.default_rng(0).normal(size=(12, 3))
    with np.errstate(over="ignore", invalid="ignore"):
        X = base * scale + offset
        fits_float32 = np.isfinite(X.astype(np.float32)).all()
    if cnn:
        X = X.reshape(12, 1, 3)
    y = targets_for(Estimator, 12)
    est = Estimator(**(CNN if cnn else MLP), scaling=scaling)
    problems = set() if fits_float32 else {"inf"}
    if scaling is None:
        problems.add("overflow")  # without input scaling, huge values may overflow
    try:
        est.fit(X, y)
        assert_valid_predictions(est, X, 12, y)
        # Values far outside the training range at predict time.
        assert_valid_predictions(est, base.reshape(X.shape) * 1e30, 12, y)
    except (ValueError, TypeError) as error:
        event(f"refused: {', '.join(sorted(problems))}")
        assert_refused(error, problems)
    else:
        event(f"accepted with scaling={scaling!r}")
        assert fits_float32


# ---- pandas frames -------------------------------------------------------------------------
COLUMN_KINDS = {
    # kind: (column maker, problem or None)
    "float": (lambda v: v, None),
    "int": (lambda v: (v * 10).astype(int), None),
    "bool": (lambda v: v > 0, None),
    "Int64": (lambda v: pd.array((v * 10).astype(int), dtype="Int64"), None),
    "Int64 with NA": (lambda v: pd.array([None, *(v[1:] * 10).astype(int)], dtype="Int64"), "nan"),
    "float with NaN": (lambda v: np.r_[np.nan, v[1:]], "nan"),
    "category of numbers": (lambda v: pd.Categorical((v > 0).astype(int)), None),
    "category of words": (lambda v: pd.Categorical(np.where(v > 0, "up", "down")), "column"),
    "object numbers": (lambda v: v.astype(object), None),
    "object words": (lambda v: np.where(v > 0, "up", "down").astype(object), "column"),
    "string numbers": (lambda v: pd.array(v.astype(str), dtype="string"), None),
    "string words": (lambda v: pd.array(np.where(v > 0, "a", "b"), dtype="string"), "column"),
    "string with NA": (lambda v: pd.array([None, *v[1:].astype(str)], dtype="string"), "nan"),
    "datetime": (lambda v: pd.date_range("2020-01-01", periods=len(v)), "column"),
    "timedelta": (lambda v: pd.to_timedelta(np.arange(len(v)), unit="D"), "column"),
}


@CONTRACT
@given(
    kinds=st.lists(st.sampled_from(sorted(COLUMN_KINDS)), min_size=1, max_size=4),
    Estimator=st.sampled_from(ESTIMATORS),
)
def test_dataframes_fit_or_the_message_names_the_bad_column(kinds, Estimator):
    values = np.random.default_rng(0).normal(size=(12, len(kinds)))
    frame = pd.DataFrame(
        {f"c{i}_{kind}": COLUMN_KINDS[kind][0](values[:, i]) for i, kind in enumerate(kinds)}
    )
    bad = [f"c{i}_{kind}" for i, kind in enumerate(kinds) if COLUMN_KINDS[kind][1] == "column"]
    missing = any(COLUMN_KINDS[kind][1] == "nan" for kind in kinds)
    y = targets_for(Estimator, 12)
    est = Estimator(**MLP)
    try:
        est.fit(frame, y)
    except (ValueError, TypeError) as error:
        event("refused")
        assert bad or missing, f"a numeric frame was refused: {error!r}"
        names = "|".join(map(re.escape, bad))
        pattern = "|".join(filter(None, [names and f"not numeric: .*({names})", MESSAGES["nan"]]))
        assert re.search(pattern, str(error)), (kinds, str(error))
        assert_unfitted(est)
        return
    event("accepted")
    assert not bad and not missing, f"accepted the frame {kinds}"
    assert est.feature_names_in_.tolist() == list(frame.columns)
    assert_valid_predictions(est, frame, 12, y)


# ---- targets -------------------------------------------------------------------------------
#: Values targets and weights are made of, and values that spoil them.
finite_values = st.floats(-1e6, 1e6) | st.sampled_from([0.0, 1e30, -1e300, 5e-324])
spoilers = st.sampled_from([np.nan, np.inf, -np.inf, 1e306, -1.7e308])


@st.composite
def spoiled(draw, n: int, values=finite_values, spoilers=spoilers):
    """``n`` values, of which up to two are replaced by spoilers; sometimes one too few."""
    out = draw(st.lists(values, min_size=n, max_size=n))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        out[draw(st.integers(0, n - 1))] = draw(spoilers)
    if draw(st.sampled_from([False, False, False, True])):
        out = out[:-1]
    return np.array(out)


@CONTRACT
@given(data=st.data(), n_outputs=st.sampled_from([1, 1, 2]), as_strings=st.booleans())
def test_regression_targets_of_any_value_fit_or_the_message_names_the_problem(
    data, n_outputs, as_strings
):
    y = data.draw(spoiled(12 * n_outputs), "targets")
    y = y[: len(y) // n_outputs * n_outputs].reshape(-1, n_outputs)
    y = y.ravel() if n_outputs == 1 else y
    problems = []
    if len(y) != 12:
        problems.append(r"inconsistent numbers of samples")
    if np.isnan(y).any():
        problems.append(r"Input y contains NaN")
    if np.isinf(y).any():
        problems.append(r"Input y contains infinity")
    if np.abs(y[np.isfinite(y)]).max(initial=0) > 1e304:
        problems.append(r"takes targets up to 1e\+304")
    if as_strings:
        y = y.astype(str)  # numbers written as text are read, as in scikit-learn
    X = np.random.default_rng(0).normal(size=(12, 3))
    est = ResNetRegressor(**MLP)
    try:
        est.fit(X, y)
    except (ValueError, TypeError) as error:
        event("refused")
        assert problems, f"valid targets were refused: {error!r}"
        assert re.search("|".join(problems), str(error)), (problems, str(error))
        assert_unfitted(est)
        return
    event("accepted")
    assert not problems, f"accepted targets with problems {problems}"
    assert_valid_predictions(est, X, 12, y)


LABELS = {
    "ints": st.integers(-(2**63), 2**63 - 1),
    "small ints": st.integers(0, 2),
    "strings": st.text(max_size=3),
    "floats": st.floats(allow_nan=True, allow_infinity=True),
    "integral floats": st.integers(-3, 3).map(float),
    "bools": st.booleans(),
}


@CONTRACT
@given(data=st.data(), kind=st.sampled_from(sorted(LABELS)), n_labels=st.sampled_from([12, 11]))
def test_class_labels_of_any_type_fit_or_the_message_names_the_problem(data, kind, n_labels):
    labels = data.draw(st.lists(LABELS[kind], min_size=n_labels, max_size=n_labels), "labels")
    y = np.array(labels)
    problems = []
    if len(y) != 12:
        problems.append(r"inconsistent numbers of samples")
    if kind == "floats":
        if np.isnan(y).any():
            problems.append(r"Input y contains NaN")
        if np.isinf(y).any():
            problems.append(r"Input y contains infinity")
        if not np.array_equal(y[np.isfinite(y)], np.round(y[np.isfinite(y)])):
            problems.append(r"Unknown label type: continuous")
    if len(set(labels)) < 2:
        problems.append(r"at least 2 classes")
    X = np.random.default_rng(0).normal(size=(12, 3))
    est = ResNetClassifier(**MLP)
    try:
        est.fit(X, y)
    except (ValueError, TypeError) as error:
        event("refused")
        assert problems, f"valid labels were refused: {error!r}"
        assert re.search("|".join(problems), str(error)), (problems, str(error))
        assert_unfitted(est)
        return
    event("accepted")
    assert not problems, f"accepted labels with problems {problems}"
    assert est.classes_.tolist() == sorted(set(labels))
    assert_valid_predictions(est, X, 12, y)
    assert est.predict(X).dtype == y.dtype


# ---- sample weights ------------------------------------------------------------------------
weights = st.floats(0, 1e6) | st.sampled_from([0.0, -0.0, 1.0, 1e300, 5e-324])
bad_weights = st.sampled_from([np.nan, np.inf, -1.0, -1e-300])


@CONTRACT
@given(
    data=st.data(),
    Estimator=st.sampled_from(ESTIMATORS),
    all_zero=st.sampled_from([False, False, False, True]),
)
def test_any_sample_weight_fits_or_the_message_names_the_problem(data, Estimator, all_zero):
    weight = data.draw(spoiled(12, weights, bad_weights), "sample_weight")
    weight = np.zeros(12) if all_zero else weight
    problems = []
    if len(weight) != 12:
        problems.append(r"sample_weight.shape == \(11,\), expected \(12,\)")
    if np.isnan(weight).any():
        problems.append(r"Input sample_weight contains NaN")
    if np.isinf(weight).any():
        problems.append(r"Input sample_weight contains infinity")
    if (weight < 0).any():
        problems.append(r"Negative values in data passed to `sample_weight`")
    if not (weight > 0).any():
        # Newer scikit-learn refuses it first, in its own words; older leaves it to us.
        problems.append(
            r"(Sample weights|sample_weight) must contain at least one (non-zero|positive)"
        )
    X = np.random.default_rng(0).normal(size=(12, 3))
    y = targets_for(Estimator, 12)
    est = Estimator(**MLP)
    try:
        est.fit(X, y, sample_weight=weight)
    except (ValueError, TypeError) as error:
        event("refused")
        assert problems, f"valid weights were refused: {error!r}"
        assert re.search("|".join(problems), str(error)), (problems, str(error))
        assert_unfitted(est)
        return
    event("accepted")
    assert not problems, f"accepted weights with problems {problems}"
    assert_valid_predictions(est, X, 12, y)


# ---- nothing half-fitted -------------------------------------------------------------------
@CONTRACT
@given(
    case=cases(),
    Estimator=st.sampled_from(ESTIMATORS),
    method=st.sampled_from(["fit", "partial_fit"]),
)
def test_a_refused_refit_keeps_the_previous_model(case, Estimator, method):
    model, X_train, _ = fitted(Estimator, "mlp")
    est = copy.deepcopy(model)
    before = est.predict_proba(X_train) if Estimator is ResNetClassifier else est.predict(X_train)
    attributes = dict(vars(est))
    saved = {k: v.clone() for k, v in est.module_.state_dict().items()}
    # Targets that make every refit fail, whatever X holds: one class unknown to the
    # fitted classifier, one target too many for the regressor.
    n = case.n_rows if case.ndim else 1
    y = np.full(n, "maybe") if Estimator is ResNetClassifier else np.zeros(n + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(est, method)(case.X, y)
    except (ValueError, TypeError):
        pass
    else:
        pytest.fail("a refit without valid targets was accepted")
    assert vars(est).keys() == attributes.keys()
    assert all(vars(est)[k] is v for k, v in attributes.items())
    for name, tensor in est.module_.state_dict().items():
        assert tensor.equal(saved[name]), name
    after = est.predict_proba(X_train) if Estimator is ResNetClassifier else est.predict(X_train)
    np.testing.assert_array_equal(after, before)
