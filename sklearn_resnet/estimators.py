"""scikit-learn estimators: :class:`ResNetClassifier` and :class:`ResNetRegressor`.

The public classes only declare: parameters, the target encoding and the prediction
methods. Validation, training and persistence live in :class:`~sklearn_resnet.base._BaseResNet`.
"""

from __future__ import annotations

from functools import partial
from numbers import Real

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _assert_all_finite,
    _num_samples,
    column_or_1d,
)

from . import _docs
from .base import _BaseResNet
from .concurrency import estimator_lock
from .inputs import check_sample_weight, relative_to_largest, validate_X
from .sparse_rows import is_sparse

__all__ = ["ResNetClassifier", "ResNetRegressor", "expected_failed_checks"]


def expected_failed_checks(estimator) -> dict[str, str]:
    """scikit-learn estimator checks that cannot pass, with the reason.

    Pass the result as ``expected_failed_checks`` to scikit-learn's ``check_estimator``
    or ``parametrize_with_checks``. scikit-learn's own ``MLPClassifier`` lists the same.

    Parameters
    ----------
    estimator : ResNetClassifier or ResNetRegressor
        The estimator to be checked; the same checks fail for every setting.

    Returns
    -------
    checks : dict of str to str
        Check name to the reason it cannot pass.

    Examples
    --------
    >>> from sklearn_resnet import ResNetClassifier
    >>> for name in sorted(expected_failed_checks(ResNetClassifier())):
    ...     print(name)
    check_sample_weight_equivalence_on_dense_data
    check_sample_weight_equivalence_on_sparse_data
    """
    reason = (
        "Mini-batch training sees a sample of weight k once per epoch with k times the "
        "loss, not k times per epoch, so weights are not equivalent to repeated rows."
    )
    return {
        "check_sample_weight_equivalence_on_dense_data": reason,
        "check_sample_weight_equivalence_on_sparse_data": reason,
    }


#: Largest target magnitude the regressor takes: predictions are standardised outputs
#: times the targets' scale, which must stay far from float64's maximum (1.8e308).
_MAX_TARGET = 1e304
#: Largest standardised target (in standard deviations) that continued training takes.
_MAX_SCALED_TARGET = 1e6
#: Smallest target scale, as a share of the largest deviation from the mean.
_MIN_SPREAD_SHARE = 1e-5


def _check_classes(classes) -> np.ndarray:
    """The sorted unique labels of ``partial_fit``'s ``classes`` argument."""
    classes = np.asarray(classes)
    if classes.ndim != 1:
        raise ValueError(
            f"classes must be a 1-D array of labels; got an array of shape {classes.shape}."
        )
    try:
        check_classification_targets(classes)
        return np.unique(classes)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Invalid classes {classes.tolist()!r}: {error}") from None


def _balanced_class_weights(n_classes: int, encoded: np.ndarray, sample_weight) -> np.ndarray:
    """``class_weight="balanced"``: inversely proportional to each class's total weight.

    Counts are weighted by ``sample_weight``, as in ``LogisticRegression``: a sample of
    weight k counts k times, and one of weight zero not at all, exactly as if it were
    not there. The weights are scikit-learn's ``n / (n_classes * count)`` divided by
    their largest, which ``fit`` normalises away anyway, so that extreme but finite
    sample weights cannot overflow them. A class whose samples all weigh zero gets 1
    (its samples are dropped).
    """
    positive = None if sample_weight is None else sample_weight > 0
    present = np.bincount(encoded, weights=positive, minlength=n_classes) > 0
    if sample_weight is not None:
        sample_weight = relative_to_largest(sample_weight)  # sums of huge weights overflow
    counts = np.bincount(encoded, weights=sample_weight, minlength=n_classes)
    per_class = np.ones(n_classes)
    with np.errstate(divide="ignore", invalid="ignore"):  # a total lost to underflow: 0/0
        per_class[present] = counts[present].min() / counts[present]
    if not np.all(per_class[present] > 0):
        raise ValueError(
            'class_weight="balanced": the total sample_weight of the classes differs by '
            "more than float64 can represent, so one class would weigh nothing; rescale "
            "the weights or pass class_weight as a dict."
        )
    return per_class


