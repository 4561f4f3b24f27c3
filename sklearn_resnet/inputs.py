"""Input checks shared by the estimators: X and its shape, sample weights, seeds, splits.

Everything here runs before any training, so bad input fails fast and leaves the
estimator untouched.
"""

from __future__ import annotations

import functools
import math
from numbers import Integral

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import (
    _check_feature_names,
    _check_sample_weight,
    _check_y,
    _num_samples,
    check_array,
    check_consistent_length,
    validate_data,
)

__all__ = [
    "FAST_PATH_ROWS",
    "check_input_shape",
    "check_predict_X",
    "check_sample_weight",
    "finite_outputs",
    "float32_batch",
    "relative_to_largest",
    "resolve_seed",
    "sample_weights",
    "small_float32",
    "spawn_seeds",
    "split_indices",
    "validate_X",
]

# sklearn's own wording for a feature-count mismatch.
_N_FEATURES_MESSAGE = "X has {got} features, but {name} is expecting {expected} features as input."


#: scikit-learn's words for a value that is infinite, or became infinite in float32.
_FLOAT32_OVERFLOW = "infinity or a value too large for dtype('float32')"


def _overflow_as_value_error(function):
    """Report numbers too large for float32 as a ``ValueError`` that says so.

    Huge Python ints raise ``OverflowError``; finite float64 values beyond float32's
    range become infinity in the conversion, which scikit-learn's finiteness check
    reports as "infinity or a value too large", with numpy's overflow warnings before
    it. Those warnings are silenced and the error names float32's range.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                return function(*args, **kwargs)
        except OverflowError as error:
            raise ValueError(f"Input X contains a number too large for float32: {error}.") from None
        except ValueError as error:
            if _FLOAT32_OVERFLOW not in str(error):
                raise
            raise ValueError(
                f"{error} The network computes in float32, whose largest magnitude is "
                f"{np.finfo(np.float32).max:.4g}: replace infinite values, and scale down "
                "columns with larger finite values, before fitting or predicting."
            ) from None

    return wrapper


def _check_dtypes(estimator, X) -> None:
    """Refuse dates, durations and non-numeric DataFrame columns, naming them.

    Numbers, booleans, and strings or objects that read as numbers pass, as in
    scikit-learn; anything else raises a ``ValueError`` naming the dtype, or for a
    DataFrame each column that cannot be read as numbers.
    """
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in "mMV":
        raise ValueError(
            f"X has dtype {dtype}, which is not numeric; convert it to numbers first "
            "(dates and durations to seconds, for example)."
        )
    dtypes = getattr(X, "dtypes", None)
    if not hasattr(dtypes, "items"):
        return
    if len(dtypes) == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
            f"required by {type(estimator).__name__}."
        )
    bad = []
    for position, (name, column_dtype) in enumerate(dtypes.items()):
        kind = getattr(column_dtype, "kind", "O")
        if kind in "biufc":  # numbers; scikit-learn refuses complex ones itself
            continue
        if kind not in "mM":
            try:
                values = X.iloc[:, position].to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                pass
            else:
                if np.isnan(values).any():
                    raise ValueError(f"Input X contains NaN (missing values in column {name!r}).")
                continue
        bad.append(f"{name!r} ({column_dtype})")
    if bad:
        raise ValueError(
            f"X has columns that are not numeric: {', '.join(bad)}. Encode them as numbers "
            "first, for example with OneHotEncoder or OrdinalEncoder in a ColumnTransformer."
        )


def _ndim(X) -> int:
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        ndim = np.ndim(np.asarray(X, dtype=object))
    return ndim


@_overflow_as_value_error
def validate_X(estimator, X, y="no_validation", *, reset: bool, y_kwargs: dict | None = None):
    """Validate X (and y) as float32 and record ``n_features_in_`` when ``reset``.

    Two-dimensional input goes through sklearn's ``validate_data`` (feature names,
    NaN/inf, dtype and feature-count messages). Input with three or more dimensions
    (``(n, C, L)`` signals, ``(n, C, H, W)`` images) is checked the same way; its
    ``n_features_in_`` is the number of values per sample.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, ...)
    y : ndarray or None
    """
    _check_dtypes(estimator, X)
    # scipy.sparse rows are accepted (as CSR) and densified one batch at a time.
    kwargs = {"dtype": np.float32, "accept_sparse": "csr"}
    with_y = not (isinstance(y, str) and y == "no_validation")
    if _ndim(X) < 3:
        if with_y:
            return validate_data(estimator, X, y, reset=reset, **kwargs, **(y_kwargs or {}))
        return validate_data(estimator, X, reset=reset, **kwargs), None
    X = check_array(X, allow_nd=True, **kwargs, input_name="X")
    if with_y:
        if y is None:
            raise ValueError(
                f"{type(estimator).__name__} requires y to be passed, but the target y is None."
            )
        y = _check_y(y, **(y_kwargs or {}), estimator=estimator)
        check_consistent_length(X, y)
    _check_values_per_sample(estimator, X, reset=reset)
    return X, y


def _mlp_shape(estimator) -> tuple[int, ...] | None:
    """The samples a fitted MLP takes besides flat rows: those of its fit or ``input_shape``.

    ``(n_features,)`` for an MLP fitted on rows; ``None`` for one of an earlier
    release, which recorded no sample shape (pickled or saved before), unless its
    ``input_shape`` parameter gives the shape.
    """
    shape = getattr(estimator, "_sample_shape", None)
    if shape is None and estimator.input_shape is not None:
        shape = tuple(estimator.input_shape)
    return shape


def _check_values_per_sample(estimator, X, *, reset: bool) -> None:
    """Feature names and ``n_features_in_`` for input of three or more dimensions.

    ``n_features_in_`` is the number of values per sample; ``reset`` records it,
    otherwise a mismatch raises scikit-learn's feature-count error. A fitted CNN
    takes flat rows or samples of exactly its ``input_shape_``, so channels-last
    images are refused rather than silently misread; so does the MLP, with samples
    of the shape it was fitted on (:func:`_mlp_shape`) or, fitted on rows, flat rows only.
    """
    _check_feature_names(estimator, X, reset=reset)
    name, sample_shape = type(estimator).__name__, tuple(np.shape(X)[1:])
    n_values = math.prod(sample_shape)
    if n_values == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={np.shape(X)}) while a minimum of 1 is "
            f"required by {name}."
        )
    if reset:
        estimator.n_features_in_ = n_values
        return
    if n_values != estimator.n_features_in_:
        raise ValueError(
            _N_FEATURES_MESSAGE.format(got=n_values, name=name, expected=estimator.n_features_in_)
        )
    fitted = estimator.input_shape_ if estimator.backbone_ == "cnn" else _mlp_shape(estimator)
    if fitted is None:
        return  # an MLP of an earlier release: any shape of its number of values
    if len(fitted) == 1:
        raise ValueError(
            f"X has samples shaped {sample_shape}, but {name} was fitted on rows of "
            f"{n_values} features; pass X shaped (n_samples, {n_values})."
        )
    if sample_shape != fitted:
        raise ValueError(
            f"X has samples shaped {sample_shape}, but {name} was fitted on samples shaped "
            f"{fitted}; pass X shaped (n_samples, *{fitted}) or flat rows of {n_values} values."
        )


def check_predict_X(estimator, X):
    """Check X's feature count and names for prediction without converting or copying it.

    The values themselves (dtype, NaN, inf) are checked batch by batch with
    :func:`float32_batch`, so prediction never holds a float32 copy of all of X.
    Numpy arrays and DataFrames with at least one row and two dimensions take this
    path; any other input goes through the full validation, which raises
    scikit-learn's usual errors. A DataFrame of pandas sparse columns is converted to
    CSR there, as in fit.
    """
    _check_dtypes(estimator, X)
    # pandas offers the ``.sparse`` accessor only when every column is sparse.
    frame = hasattr(X, "iloc") and not hasattr(X, "sparse")
    sliceable = isinstance(X, np.ndarray) or frame
    ndim = _ndim(X)
    if not sliceable or ndim < 2 or _num_samples(X) == 0:
        return validate_X(estimator, X, reset=False)[0]
    if ndim == 2:
        return validate_data(estimator, X, reset=False, skip_check_array=True)
    _check_values_per_sample(estimator, X, reset=False)
    return X


#: Most rows a prediction call may have to take the fast path of :func:`small_float32`.
FAST_PATH_ROWS = 256


def small_float32(estimator, X) -> np.ndarray | None:
    """A float32 view or copy of a small, plain, finite 2-D array; ``None`` otherwise.

    The fast path of prediction for a few rows: a numpy array of numbers with the
    fitted number of columns, from an estimator fitted without feature names, needs
    none of the checks that make full validation cost more than a small network's
    forward pass. Anything else (DataFrames, lists, wrong shapes, NaN or infinity)
    returns ``None`` and goes through full validation, which raises the usual errors.
    """
    if (
        type(X) is not np.ndarray
        or X.ndim != 2
        or X.dtype.kind not in "fiub"
        or not 0 < X.shape[0] <= FAST_PATH_ROWS
        or X.shape[1] != estimator.n_features_in_
        or hasattr(estimator, "feature_names_in_")
    ):
        return None
    with np.errstate(over="ignore"):  # values beyond float32 take the full validation
        X = np.ascontiguousarray(X, dtype=np.float32)
    return X if np.isfinite(X).all() else None


@_overflow_as_value_error
def float32_batch(estimator, X_batch) -> np.ndarray:
    """Validate one batch of prediction input and convert it to float32."""
    return check_array(
        X_batch,
        dtype=np.float32,
        allow_nd=True,
        accept_sparse=False,
        estimator=estimator,
        input_name="X",
    )


def finite_outputs(estimator, reduce=None):
    """Wrap ``reduce`` (identity by default) to refuse non-finite outputs before and after it.

    Inputs far outside the training range (``1e30`` with ``scaling=None``, say) can
    overflow inside a float32 network; prediction then raises a ``ValueError`` rather
    than return NaN or infinity.

    Parameters
    ----------
    estimator : estimator
        Named in the error message.
    reduce : callable, default=None
        Maps a batch of network outputs to what prediction keeps.

    Returns
    -------
    check : callable
        ``reduce`` with the checks around it.

    Examples
    --------
    >>> import numpy as np
    >>> finite_outputs(None)(np.array([1.0, 2.0]))
    array([1., 2.])
    """

    def refuse_non_finite(values: np.ndarray) -> None:
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError(
                f"{type(estimator).__name__} produced NaN or infinite outputs: X holds values "
                "too large for the network (its input scaling is "
                f"{getattr(estimator, 'scaling_', None)!r}). Bring X to the range of the "
                "training data, or fit with scaling='auto'."
            )

    def check(outputs: np.ndarray) -> np.ndarray:
        refuse_non_finite(outputs)
        if reduce is None:
            return outputs
        reduced = reduce(outputs)
        refuse_non_finite(reduced)
        return reduced

    return check


def check_input_shape(input_shape, n_features: int, owner: str) -> tuple[int, ...]:
    """Validate the ``input_shape`` parameter against the number of features."""
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, Integral) and s > 0 for s in shape):
        raise ValueError(
            f"The 'input_shape' parameter of {owner} must be a tuple of positive ints "
            f"such as (1, 8, 8) or (1, 40). Got {input_shape!r} instead."
        )
    if math.prod(shape) != n_features:
        raise ValueError(
            f"The 'input_shape' parameter of {owner} is {shape}, which holds "
            f"{math.prod(shape)} values per sample, but X has {n_features} features."
        )
    return tuple(int(s) for s in shape)


def resolve_seed(random_state) -> int:
    """An integer seed from ``random_state``; ``None`` draws one from OS entropy.

    Neither numpy's nor torch's global generator is touched.
    """
    if random_state is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(random_state.randint(np.iinfo(np.int32).max))


def check_batch_norm_batches(
    n_train: int,
    batch_size: int,
    positions: int,
    owner: str,
    validation_fraction: float | str | None,
) -> None:
    """Refuse CNN training that would give batch normalisation one value per channel.

    ``positions`` is the number of positions per sample in the CNN's last stage;
    ``validation_fraction`` (as an error shows it) is given when early stopping held part
    of the data out.

    Raises
    ------
    ValueError
        For fewer than 2 training samples, or ``batch_size=1`` with one position.
    """
    if n_train < 2:
        held_out = (
            f" after early stopping's validation_fraction={validation_fraction} held the rest "
            "out; use more data, a smaller validation_fraction or early_stopping=False"
            if validation_fraction is not None
            else ""
        )
        raise ValueError(
            f"The CNN backbone of {owner} needs at least 2 training samples for batch "
            f"normalisation; {n_train} remain{held_out}."
        )
    if batch_size < 2 and positions < 2:
        raise ValueError(
            f"batch_size={batch_size} is too small for the CNN of {owner} on these samples: "
            "its last stage holds a single position per sample, and batch normalisation needs "
            "more than one value per channel in training. Use batch_size >= 2."
        )


def spawn_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent 63-bit seeds derived from ``seed``."""
    state = np.random.SeedSequence(seed).generate_state(count, dtype=np.uint64)
    return [int(s % (2**63)) for s in state]


