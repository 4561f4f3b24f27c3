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
run code; it is safe for files from anyone. Pickle and joblib keep working too, but
load those only from sources you trust: unpickling runs code from the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sklearn.utils.validation import check_is_fitted

from ._json_codec import (
    FormatError,
    check_keys,
    check_nesting,
    decode,
    decode_fitted,
    decode_history,
    encode,
    encode_fitted,
    encode_history,
    is_int,
    is_number,
    parse_float,
    parse_int,
    reject_constant,
)
from ._load_checks import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    check_fitted,
    check_weights,
    not_a_directory,
    read_bytes,
    unparsable,
)
from .backbones import (
    BACKBONE_DEFAULTS,
    BLOCK_TYPES,
    blocks_for_depth,
    built_block,
    depth_step,
    ensemble_members,
    last_block_prefix,
)
from .backbones.layers import dropout_rate
from .concurrency import estimator_lock, folder_lock
from .defaults import auto_validation_fraction
from .device import is_available
from .estimators import ResNetClassifier, ResNetRegressor
from .inputs import resolve_seed, spawn_seeds
from .training import autograd_enabled, build_net, seeded

__all__ = ["FITTED_ATTRIBUTES", "FORMAT_VERSION", "load_model", "save_model"]

FORMAT_NAME = "sklearn-resnet"
#: Version of the saved format; a file with a higher version needs a newer sklearn-resnet.
#: Version 2 added the resolved ``depth`` to ``training`` (version 1 files take the
#: default depth, which has not changed since). Version 3 added an MLP's
#: ``_sample_shape`` to ``fitted`` (an MLP of an earlier file takes any sample shape of
#: its number of values, as it did then). Version 4 added the network's ``block`` and
#: ``dropout`` to ``training`` (earlier files take the parameters). Version 5 added the
#: optional ``selection_history_`` of ``early_stopping="refit"`` to ``fitted``. Version 6
#: allows the parameter value ``validation_fraction="auto"``, which earlier releases
#: refuse, and the fitted ``validation_fraction_`` where it cannot be told from the rest
#: (see ``_derived_validation_fraction``; earlier files take that). Version 7 added the
#: ``n_members`` parameter and the fitted ``n_members_`` of an ensemble (earlier files hold
#: one network and take ``n_members="auto"``). A model is saved in the lowest version
#: that holds it (see ``_format_version``), so one with none of these is saved as
#: version 4, which earlier releases read.
FORMAT_VERSION = 7
#: Largest config.json read (a saved one takes kilobytes; feature names can take more).
_MAX_CONFIG_BYTES = 256 * 2**20

_BOTH = ("classification", "regression")
#: The fitted attributes stored in ``config.json``: (name, kind, tasks that require it).
#: An empty tuple of tasks marks an attribute that only some fits have. ``net_`` is not
#: listed: it is rebuilt from the parameters, these attributes and the weights.
FITTED_ATTRIBUTES = (
    ("classes_", "labels", ("classification",)),
    ("n_features_in_", "positive_int", _BOTH),
    ("feature_names_in_", "names", ()),
    ("n_outputs_", "positive_int", _BOTH),
    ("backbone_", "str", _BOTH),
    ("input_shape_", "shape", _BOTH),
    ("_sample_shape", "shape", ()),
    ("scaling_", "str_or_none", _BOTH),
    ("augment_", "str_or_none", _BOTH),
    ("width_", "positive_int", _BOTH),
    ("n_members_", "positive_int", ()),
    ("device_", "str", _BOTH),
    ("precision_", "str", _BOTH),
    ("early_stopping_", "bool", _BOTH),
    ("validation_fraction_", "fraction_or_none", ()),
    ("selection_history_", "history", ()),
    ("_y_mean", "floats", ("regression",)),
    ("_y_scale", "floats", ("regression",)),
    ("_y_ndim", "positive_int", ("regression",)),
)
#: Fitted attributes rebuilt on load rather than stored.
REBUILT_ATTRIBUTES = ("net_",)

#: Parameters and fitted attributes added in a later format version than 4, with that
#: version: an earlier file holds none of them, and they take their defaults.
_LATER_PARAMETERS = {"n_members": 7}
_LATER_FITTED = {"n_members_": 7}
#: The member index in the weight names of an ensemble (``members.<k>.``).
_MEMBER = re.compile(r"^members\.(\d+)\.")

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