def _class_weights(
    class_weight, classes: np.ndarray, y: np.ndarray, encoded: np.ndarray, sample_weight
) -> np.ndarray:
    """Weight per class (in ``classes`` order) for ``class_weight``, checked.

    Raises
    ------
    ValueError
        Naming ``class_weight`` for a weight that is not a number, negative, NaN or
        infinite, or when every class present in ``y`` weighs zero.
    """
    if isinstance(class_weight, str) and class_weight == "balanced":
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, y)
        return _balanced_class_weights(len(classes), encoded, sample_weight)
    try:
        per_class = compute_class_weight(class_weight, classes=classes, y=y)
    except (TypeError, ValueError, OverflowError) as error:  # overflow: a huge int weight
        raise ValueError(f"Invalid class_weight {class_weight!r:.200}: {error}") from None
    if not np.all(np.isfinite(per_class)) or np.any(per_class < 0):
        weights = dict(zip(classes.tolist(), per_class.tolist(), strict=True))
        raise ValueError(
            f"class_weight must give every class a finite, non-negative weight; got {weights}."
        )
    if not np.any(per_class[np.isin(classes, y)] > 0):
        raise ValueError(
            f"class_weight gives every class present in y a weight of zero: {class_weight!r}."
        )
    return per_class


def _refuse_sparse_targets(estimator, y) -> None:
    if is_sparse(y):
        raise ValueError(
            f"{type(estimator).__name__} takes y as a dense array; got a scipy.sparse y. "
            "Convert it with y.toarray()."
        )


def _shape_of(y) -> tuple:
    """The shape of an array or (nested) list ``y``; ``()`` for anything else."""
    if hasattr(y, "shape"):
        return tuple(y.shape)
    if isinstance(y, (list, tuple)):
        try:
            return tuple(np.shape(y))
        except ValueError:  # ragged
            return ()
    return ()


