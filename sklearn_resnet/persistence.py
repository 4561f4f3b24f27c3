"""Safe saving and loading of fitted estimators: safetensors weights plus a JSON config.

:func:`save_model` writes a directory holding two files:

``config.json``
    The format name and ``format_version``, the estimator class, its parameters
    (from ``get_params``), the fitted attributes listed in :data:`FITTED_ATTRIBUTES`
    (classes, feature names, target standardisation, resolved architecture...), the
    per-epoch training history and the SHA-256 digest of the weights file.
``model.safetensors``
    The network's ``state_dict`` (weights and buffers such as batch-norm statistics)
    in the `safetensors <https://huggingface.co/docs/safetensors>`_ format.

:func:`load_model` reads both without unpickling anything: JSON and safetensors hold
data only, so a tampered or foreign file fails with a ``ValueError`` and can never
run code. Pickle and joblib keep working too, for files you trust.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sklearn.utils.validation import check_is_fitted

from ._json_codec import (
    FormatError,
    check_keys,
    decode,
    decode_fitted,
    decode_history,
    encode,
    encode_fitted,
    encode_history,
    is_int,
    reject_constant,
)
from .device import is_available
from .estimators import ResNetClassifier, ResNetRegressor
from .inputs import resolve_seed, spawn_seeds
from .training import build_net, seeded

__all__ = ["FITTED_ATTRIBUTES", "FORMAT_VERSION", "load_model", "save_model"]

FORMAT_NAME = "sklearn-resnet"
#: Version of the saved format; a file with a higher version needs a newer sklearn-resnet.
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

_BOTH = ("classification", "regression")
#: The fitted attributes stored in ``config.json``: (name, kind, tasks that require it).
#: An empty tuple of tasks marks an attribute that only some fits have. ``net_`` is not
#: listed: it is rebuilt from the parameters, these attributes and the weights.
FITTED_ATTRIBUTES = (
    ("classes_", "labels", ("classification",)),
    ("n_features_in_", "int", _BOTH),
    ("feature_names_in_", "names", ()),
    ("n_outputs_", "int", _BOTH),
    ("backbone_", "str", _BOTH),
    ("input_shape_", "shape", _BOTH),
    ("scaling_", "str_or_none", _BOTH),
    ("augment_", "str_or_none", _BOTH),
    ("width_", "int", _BOTH),
    ("device_", "str", _BOTH),
    ("precision_", "str", _BOTH),
    ("early_stopping_", "bool", _BOTH),
    ("_y_mean", "floats", ("regression",)),
    ("_y_scale", "floats", ("regression",)),
    ("_y_ndim", "int", ("regression",)),
)
#: Fitted attributes rebuilt on load rather than stored.
REBUILT_ATTRIBUTES = ("net_",)

_ESTIMATORS = {cls.__name__: cls for cls in (ResNetClassifier, ResNetRegressor)}
_CONFIG_KEYS = (
    "format",
    "format_version",
    "library_version",
    "estimator",
    "params",
    "fitted",
    "history",
    "training",
    "weights_sha256",
)


def _library_version() -> str:
    from . import __version__  # imported here: the package imports this module

    return __version__


def _check_fitted(est) -> None:
    """Consistency of the decoded fitted attributes with each other."""
    n_outputs, shape = est.n_outputs_, est.input_shape_
    problems = []
    if est.backbone_ not in ("mlp", "cnn"):
        problems.append(f"backbone_ is {est.backbone_!r}, expected 'mlp' or 'cnn'")
    elif est.backbone_ == "mlp" and shape != (est.n_features_in_,):
        problems.append(f"input_shape_ {shape} does not match n_features_in_ for the MLP")
    elif est.backbone_ == "cnn" and (
        len(shape) not in (2, 3) or math.prod(shape) != est.n_features_in_
    ):
        problems.append(
            f"input_shape_ {shape} is not a (C, L) or (C, H, W) shape of n_features_in_ values"
        )
    if est.precision_ not in ("32", "bf16", "16"):
        problems.append(f"precision_ is {est.precision_!r}, expected '32', 'bf16' or '16'")
    names = getattr(est, "feature_names_in_", None)
    if names is not None and len(names) != est.n_features_in_:
        problems.append("feature_names_in_ does not have n_features_in_ names")
    if hasattr(est, "classes_"):
        classes = est.classes_
        if classes.ndim != 1 or len(classes) != n_outputs or len(classes) < 2:
            problems.append("classes_ must hold n_outputs_ >= 2 labels")
        elif not np.array_equal(np.unique(classes), classes):
            problems.append("classes_ must be sorted and unique")
    if hasattr(est, "_y_mean"):
        if est._y_mean.shape != (n_outputs,) or est._y_scale.shape != (n_outputs,):
            problems.append("_y_mean and _y_scale must hold one value per output")
        if est._y_ndim not in (1, 2) or (est._y_ndim == 1 and n_outputs != 1):
            problems.append(f"_y_ndim is {est._y_ndim}, which does not fit n_outputs_")
    if problems:
        raise FormatError(
            "config.json: inconsistent fitted attributes: " + "; ".join(problems) + "."
        )


# ---- saving -------------------------------------------------------------------------------
def save_model(estimator, path) -> Path:
    """Save a fitted estimator as ``config.json`` + ``model.safetensors`` in a directory.

    The files hold data only (no pickled code), so :func:`load_model` can read files
    from anyone. The directory is created when missing; the two files are replaced
    when it already holds a saved model.

    Parameters
    ----------
    estimator : ResNetClassifier or ResNetRegressor
        A fitted estimator. Every parameter must be a plain value (None, bool, int,
        float, str or lists, tuples and dicts of them); ``callbacks`` and a
        ``RandomState`` as ``random_state`` cannot be stored.
    path : str or path-like
        The directory to write.

    Returns
    -------
    path : pathlib.Path
        The directory written.

    Raises
    ------
    TypeError
        If ``estimator`` is not a ResNetClassifier or ResNetRegressor.
    ValueError
        If it is not fitted, if a parameter cannot be stored, or if ``path`` is a file.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import make_classification
    >>> from sklearn_resnet import ResNetClassifier, load_model, save_model
    >>> X, y = make_classification(100, 5, random_state=0)
    >>> clf = ResNetClassifier(depth=4, width=16, max_epochs=2, random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loaded = load_model(save_model(clf, f"{tmp}/model"))
    >>> bool((loaded.predict(X) == clf.predict(X)).all())
    True
    """
    if type(estimator) not in _ESTIMATORS.values():
        raise TypeError(
            f"save_model takes a fitted ResNetClassifier or ResNetRegressor; got "
            f"{type(estimator).__name__}. Save other objects (e.g. a Pipeline) with joblib."
        )
    check_is_fitted(estimator)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"save_model writes a directory, but {str(path)!r} is a file.")
    params = {
        name: encode(value, f"The parameter {name!r}")
        for name, value in estimator.get_params(deep=False).items()
    }
    fitted = {
        name: encode_fitted(kind, getattr(estimator, name), name)
        for name, kind, _ in FITTED_ATTRIBUTES
        if hasattr(estimator, name)
    }
    state = {k: v.detach().cpu().contiguous() for k, v in estimator.module_.state_dict().items()}
    weights = save_tensors(state, metadata={"format": "pt"})
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": _library_version(),
        "estimator": type(estimator).__name__,
        "params": params,
        "fitted": fitted,
        "history": encode_history(estimator.history_),
        "training": {"batch_size": int(estimator.net_.batch_size)},
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    text = json.dumps(config, indent=2, allow_nan=False) + "\n"
    path.mkdir(parents=True, exist_ok=True)
    _write_atomic(path / WEIGHTS_FILE, weights)
    _write_atomic(path / CONFIG_FILE, text.encode("utf-8"))
    return path


def _write_atomic(target: Path, data: bytes) -> None:
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, target)


# ---- loading ------------------------------------------------------------------------------
def load_model(path):
    """Load an estimator saved by :func:`save_model`, without unpickling anything.

    The network is rebuilt from the parameters and fitted attributes in
    ``config.json`` and its weights are read from ``model.safetensors``. The model
    predicts on the device it was saved from when that device is available here,
    else on the CPU (in float32). It keeps ``history_`` (per-epoch records),
    ``n_iter_``, ``best_epoch_`` and ``loss_curve_``, and can be cloned, pickled and
    trained on with ``partial_fit`` (the optimizer state is not saved: continued
    training starts with fresh optimizer moments).

    Parameters
    ----------
    path : str or path-like
        A directory written by :func:`save_model`.

    Returns
    -------
    estimator : ResNetClassifier or ResNetRegressor
        The fitted estimator.

    Raises
    ------
    ValueError
        If the directory or a file in it is missing, empty, truncated, corrupted,
        tampered with or of another format (a pickle included), if it was written by
        a newer format version, if keys are missing or unknown, or if the weights do
        not match the network the config describes. The message says which.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import make_regression
    >>> from sklearn_resnet import ResNetRegressor, load_model, save_model
    >>> X, y = make_regression(100, 4, random_state=0)
    >>> reg = ResNetRegressor(depth=4, width=16, max_epochs=2, random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     loaded = load_model(save_model(reg, f"{tmp}/model"))
    >>> bool((loaded.predict(X) == reg.predict(X)).all())
    True
    """
    path = Path(path)
    try:
        return _load(path)
    except FormatError as exc:
        raise ValueError(f"Cannot load a model from {str(path)!r}: {exc}") from None


def _load(path: Path):
    if not path.is_dir():
        what = "a file" if path.exists() else "missing"
        raise FormatError(
            f"the path is {what}; load_model reads the directory that save_model wrote "
            f"({CONFIG_FILE} + {WEIGHTS_FILE})."
        )
    config = _read_config(path / CONFIG_FILE)
    estimator = _ESTIMATORS[config["estimator"]]()
    _set_params(estimator, config["params"])
    _set_fitted(estimator, config["fitted"])
    history = decode_history(config["history"])
    training = config["training"]
    check_keys(training, ("batch_size",), f"{CONFIG_FILE} 'training'")
    batch_size = training["batch_size"]
    if not is_int(batch_size) or batch_size < 1:
        raise FormatError(
            f"{CONFIG_FILE}: training batch_size {batch_size!r} is not a positive int."
        )
    tensors = _read_weights(path / WEIGHTS_FILE, config["weights_sha256"])
    module = _rebuild_module(estimator, tensors)
    _attach_net(estimator, module, history, batch_size)
    return estimator


def _looks_like_pickle(data: bytes) -> bool:
    # Pickle protocols 2 to 5 start with the PROTO opcode; joblib writes the same.
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def _read_config(file: Path) -> dict:
    if not file.is_file():
        raise FormatError(f"{CONFIG_FILE} is missing.")
    data = file.read_bytes()
    if not data.strip():
        raise FormatError(f"{CONFIG_FILE} is empty.")
    if _looks_like_pickle(data):
        raise FormatError(
            f"{CONFIG_FILE} is not JSON but looks like a pickle; load_model never unpickles."
        )
    try:
        config = json.loads(data.decode("utf-8"), parse_constant=reject_constant)
    except (ValueError, RecursionError) as exc:
        raise FormatError(
            f"{CONFIG_FILE} is not valid JSON ({exc}); the file is truncated or corrupted."
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise FormatError(f"{CONFIG_FILE} is not an sklearn-resnet model config.")
    version = config.get("format_version")
    if not is_int(version) or version < 1:
        raise FormatError(f"{CONFIG_FILE} has an invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"it was saved in format_version {version} by a newer sklearn-resnet "
            f"({config.get('library_version')!s:.20}); this version ({_library_version()}) reads "
            f"format_version {FORMAT_VERSION} and older. Upgrade sklearn-resnet to load it."
        )
    check_keys(config, _CONFIG_KEYS, CONFIG_FILE)
    if config["estimator"] not in _ESTIMATORS:
        raise FormatError(
            f"{CONFIG_FILE} names the estimator {config['estimator']!r:.40}; expected one "
            f"of {sorted(_ESTIMATORS)}."
        )
    return config


def _set_params(estimator, params) -> None:
    check_keys(params, tuple(estimator.get_params(deep=False)), f"{CONFIG_FILE} 'params'")
    estimator.set_params(**{k: decode(v, f"parameter {k!r}") for k, v in params.items()})
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{CONFIG_FILE}: invalid parameters: {exc}") from None
    if estimator.callbacks is not None:
        raise FormatError(f"{CONFIG_FILE}: the 'callbacks' parameter must be null.")


def _set_fitted(estimator, fitted) -> None:
    task = estimator._task
    entries = [
        (n, kind, tasks) for n, kind, tasks in FITTED_ATTRIBUTES if not tasks or task in tasks
    ]
    required = [name for name, _, tasks in entries if tasks]
    optional = [name for name, _, tasks in entries if not tasks]
    check_keys(fitted, required, f"{CONFIG_FILE} 'fitted'", optional)
    for name, kind, _ in entries:
        if name in fitted:
            setattr(estimator, name, decode_fitted(kind, fitted[name], name))
    _check_fitted(estimator)


def _read_weights(file: Path, digest) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise FormatError(f"{WEIGHTS_FILE} is missing.")
    data = file.read_bytes()
    if not data:
        raise FormatError(f"{WEIGHTS_FILE} is empty.")
    if _looks_like_pickle(data):
        raise FormatError(
            f"{WEIGHTS_FILE} is not a safetensors file but looks like a pickle; "
            "load_model never unpickles."
        )
    try:
        tensors = load_tensors(data)
    except Exception as exc:  # any failure of the parser on untrusted bytes
        raise FormatError(
            f"{WEIGHTS_FILE} is not a valid safetensors file ({exc}); the file is truncated "
            "or corrupted."
        ) from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise FormatError(
            f"{WEIGHTS_FILE} does not match the SHA-256 digest recorded in {CONFIG_FILE}: "
            "the file is corrupted or was replaced."
        )
    return tensors


def _rebuild_module(estimator, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The network described by the config, holding the saved weights."""
    try:
        # On the meta device first: shapes are compared without allocating memory,
        # however large a tampered config says the network is.
        with torch.device("meta"):
            expected = estimator._build_module().state_dict()
    except (ValueError, TypeError, RuntimeError) as exc:
        raise FormatError(
            f"{CONFIG_FILE} describes a network that cannot be built: {exc}"
        ) from None
    problems = [f"missing {key!r}" for key in expected if key not in tensors]
    problems += [f"unexpected {key!r}" for key in tensors if key not in expected]
    problems += [
        f"{key!r} is {tuple(tensors[key].shape)} {tensors[key].dtype}, "
        f"expected {tuple(value.shape)} {value.dtype}"
        for key, value in expected.items()
        if key in tensors
        and (tensors[key].shape != value.shape or tensors[key].dtype != value.dtype)
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise FormatError(
            f"the weights in {WEIGHTS_FILE} do not fit the network described by "
            f"{CONFIG_FILE}: {'; '.join(problems[:3])}{more}."
        )
    with seeded(0, "cpu"):  # construction draws from torch's RNG; leave it as found
        module = estimator._build_module()
    module.load_state_dict(tensors, strict=True)
    return module


def _attach_net(estimator, module, history: list[dict], batch_size: int) -> None:
    """Wrap the loaded module in a fresh training net on an available device."""
    if not is_available(estimator.device_):
        estimator.device_, estimator.precision_ = "cpu", "32"
    init_seed, shuffle_seed, _ = spawn_seeds(resolve_seed(estimator.random_state), 3)
    plan = estimator._plan(batch_size, shuffle_seed)
    plan = dataclasses.replace(plan, batch_size=batch_size)
    with seeded(init_seed, estimator.device_):
        net = build_net(plan, module)
    net.history = type(net.history)(history)
    estimator.net_ = net