# ---- saving -------------------------------------------------------------------------------
def save_model(estimator, path) -> Path:
    """Save a fitted estimator as ``config.json`` + ``model.safetensors`` in a directory.

    The files hold data only (no pickled code), so ``load_model`` can read files
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
        If ``estimator`` is not a ResNetClassifier or ResNetRegressor. A subclass is
        refused too: ``load_model`` could only rebuild the base class, without the
        subclass's code (save it with joblib).
    ValueError
        If it is not fitted, if a parameter cannot be stored, if ``path`` is a file, or
        if the files cannot be written (a failure while writing them leaves the previous
        model, if any, unchanged).

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
    # Not while the estimator trains in another thread; one save at a time per folder.
    with estimator_lock(estimator), folder_lock(path):
        return _save(estimator, path)


def _save(estimator, path: Path) -> Path:
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if (path / name).is_dir():
            raise ValueError(
                f"save_model cannot write {name} into {str(path)!r}: a directory has that name."
            )
    params = {
        name: encode(value, f"The parameter {name!r}")
        for name, value in estimator.get_params(deep=False).items()
    }
    fitted = {
        name: encode_fitted(kind, getattr(estimator, name), name)
        for name, kind, _ in FITTED_ATTRIBUTES
        if hasattr(estimator, name)
    }
    stores_fraction = _stores_validation_fraction(estimator)
    if not stores_fraction:
        fitted.pop("validation_fraction_", None)
    stores_members = _stores_members(estimator)
    if not stores_members:  # one network, and the default: as earlier formats hold it
        params.pop("n_members")
        fitted.pop("n_members_", None)
    state = {k: v.detach().cpu().contiguous() for k, v in estimator.module_.state_dict().items()}
    weights = save_tensors(state, metadata={"format": "pt"})
    config = {
        "format": FORMAT_NAME,
        "format_version": _format_version(estimator, stores_fraction, stores_members),
        "library_version": _library_version(),
        "estimator": type(estimator).__name__,
        "params": params,
        "fitted": fitted,
        "history": encode_history(estimator.history_),
        "training": {"batch_size": int(estimator.net_.batch_size), **_built_network(estimator)},
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    text = json.dumps(config, indent=2, allow_nan=False) + "\n"
    files = {path / WEIGHTS_FILE: weights, path / CONFIG_FILE: text.encode("utf-8")}
    suffix = f".{os.getpid()}.partial"  # another process may be saving here too
    partial = {target: target.with_name(target.name + suffix) for target in files}
    try:
        path.mkdir(parents=True, exist_ok=True)
        # Both files are written in full before either replaces the saved one, so a
        # failure while writing leaves the previous model as it was.
        for target, data in files.items():
            partial[target].write_bytes(data)
        for target in files:
            os.replace(partial[target], target)
    except OSError as exc:
        for file in partial.values():
            try:
                file.unlink(missing_ok=True)
            except OSError:  # the folder itself could not be made
                pass
        raise ValueError(f"save_model cannot write to {str(path)!r}: {exc}") from exc
    return path


def _resolved_depth(estimator) -> int:
    """The depth the parameter gives (``None``: the backbone's default)."""
    if estimator.depth is not None:
        return int(estimator.depth)
    return BACKBONE_DEFAULTS[estimator.backbone_]["depth"]


def _built_network(estimator) -> dict:
    """The depth, block and dropout the fitted network was built with: ``set_params``
    may have changed those parameters since, for the next fit."""
    kind, module = estimator.backbone_, estimator.module_
    block = built_block(kind, module, estimator.block)
    network = ensemble_members(module)[0]
    n_blocks = len(network.blocks) if kind == "mlp" else len(network.stages[0])
    depth = depth_step(kind, block) * n_blocks + 2
    return {"depth": depth, "block": block, "dropout": dropout_rate(module)}


# ---- loading ------------------------------------------------------------------------------
def _derived_validation_fraction(estimator):
    """``validation_fraction_`` as the parameters tell it: ``validation_fraction``
    (``"auto"`` resolved) where the kept network, or a refit's first fit, held rows out.

    An MLP regressor's ``early_stopping="auto"`` never means ``True``, so a holdout
    network kept under it is an abandoned refit's.
    """
    held_out = estimator.early_stopping_ or hasattr(estimator, "selection_history_")
    if not held_out:
        return None
    fraction = estimator.validation_fraction
    if not isinstance(fraction, str):
        return float(fraction)
    refit = hasattr(estimator, "selection_history_") or estimator.early_stopping in (
        "refit",
        "auto",
    )
    return auto_validation_fraction(estimator._task, estimator.backbone_, refit)


def _stores_validation_fraction(estimator) -> bool:
    """Whether ``config.json`` must hold ``validation_fraction_``: where the parameter is
    ``"auto"`` or the attribute differs from what the rest tells (after a refit's
    ``partial_fit``, or a ``set_params`` since the fit). An estimator unpickled from a
    release without the attribute has none to store; loading derives it."""
    if isinstance(estimator.validation_fraction, str):
        return True
    if not hasattr(estimator, "validation_fraction_"):
        return False
    return estimator.validation_fraction_ != _derived_validation_fraction(estimator)


def _stores_members(estimator) -> bool:
    """Whether ``config.json`` must hold ``n_members`` and ``n_members_``: for an ensemble,
    or a parameter other than the default."""
    return estimator.n_members != "auto" or getattr(estimator, "n_members_", 1) > 1


def _format_version(estimator, stores_fraction: bool, stores_members: bool) -> int:
    """The lowest format version that holds ``estimator``: 7 for an ensemble or an
    ``n_members`` other than ``"auto"`` (``stores_members``, from ``_stores_members``), 6
    for the parameter value ``validation_fraction="auto"`` or a stored
    ``validation_fraction_`` (``stores_fraction``, from ``_stores_validation_fraction``), 5
    for a ``selection_history_``, else 4."""
    if stores_members:
        return 7
    if stores_fraction:
        return 6
    return 5 if hasattr(estimator, "selection_history_") else 4


def load_model(path):
    """Load an estimator saved by ``save_model``, without unpickling anything.

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
        A directory written by ``save_model``.

    Returns
    -------
    estimator : ResNetClassifier or ResNetRegressor
        The fitted estimator.

    Raises
    ------
    ValueError
        If the path is not a model directory, or a file in it is missing, unreadable,
        empty, truncated, corrupted, tampered with or of another format (a pickle or
        joblib file included, which is never unpickled); if it was written by a newer
        format version; if keys are missing or unknown, values of the wrong type, out
        of range or inconsistent with each other; or if the weights do not match the
        network the config describes or the digest recorded for them. This is the
        only exception a bad file causes, and its message says what is wrong.

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
        message = f"Cannot load a model from {str(path)!r}: {exc}"
    except OSError as exc:  # permissions, I/O errors: reported like any unreadable file
        name = Path(exc.filename).name if isinstance(exc.filename, str) else "it"
        message = f"Cannot load a model from {str(path)!r}: {name} cannot be read ({exc})."
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 5] + " ..."
    raise ValueError(message)


#: Longest error message: values quoted from a tampered file are cut to keep it readable.
_MAX_MESSAGE = 2000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _load(path: Path):
    if not path.is_dir():
        raise FormatError(not_a_directory(path))
    config = _read_config(path / CONFIG_FILE)
    writer = _writer(config)
    estimator = _ESTIMATORS[config["estimator"]]()
    _set_params(estimator, config["params"], writer, config["format_version"])
    _set_fitted(estimator, config["fitted"], writer, config["format_version"])
    history = decode_history(config["history"])
    training = _read_training(config, writer)
    # The network's own architecture; the parameters, which set_params may have changed
    # since the fit, are for the next fit. Earlier formats take the parameters.
    network = {
        "depth": training.get("depth", _resolved_depth(estimator)),
        "block": training.get("block", estimator.block),
        "dropout": training.get("dropout", estimator.dropout),
    }
    tensors = _read_weights(path / WEIGHTS_FILE, config["weights_sha256"])
    with autograd_enabled():  # trainable weights, even under the caller's inference_mode
        module = _rebuild_module(estimator, tensors, network)
        _attach_net(estimator, module, history, training["batch_size"])
    return estimator


#: The ``training`` entries of each format version, with their checks.
_TRAINING_KEYS = {
    1: ("batch_size",),
    2: ("batch_size", "depth"),
    4: ("batch_size", "depth", "block", "dropout"),
}
_TRAINING_VALUES = {
    "batch_size": (lambda v: is_int(v) and v >= 1, "a positive int"),
    "depth": (lambda v: is_int(v) and v >= 1, "a positive int"),
    "block": (lambda v: v in BLOCK_TYPES, "a block type"),
    "dropout": (lambda v: is_number(v) and 0 <= v < 1, "a probability below 1"),
}


def _read_training(config: dict, writer: str | None) -> dict:
    """The checked ``training`` entry: batch size and the network's architecture."""
    training = config["training"]
    version = max(v for v in _TRAINING_KEYS if v <= config["format_version"])
    keys = _TRAINING_KEYS[version]
    check_keys(training, keys, f"{CONFIG_FILE} 'training'", writer=writer)
    for key in keys:
        valid, what = _TRAINING_VALUES[key]
        if not valid(training[key]):
            raise FormatError(f"{CONFIG_FILE}: training {key} {training[key]!r:.40} is not {what}.")
    return training


def _writer(config: dict) -> str | None:
    """Who wrote the config, when not this version: said in errors about its keys."""
    version = config["library_version"]
    if version == _library_version():
        return None
    return f"it was saved by sklearn-resnet {version:.20}, this is {_library_version()}"


def _read_config(file: Path) -> dict:
    data = read_bytes(file, _MAX_CONFIG_BYTES)
    if not data.strip():
        raise FormatError(f"{CONFIG_FILE} is empty.")
    try:
        text = data.decode("utf-8-sig")  # a byte order mark, as some editors write, is fine
        config = json.loads(
            text, parse_constant=reject_constant, parse_float=parse_float, parse_int=parse_int
        )
    except FormatError:
        raise
    except RecursionError:
        raise FormatError(f"{CONFIG_FILE} nests lists and objects too deeply.") from None
    except ValueError as exc:
        raise unparsable(CONFIG_FILE, "valid JSON", data, exc) from None
    check_nesting(config)
    if not isinstance(config, dict):
        raise FormatError(
            f"{CONFIG_FILE} is not an sklearn-resnet model config: it holds a JSON "
            f"{_JSON_TYPES.get(type(config), 'value')}, not an object."
        )
    if config.get("format") != FORMAT_NAME:
        raise FormatError(
            f"{CONFIG_FILE} is not an sklearn-resnet model config: its 'format' is "
            f"{config.get('format')!r:.40}, expected {FORMAT_NAME!r}."
        )
    version = config.get("format_version")
    if not is_int(version) or version < 1:
        raise FormatError(f"{CONFIG_FILE} has an invalid format_version {version!r:.40}.")
    if version > FORMAT_VERSION:
        writer = config.get("library_version")
        writer = f" {writer:.20}" if isinstance(writer, str) else ""
        raise FormatError(
            f"it was saved in format_version {version} by a newer sklearn-resnet{writer}; "
            f"this version ({_library_version()}) reads format_version {FORMAT_VERSION} and "
            "older. Upgrade sklearn-resnet to load it."
        )
    check_keys(config, _CONFIG_KEYS, CONFIG_FILE)
    if not isinstance(config["estimator"], str) or config["estimator"] not in _ESTIMATORS:
        raise FormatError(
            f"{CONFIG_FILE} names the estimator {config['estimator']!r:.40}; expected one "
            f"of {sorted(_ESTIMATORS)}."
        )
    for key, valid, what in (
        ("library_version", lambda v: isinstance(v, str), "a string"),
        ("weights_sha256", lambda v: isinstance(v, str) and _SHA256.match(v), "a SHA-256 digest"),
    ):
        if not valid(config[key]):
            raise FormatError(
                f"{CONFIG_FILE}: {key!r} is {config[key]!r:.80}, which is not {what}."
            )
    return config


def _set_params(estimator, params, writer, version: int) -> None:
    later = [name for name, added in _LATER_PARAMETERS.items() if added > version]
    names = tuple(name for name in estimator.get_params(deep=False) if name not in later)
    check_keys(params, names, f"{CONFIG_FILE} 'params'", writer=writer)
    estimator.set_params(**{k: decode(v, f"parameter {k!r}") for k, v in params.items()})
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{CONFIG_FILE}: invalid parameters: {exc}") from None
    if estimator.callbacks:  # save_model stores only None or an empty list
        raise FormatError(f"{CONFIG_FILE}: the 'callbacks' parameter must be null or empty.")


def _set_fitted(estimator, fitted, writer, version: int) -> None:
    task = estimator._task
    entries = [
        (n, kind, tasks)
        for n, kind, tasks in FITTED_ATTRIBUTES
        if (not tasks or task in tasks) and _LATER_FITTED.get(n, 0) <= version
    ]
    required = [name for name, _, tasks in entries if tasks]
    optional = [name for name, _, tasks in entries if not tasks]
    check_keys(fitted, required, f"{CONFIG_FILE} 'fitted'", optional, writer)
    for name, kind, _ in entries:
        if name in fitted:
            setattr(estimator, name, decode_fitted(kind, fitted[name], name))
    if "validation_fraction_" not in fitted:
        estimator.validation_fraction_ = _derived_validation_fraction(estimator)
    if "n_members_" not in fitted:
        estimator.n_members_ = 1
    check_fitted(estimator)


def _read_weights(file: Path, digest: str) -> dict[str, torch.Tensor]:
    data = read_bytes(file)
    try:
        tensors = load_tensors(data)
    except Exception as exc:  # any failure of the parser on untrusted bytes
        raise unparsable(WEIGHTS_FILE, "a valid safetensors file", data, exc) from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise FormatError(
            f"{WEIGHTS_FILE} does not match the SHA-256 digest recorded in {CONFIG_FILE}: "
            "the file is corrupted or was replaced."
        )
    return tensors


def _rebuild_module(estimator, tensors: dict[str, torch.Tensor], network: dict) -> torch.nn.Module:
    """The network described by the config (``network``: its depth, block and dropout),
    holding the saved weights."""
    _check_block_count(estimator, tensors, network["depth"], network["block"])
    try:
        # On the meta device first: shapes are compared without allocating memory,
        # however large a tampered config says the network is.
        with torch.device("meta"):
            expected = estimator._build_module(**network).state_dict()
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        raise FormatError(
            f"{CONFIG_FILE} describes a network that cannot be built: {exc}"
        ) from None
    check_weights(expected, tensors)
    with seeded(0, "cpu"):  # construction draws from torch's RNG; leave it as found
        module = estimator._build_module(**network)
    module.load_state_dict(tensors, strict=True)
    return module


def _check_block_count(estimator, tensors: dict, depth: int, block: str) -> None:
    """The weights must hold ``n_members_`` networks and the blocks that ``depth`` gives
    (in the last of them), checked from their names before anything is built: building a
    tampered, huge depth or ensemble would take minutes even on the meta device."""
    kind = estimator.backbone_
    try:
        n_blocks = blocks_for_depth(kind, depth, block)
    except ValueError as exc:
        raise FormatError(
            f"{CONFIG_FILE} describes a network that cannot be built: {exc}"
        ) from None
    members = estimator.n_members_
    held = {int(match.group(1)) for name in tensors if (match := _MEMBER.match(name))}
    if held != (set(range(members)) if members > 1 else set()):
        holds = f"{len(held)} ensemble members" if held else "one network"
        raise FormatError(
            f"the weights in {WEIGHTS_FILE} do not fit the network described by "
            f"{CONFIG_FILE}: n_members_={members}, but the file holds {holds}."
        )
    last = last_block_prefix(kind, n_blocks, members)
    extra = last_block_prefix(kind, n_blocks + 1, members)
    held = any(name.startswith(last) for name in tensors)
    if not held or any(name.startswith(extra) for name in tensors):
        blocks = f"{n_blocks} residual block{'s' * (n_blocks > 1)}"
        each = f" in each of its {members} networks" if members > 1 else ""
        raise FormatError(
            f"the weights in {WEIGHTS_FILE} do not fit the network described by "
            f"{CONFIG_FILE}: depth={depth} has {blocks}{' per stage' * (kind == 'cnn')}{each}, "
            f"but the file holds {'fewer' if not held else 'more'} (tensors under "
            f"{(last if not held else extra)!r} are {'missing' if not held else 'unexpected'})."
        )


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