def check_sample_weight(sample_weight, X) -> np.ndarray:
    """``sample_weight`` as float64, one non-negative finite weight per sample of ``X``.

    Raises
    ------
    ValueError
        For a wrong shape, negative or non-finite weights, or numbers too large for a
        float.
    """
    try:
        return _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    except OverflowError as error:
        message = f"sample_weight contains a number too large for a float: {error}."
        raise ValueError(message) from None


def relative_to_largest(values: np.ndarray) -> np.ndarray:
    """``values`` divided by their largest (left alone when none is positive)."""
    largest = values.max()
    return values / largest if largest > 0 else values


def _product_relative_to_largest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a * b`` divided by its largest value, in logarithms: no product of finite,
    non-negative factors overflows or vanishes unless its ratio to the largest does."""
    with np.errstate(divide="ignore"):
        logs = np.log(a) + np.log(b)  # -inf where either factor is zero
    top = logs.max()
    return np.exp(logs - top) if np.isfinite(top) else np.zeros_like(logs)


def sample_weights(
    sample_weight, X, extra: np.ndarray | None = None, *, as_given: bool = False
) -> np.ndarray | None:
    """Combine ``sample_weight`` and per-sample class weights into loss weights.

    Returns float64 weights, or ``None`` for the plain mean loss; zero weights are
    kept here and dropped by the caller. By default (``fit``) the weights are relative
    to the largest, for the caller to normalise to mean 1, and ``None`` when all are
    equal. With ``as_given`` (``partial_fit``) they are returned as they are, so that
    the weights of separate calls keep their sizes relative to each other; ``None``
    only when all are 1.

    Raises
    ------
    ValueError
        For a wrong shape, negative or non-finite weights, no positive weight, or
        (``as_given``) weights beyond float32's range.
    """
    if sample_weight is None and extra is None:
        return None
    weight = check_sample_weight(sample_weight, X)
    named = "sample_weight"
    if extra is not None:
        named = "sample_weight times class_weight"
        with np.errstate(over="ignore", under="ignore"):
            product = weight * extra
        lost = (product == 0) & (weight > 0) & (extra > 0)
        if not as_given and (lost.any() or not np.all(np.isfinite(product))):
            product = _product_relative_to_largest(weight, extra)
        weight = product
    if not np.all(np.isfinite(weight)):
        raise ValueError(f"{named} overflows float64; rescale the weights.")
    if not np.any(weight > 0):
        raise ValueError(f"{named} must contain at least one positive value.")
    if as_given:
        if weight.max() > np.finfo(np.float32).max:
            raise ValueError(
                "partial_fit uses sample_weight (times class_weight) as given, and weights "
                f"above float32's range ({np.finfo(np.float32).max:.3g}) cannot be; "
                "rescale them."
            )
        return None if np.all(weight == 1) else weight
    if np.all(weight == weight[0]):
        return None
    # Relative to the largest, so that normalising by the mean cannot overflow.
    return weight / weight.max()


def split_indices(
    n: int, fraction: float, seed: int, stratify=None, min_valid: int = 0, shown: str | None = None
):
    """Train and validation indices for early stopping: ``fraction`` of the ``n`` rows
    held out, and at least ``min_valid``. ``shown`` is how an error names the fraction
    (``fraction`` itself by default).

    Stratified on ``stratify`` (class labels) when every class has at least two
    samples and the validation part can hold one of each.

    Raises
    ------
    ValueError
        If either part would be empty.
    """
    n_valid = max(math.ceil(fraction * n), min_valid)
    if n_valid < 1 or n - n_valid < 1:
        raise ValueError(
            f"early_stopping needs a validation set, but validation_fraction="
            f"{fraction if shown is None else shown} "
            f"of {n} samples leaves one part empty; use more data or early_stopping=False."
        )
    if stratify is not None:
        _, counts = np.unique(stratify, return_counts=True)
        if counts.min() < 2 or n_valid < len(counts) or n - n_valid < len(counts):
            stratify = None
    return train_test_split(
        np.arange(n), test_size=n_valid, random_state=seed % (2**32), stratify=stratify
    )
