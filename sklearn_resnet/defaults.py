"""Defaults for ``None`` and ``"auto"`` parameters: one table for docs, fit and search."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from .backbones import BACKBONE_DEFAULTS

__all__ = [
    "DEFAULTS",
    "DEFAULT_VALIDATION_FRACTION",
    "EARLY_STOPPING_MIN_VALIDATION",
    "LINEAR_PATH_ALPHA",
    "LINEAR_PATH_MAX_FEATURES",
    "MLP_CLASSIFIER_EARLY_STOPPING_MIN_SAMPLES",
    "MLP_REGRESSOR_REFIT_MIN_SAMPLES",
    "MLP_REGRESSOR_REFIT_VALIDATION_FRACTION",
    "PREDICT_BATCH_SIZE",
    "auto_batch_size",
    "auto_early_stopping",
    "auto_validation_fraction",
    "linear_path_rows",
    "resolve_augment",
    "resolve_batch_size",
    "resolve_depth",
    "resolve_n_members",
    "resolve_scaling",
    "resolve_width",
    "small_data_choices",
]

#: Architecture and epoch defaults per backbone, for ``depth``/``width``/``max_epochs=None``.
DEFAULTS = {
    "mlp": {**BACKBONE_DEFAULTS["mlp"], "max_epochs": 100},
    "cnn": {**BACKBONE_DEFAULTS["cnn"], "max_epochs": 60},
}
#: ``scaling="auto"`` per backbone: robust scaling with smooth clipping for tabular
#: rows (RealMLP), per-channel standardisation for signals and images.
AUTO_SCALING = {"mlp": "robust", "cnn": "standard"}
#: ``early_stopping="auto"`` turns on when the validation part holds this many samples.
EARLY_STOPPING_MIN_VALIDATION = 20
#: ... and, for an MLP classifier, when the data holds this many samples. Below it,
#: training on every row for every epoch makes fewer errors than holding out a validation
#: part to restore the epoch of best validation loss; from about here on, the restore
#: helps (benchmarks/small_data.py: 5,000 rows favour training on every row; 7,000 and
#: 10,000 the holdout, or neither). CNN classifiers keep the lower bound: on every row they are
#: more accurate too, but their fits take up to a third longer.
MLP_CLASSIFIER_EARLY_STOPPING_MIN_SAMPLES = 6000
#: ... and an MLP regressor's ``"auto"`` refit starts here even where a
#: ``validation_fraction`` part would hold fewer than ``EARLY_STOPPING_MIN_VALIDATION``
#: rows: its holdout then takes that many, since it only picks the number of epochs and
#: the network kept trains on every row. On diabetes samples of 80 and 120 training rows,
#: training on every row for all epochs fails where the refit does not; on Friedman's
#: problem it is 0.011 and 0.008 R² ahead (benchmarks/regression_data.py, 100 and 150 rows).
MLP_REGRESSOR_REFIT_MIN_SAMPLES = 80
#: ``validation_fraction="auto"``: the share held out for early stopping ...
DEFAULT_VALIDATION_FRACTION = 0.1
#: ... and that of an MLP regressor's ``"refit"``, whose holdout only picks the number of
#: epochs, so a larger one costs the network kept no rows. Over five cross-validations of
#: the regression benchmark's sets of 300 to 2,000 rows it scored 0.007 R² more than a
#: tenth on diabetes and up to 0.0035 more on Friedman's problem at 500 and 1,000 rows,
#: within 0.0008 of it on the other four (benchmarks/regression_data.py). A classifier's
#: refit keeps a tenth: a fifth made ten errors more over six small sets, with a lower log
#: loss on four of them (benchmarks/small_data.py, variant ``refit0.2``).
MLP_REGRESSOR_REFIT_VALIDATION_FRACTION = 0.2
#: Below this many training rows an MLP classifier takes ``SMALL_DATA_MLP_CLASSIFIER``.
#: The regressor keeps the full width: with ``"refit"`` (a tenth held out, as
#: measured) it is ahead of the narrower ones tried (32, 64, 128) on Friedman's problem
#: below 1,000 training rows by 0.002 to 0.06 R², behind width 64 on diabetes by 0.006 and
#: within 0.0014 of all of them on 300 noisy linear rows; with a fifth held out it scores
#: more on diabetes than width 64 did (benchmarks/regression_data.py).
SMALL_DATA_ROWS = 1000
#: An MLP classifier's choices on small data, for each of these parameters left at its
#: default (``None`` or ``"auto"``): eight networks of width 64 and one residual block,
#: each trained on batches of 256 (the whole training set below 257 rows) on standard-
#: scaled inputs, predicting the mean of their probabilities. A wide network trained on
#: every row fits noise there; so does any single network more than an ensemble. Over
#: twenty 5-fold cross-validations of wine and breast cancer this made 72 and 278
#: errors, scikit-learn's MLP 80 and 285, one default network of the earlier release 103
#: and 290 (benchmarks/small_data.py).
SMALL_DATA_MLP_CLASSIFIER = MappingProxyType(
    {"width": 64, "n_members": 8, "batch_size": 256, "depth": 4, "scaling": "standard"}
)
#: Ridge penalty of the regressor's linear path at initialisation (as ``Ridge()``).
LINEAR_PATH_ALPHA = 1.0
#: Above this many features the linear path starts at zero instead of the ridge
#: solution (its Gram matrix is features x features) and is learnt like the rest.
LINEAR_PATH_MAX_FEATURES = 1024
#: Bounds on the rows used for that ridge solution: values held (rows x features) and
#: multiply-adds of its Gram matrix (rows x features^2), about 64 MiB and a second.
_LINEAR_PATH_VALUES = 1 << 24
_LINEAR_PATH_PRODUCTS = 1 << 32
#: ``augment="auto"`` per backbone: padded random shifts for the CNN, nothing for rows.
AUTO_AUGMENT = {"mlp": None, "cnn": "shift"}
#: Samples per forward pass in predict.
PREDICT_BATCH_SIZE = 8192
_BATCH_SIZE_RANGE = (16, 256)


def small_data_choices(backbone: str, task: str, n_train: int, small_data: bool = True):
    """The choices that replace the ``None`` and ``"auto"`` defaults for a fit of ``task``
    with ``backbone`` on ``n_train`` rows: ``SMALL_DATA_MLP_CLASSIFIER`` for an MLP
    classifier below ``SMALL_DATA_ROWS``, none otherwise or where ``small_data`` is false
    (a first ``partial_fit`` call, whose rows need not be all the training data)."""
    mlp_classifier = backbone == "mlp" and task == "classification"
    if small_data and mlp_classifier and n_train < SMALL_DATA_ROWS:
        return SMALL_DATA_MLP_CLASSIFIER
    return MappingProxyType({})


def resolve_batch_size(
    batch_size: int | str, backbone: str, n_train: int, task: str, small_data: bool = True
) -> int:
    """``batch_size`` for a fit on ``n_train`` rows: ``"auto"`` takes the small-data
    choice (:func:`small_data_choices`, unless ``small_data`` is false) or
    :func:`auto_batch_size`. The other ``resolve_*`` functions take the same arguments."""
    if batch_size != "auto":
        return int(batch_size)
    small = small_data_choices(backbone, task, n_train, small_data)
    return small.get("batch_size") or auto_batch_size(n_train)


def resolve_depth(
    depth: int | None, backbone: str, n_train: int, task: str, small_data: bool = True
) -> int:
    """``depth`` for a fit on ``n_train`` rows: ``None`` takes the small-data choice
    (:func:`small_data_choices`) or the backbone's default."""
    if depth is not None:
        return int(depth)
    return small_data_choices(backbone, task, n_train, small_data).get(
        "depth", DEFAULTS[backbone]["depth"]
    )


