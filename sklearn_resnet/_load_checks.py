"""Checks on the untrusted files of a saved model, before and after decoding.

:func:`read_bytes` reads one file of a model directory, refusing what is not a
non-empty regular file; :func:`unparsable` names a file its parser refused,
recognising pickles (which are never unpickled);
:func:`check_fitted` checks that the decoded fitted attributes agree with each other,
as a real fit leaves them, and :func:`check_weights` that
the tensors read are those of the network the config describes. Problems raise
:class:`~sklearn_resnet._json_codec.FormatError`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._json_codec import FormatError, is_int
from .backbones.scaling import SCALING_METHODS
from .data import AUGMENTATIONS

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "check_fitted",
    "check_weights",
    "looks_like_pickle",
    "not_a_directory",
    "read_bytes",
    "unparsable",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


# ---- reading the files --------------------------------------------------------------------
def not_a_directory(path: Path) -> str:
    """Why ``path`` is not a model directory, with a hint at what it may be instead."""
    expected = (
        f"load_model reads the directory that save_model wrote ({CONFIG_FILE} + {WEIGHTS_FILE})"
    )
    if not path.exists():
        return f"the path is missing (nothing exists there); {expected}."
    if not path.is_file():  # a pipe or a device: never opened, which could block
        return f"the path is neither a directory nor a regular file; {expected}."
    if path.name in (CONFIG_FILE, WEIGHTS_FILE):
        return f"the path is a file; {expected}: pass the directory that holds it."
    with path.open("rb") as file:
        head = file.read(2)
    if looks_like_pickle(head):
        return (
            "the path is a file that looks like a pickle or joblib file, which load_model "
            "never opens: unpickling runs code from the file, so open it with joblib.load "
            f"only if you trust its source; {expected}."
        )
    return f"the path is a file; {expected}."


def looks_like_pickle(data: bytes) -> bool:
    """Whether ``data`` starts as a pickle does (joblib files included)."""
    # Pickle protocols 2 to 5 start with the PROTO opcode; joblib writes the same.
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def read_bytes(file: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file of the model directory, or a FormatError.

    A symbolic link is followed (model caches and data-versioning tools lay files out so)
    and its target must be a regular file too. ``max_bytes`` bounds the size of a file
    read whole.
    """
    if not file.exists():
        raise FormatError(f"{file.name} is missing.")
    if not file.is_file():  # a directory, a pipe or a device: never read
        raise FormatError(f"{file.name} is not a regular file.")
    size = file.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise FormatError(
            f"{file.name} holds {size / 2**20:.0f} MiB, more than a saved model's "
            f"{max_bytes // 2**20} MiB at most."
        )
    data = file.read_bytes()  # an OSError becomes a ValueError in load_model
    if not data:
        raise FormatError(f"{file.name} is empty.")
    return data


def unparsable(name: str, kind: str, data: bytes, exc: BaseException) -> FormatError:
    """The error for a file its parser refused; a pickle is named as one."""
    if looks_like_pickle(data):
        return FormatError(
            f"{name} is not {kind} but looks like a pickle; load_model never unpickles."
        )
    return FormatError(f"{name} is not {kind} ({exc!s:.200}); the file is truncated or corrupted.")


# ---- consistency of the decoded estimator -------------------------------------------------
def check_fitted(est) -> None:
    """Check that the decoded fitted attributes agree with each other.

    The parameters are not compared with what they resolved to (``scaling_``,
    ``width_``, ...): ``set_params`` after a fit changes them for the next fit, and such
    a model saves and loads as it is.
    """
    problems = _architecture_problems(est)
    if est.precision_ not in ("32", "bf16", "16"):
        problems.append(f"precision_ is {est.precision_!r:.40}, expected '32', 'bf16' or '16'")
    names = getattr(est, "feature_names_in_", None)
    if names is not None and len(names) != est.n_features_in_:
        problems.append("feature_names_in_ does not have n_features_in_ names")
    if hasattr(est, "classes_"):
        problems += _class_problems(est)
    if hasattr(est, "_y_mean"):
        n_outputs = est.n_outputs_
        if est._y_mean.shape != (n_outputs,) or est._y_scale.shape != (n_outputs,):
            problems.append("_y_mean and _y_scale must hold one value per output")
        elif not (est._y_scale > 0).all():
            problems.append("_y_scale must be positive")
        if est._y_ndim not in (1, 2) or (est._y_ndim == 1 and n_outputs != 1):
            problems.append(f"_y_ndim is {est._y_ndim}, which does not fit n_outputs_")
    if problems:
        raise FormatError(
            f"{CONFIG_FILE}: inconsistent fitted attributes: " + "; ".join(problems) + "."
        )


def _architecture_problems(est) -> list[str]:
    """The fitted architecture's attributes must agree with each other. The parameters
    are not compared with them: ``set_params`` after a fit changes the next fit."""
    backbone, shape = est.backbone_, est.input_shape_
    if backbone not in ("mlp", "cnn"):
        return [f"backbone_ is {backbone!r:.40}, expected 'mlp' or 'cnn'"]
    problems = []
    if backbone == "mlp" and shape != (est.n_features_in_,):
        problems.append(f"input_shape_ {shape} does not match n_features_in_ for the MLP")
    elif backbone == "cnn" and (len(shape) not in (2, 3) or math.prod(shape) != est.n_features_in_):
        problems.append(
            f"input_shape_ {shape} is not a (C, L) or (C, H, W) shape of n_features_in_ values"
        )
    sample_shape = getattr(est, "_sample_shape", None)
    if sample_shape is not None:
        if backbone != "mlp" or math.prod(sample_shape) != est.n_features_in_:
            problems.append(
                f"_sample_shape {sample_shape} is not an MLP's shape of n_features_in_ values"
            )
    elif backbone == "mlp" and est.input_shape is not None:
        # An MLP of an earlier format takes samples of its 'input_shape' parameter.
        given = tuple(est.input_shape)
        if not given or not all(is_int(s) and s > 0 for s in given):
            problems.append(f"the 'input_shape' parameter {given!r:.80} is not positive ints")
        elif math.prod(given) != est.n_features_in_:
            problems.append(
                f"the 'input_shape' parameter {given} does not hold n_features_in_ values"
            )
    if est.scaling_ not in (None, *SCALING_METHODS):
        problems.append(f"scaling_ is {est.scaling_!r:.40}, expected one of {SCALING_METHODS}")
    augments = (None,) if backbone == "mlp" else (None, *AUGMENTATIONS)
    if est.augment_ not in augments:
        problems.append(
            f"augment_ is {est.augment_!r:.40}, expected one of {augments} for backbone_ "
            f"{backbone!r}"
        )
    return problems


def _class_problems(est) -> list[str]:
    classes = est.classes_
    if classes.ndim != 1 or len(classes) != est.n_outputs_ or len(classes) < 2:
        return ["classes_ must hold n_outputs_ >= 2 labels"]
    if not np.array_equal(np.unique(classes), classes):
        return ["classes_ must be sorted and unique"]
    return []


# ---- the weights ----------------------------------------------------------------------------
def check_weights(expected: dict, tensors: dict) -> None:
    """The ``tensors`` read must have the names, shapes and dtypes of ``expected``."""
    problems = [f"missing {key!r}" for key in expected if key not in tensors]
    problems += [f"unexpected {key!r:.80}" for key in tensors if key not in expected]
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