def _n_rows(X) -> int | None:
    """The number of samples in X, or None where X is not array-like."""
    try:
        return _num_samples(X)
    except TypeError:
        return None


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float64 logits (scipy's is several times slower on one row)."""
    out = logits - logits.max(axis=1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of float64 logits."""
    out = logits - logits.max(axis=1, keepdims=True)
    out -= np.log(np.exp(out).sum(axis=1, keepdims=True))
    return out


class ResNetClassifier(ClassifierMixin, _BaseResNet):
    __doc__ = _docs.classifier_doc()

    _parameter_constraints: dict = {
        **_BaseResNet._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    }
    _task = "classification"

    def __init__(
        self,
        *,
        backbone="auto",
        depth=None,
        width=None,
        n_members="auto",
        block="basic",
        dropout=0.0,
        input_shape=None,
        scaling="auto",
        augment="auto",
        optimizer="adamw",
        lr=None,
        weight_decay=None,
        lr_schedule="cosine",
        batch_size="auto",
        max_epochs=None,
        early_stopping="auto",
        validation_fraction="auto",
        n_iter_no_change=10,
        class_weight=None,
        label_smoothing=0.0,
        device="auto",
        precision="auto",
        compile=False,
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        super().__init__(
            backbone=backbone,
            depth=depth,
            width=width,
            n_members=n_members,
            block=block,
            dropout=dropout,
            input_shape=input_shape,
            scaling=scaling,
            augment=augment,
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            lr_schedule=lr_schedule,
            batch_size=batch_size,
            max_epochs=max_epochs,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            device=device,
            precision=precision,
            compile=compile,
            random_state=random_state,
            verbose=verbose,
            callbacks=callbacks,
        )
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch on (X, y) at the base learning rate, without early stopping.

        The first call builds the network and needs ``classes`` unless ``fit`` ran
        before; it also fits the input scaling on its rows, which later calls keep, so
        make the first batch representative. Later calls continue from the current
        weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, L) or (n_samples, C, H, W)
            Training inputs.
        y : array-like of shape (n_samples,)
            Labels, all among ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every label that will ever appear; required on the first call. Later calls
            may pass the same labels again; other labels raise a ``ValueError``.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, used as given (``fit`` normalises them to mean 1), so
            that weights passed in separate calls keep their relative sizes.

        Returns
        -------
        self : object
        """
        fitted = hasattr(self, "net_")
        if not fitted and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if fitted and classes is not None:
            labels = _check_classes(classes)
            if not np.array_equal(labels, self.classes_):
                raise ValueError(
                    f"classes={labels.tolist()!r} is not the same as the classes the "
                    f"estimator was first trained with, {self.classes_.tolist()!r}."
                )
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: one batch's class "
                "frequencies are not those of the data. Compute the weights over all the data "
                "(sklearn.utils.class_weight.compute_class_weight) and pass them as a dict."
            )
        return self._partial_fit(X, y, sample_weight, classes=classes)

    def _validate_targets(self, X, y, *, reset: bool, classes=None, sample_weight=None):
        _refuse_sparse_targets(self, y)
        shape = _shape_of(y)
        if len(shape) == 2 and shape[1] > 1 and shape[0] == _n_rows(X):
            raise ValueError(
                f"{type(self).__name__} does not support multilabel or multi-output "
                f"targets; got y of shape {shape}."
            )
        X, y = validate_X(self, X, y, reset=reset)
        try:
            y = column_or_1d(np.asarray(y), warn=True)
            check_classification_targets(y)
        except TypeError as error:
            raise ValueError(
                f"y holds labels that cannot be used as classes ({error}); use labels of one "
                "type, all strings or all numbers."
            ) from None
        if reset:
            labels = np.unique(y) if classes is None else _check_classes(classes)
            if len(labels) < 2 and classes is not None:
                raise ValueError(
                    f"classes={labels.tolist()!r} names only one class; {type(self).__name__} "
                    "needs at least 2, and classes must list every label that any partial_fit "
                    "call will see."
                )
            if len(labels) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contains only one class: {labels.tolist()[0]!r}."
                )
            self.classes_ = labels
            self.n_outputs_ = len(labels)
        unknown = np.setdiff1d(y, self.classes_)
        if len(unknown):
            raise ValueError(
                f"y contains labels {unknown.tolist()} that are not in classes_ "
                f"{self.classes_.tolist()}."
            )
        encoded = np.searchsorted(self.classes_, y)
        extra = None
        if self.class_weight is not None:
            per_class = _class_weights(self.class_weight, self.classes_, y, encoded, sample_weight)
            extra = per_class[encoded]
        return X, encoded, extra

    def _n_network_outputs(self) -> int:
        return len(self.classes_)

    def _label_smoothing(self) -> float:
        return float(self.label_smoothing)

    @_docs.prediction(
        "Logits of the classes (an ensemble's: the logarithms of its mean probabilities).",
        "scores : ndarray of shape (n_samples,) or (n_samples, n_classes)",
        "For two classes the positive minus the negative logit, else every logit.",
    )
    def decision_function(self, X):
        logits = self._forward(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    @_docs.prediction(
        "Class probabilities: the softmax of the logits.",
        "proba : ndarray of shape (n_samples, n_classes)",
        "Probabilities in the order of ``classes_``; each row sums to 1.",
    )
    def predict_proba(self, X):
        return self._forward(X, reduce=_softmax)

    @_docs.prediction(
        "Logarithm of the class probabilities, computed without underflow.",
        "log_proba : ndarray of shape (n_samples, n_classes)",
        "Log-probabilities in the order of ``classes_``.",
    )
    def predict_log_proba(self, X):
        return self._forward(X, reduce=_log_softmax)

    @_docs.prediction(
        "Predicted class labels.",
        "y : ndarray of shape (n_samples,)",
        "The most probable class of each row, in the type of the training labels.",
    )
    def predict(self, X):
        with estimator_lock(self):  # the labels of the network that predicted
            index = self._forward(X, reduce=partial(np.argmax, axis=1))
            return self.classes_[index]


class ResNetRegressor(RegressorMixin, _BaseResNet):
    __doc__ = _docs.regressor_doc()

    _task = "regression"

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Train for one epoch on (X, y) at the base learning rate, without early stopping.

        The first call builds the network, fits the input scaling on its rows and
        standardises targets with this batch's mean and scale; later calls keep both,
        so make the first batch representative, and continue from the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, L) or (n_samples, C, H, W)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, used as given (``fit`` normalises them to mean 1), so
            that weights passed in separate calls keep their relative sizes.

        Returns
        -------
        self : object
        """
        return self._partial_fit(X, y, sample_weight)

    def _validate_targets(self, X, y, *, reset: bool, classes=None, sample_weight=None):
        _refuse_sparse_targets(self, y)
        X, y = validate_X(
            self, X, y, reset=reset, y_kwargs={"y_numeric": True, "multi_output": True}
        )
        y = np.asarray(y, dtype=np.float64)
        # Targets given as text ("nan", "inf") are numbers only from here on.
        _assert_all_finite(y, input_name="y", estimator_name=type(self).__name__)
        y2d = y.reshape(len(y), -1)
        largest = np.abs(y2d).max()
        if largest > _MAX_TARGET:
            raise ValueError(
                f"y contains a value of magnitude {largest:.3g}; {type(self).__name__} takes "
                f"targets up to {_MAX_TARGET:.0e}, so that predictions cannot overflow float64."
            )
        if reset:
            self._y_ndim = y.ndim
            self.n_outputs_ = y2d.shape[1]
        elif y2d.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y2d.shape[1]} outputs, but {type(self).__name__} was fitted with "
                f"{self.n_outputs_}."
            )
        return X, y2d, None

    def _scale_targets(self, y, weight, *, reset: bool):
        """Standardise targets with their (weighted) mean and standard deviation.

        The statistics are taken of ``y`` divided by its largest magnitude, so squares
        cannot overflow for targets near the float64 range.
        """
        if reset:
            magnitude = np.abs(y).max(axis=0)
            magnitude = np.where(magnitude > 0, magnitude, 1.0)
            unit = y / magnitude
            mean = np.average(unit, axis=0, weights=weight)
            spread = np.sqrt(np.average((unit - mean) ** 2, axis=0, weights=weight))
            # Weights can put nearly all their mass on one target (weights 1 and 1e300
            # leave a spread 1e-150 of the range): the scale stays at least a share of
            # the largest deviation, so no target lies beyond 1/share scales.
            spread = np.maximum(spread, _MIN_SPREAD_SHARE * np.abs(unit - mean).max(axis=0))
            scale = spread * magnitude
            self._y_mean = mean * magnitude
            # Constant targets (a first partial_fit call on one row, say) have no spread:
            # their own size keeps later targets of the same order near ±1.
            self._y_scale = np.where(scale > 0, scale, magnitude)
        scaled = (y - self._y_mean) / self._y_scale
        # Only continued training can get here: the first fit's scale keeps its own
        # targets within 1 / _MIN_SPREAD_SHARE scales of their mean.
        if not np.all(np.abs(scaled) < _MAX_SCALED_TARGET):
            raise ValueError(
                f"y lies up to {np.abs(scaled).max():.3g} standard deviations from the "
                f"first fit's target mean; {type(self).__name__} trains on at most "
                f"{_MAX_SCALED_TARGET:.0e}: continue with partial_fit only on targets of "
                "the first fit's scale."
            )
        return scaled

    def _n_network_outputs(self) -> int:
        return self.n_outputs_

    def _module_options(self) -> dict:
        # The MLP learns the residual of a ridge regression: y = H(x) + Lx.
        return {"linear_path": True} if self.backbone_ == "mlp" else {}

    def _unscale(self, outputs: np.ndarray) -> np.ndarray:
        outputs *= self._y_scale
        outputs += self._y_mean
        return outputs

    @_docs.prediction(
        "Predicted targets.",
        "y : ndarray of shape (n_samples,) or (n_samples, n_outputs)",
        "float64 predictions in the units of the training targets, one column per target "
        "when ``fit`` was given a 2-D ``y``.",
    )
    def predict(self, X):
        with estimator_lock(self):  # the target scale of the network that predicted
            out = self._forward(X, reduce=self._unscale)
            return out.ravel() if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