def resolve_n_members(
    n_members: int | str, backbone: str, n_train: int, task: str, small_data: bool = True
) -> int:
    """``n_members`` for a fit on ``n_train`` rows: ``"auto"`` takes the small-data choice
    (:func:`small_data_choices`) or one network."""
    if n_members != "auto":
        return int(n_members)
    return small_data_choices(backbone, task, n_train, small_data).get("n_members", 1)


def auto_batch_size(n_samples: int) -> int:
    """``batch_size="auto"``: the power of two nearest below ``n/8``, within [16, 256]."""
    low, high = _BATCH_SIZE_RANGE
    if n_samples < 8 * low:
        return low
    return int(min(high, 2 ** int(np.log2(n_samples / 8))))


def auto_early_stopping(
    task: str, backbone: str, n_samples: int, validation_fraction: float
) -> bool | str:
    """``early_stopping="auto"`` for ``task`` and ``backbone`` on ``n_samples`` rows:
    ``False``, ``True`` or ``"refit"``. An MLP regressor refits from
    ``MLP_REGRESSOR_REFIT_MIN_SAMPLES`` on, or where its validation part is big enough.

    On when the validation part holds at least ``EARLY_STOPPING_MIN_VALIDATION`` rows,
    and, for an MLP classifier, the data at least
    ``MLP_CLASSIFIER_EARLY_STOPPING_MIN_SAMPLES``. For an MLP regressor it is
    ``"refit"``: the holdout fit picks the number of epochs and a second fit on every row,
    up to as long as the first, is the one kept. Over diabetes, Friedman's problem (300 to
    2,000 rows) and noisy linear data it was never more than 0.005 R² behind the better of
    the holdout alone and training on every row for all epochs, while each of those falls
    well behind somewhere (training on every row fails on diabetes); at 5,000 and 10,000
    Friedman rows it was ahead of the holdout alone (benchmarks/regression_data.py).
    """
    enough = validation_fraction * n_samples >= EARLY_STOPPING_MIN_VALIDATION
    if backbone == "mlp" and task == "regression":
        return "refit" if enough or n_samples >= MLP_REGRESSOR_REFIT_MIN_SAMPLES else False
    if not enough:
        return False
    if backbone == "mlp":
        return n_samples >= MLP_CLASSIFIER_EARLY_STOPPING_MIN_SAMPLES
    return True


def auto_validation_fraction(task: str, backbone: str, refit: bool) -> float:
    """``validation_fraction="auto"`` for ``task`` and ``backbone``: a fifth for an MLP
    regressor's ``"refit"`` (``refit`` true), a tenth otherwise."""
    if refit and backbone == "mlp" and task == "regression":
        return MLP_REGRESSOR_REFIT_VALIDATION_FRACTION
    return DEFAULT_VALIDATION_FRACTION


def linear_path_rows(n_features: int) -> int:
    """Most training rows (drawn at random) for the closed-form start of the linear path.

    A start needs no more: 262,144 rows at 64 features, 4,096 at 1,024.
    """
    n_features = max(1, n_features)
    return max(1, min(_LINEAR_PATH_VALUES // n_features, _LINEAR_PATH_PRODUCTS // n_features**2))


def resolve_scaling(
    scaling: str | None, backbone: str, n_train: int, task: str, small_data: bool = True
) -> str | None:
    """The scaling method for ``scaling`` on ``n_train`` rows: ``"auto"`` takes the
    small-data choice (:func:`small_data_choices`) or the backbone's."""
    if scaling != "auto":
        return scaling
    return small_data_choices(backbone, task, n_train, small_data).get(
        "scaling", AUTO_SCALING[backbone]
    )


def resolve_width(
    width: int | None, backbone: str, n_train: int, task: str, small_data: bool = True
) -> int:
    """``width=None``: the backbone's default, narrower for an MLP classifier on small data
    (:func:`small_data_choices`)."""
    if width is not None:
        return int(width)
    return small_data_choices(backbone, task, n_train, small_data).get(
        "width", DEFAULTS[backbone]["width"]
    )


def resolve_augment(augment: str | None, backbone: str) -> str | None:
    """The augmentation for ``augment`` (``"auto"`` resolved per backbone)."""
    return AUTO_AUGMENT[backbone] if augment == "auto" else augment
