"""Export of fitted estimators to ONNX, for inference without Python's ML stack.

The exported graph takes what the estimator's ``predict`` takes, flat rows of
``n_features_in_`` float32 values, and returns what a user wants from it:

* classifiers: ``probabilities`` of shape ``(batch, n_classes)``, the softmax of the
  network's logits, equal to ``predict_proba``; the predicted class is the column of
  the largest probability, labelled by ``classes_`` (stored in the model's metadata);
* regressors: ``predictions`` in the units of ``y``, equal to ``predict``: float64
  (the network's float32 output is de-standardised in float64, as ``predict`` does),
  shape ``(batch,)`` for a one-dimensional target, ``(batch, n_outputs)`` otherwise.

The batch dimension is dynamic. The input scaling, the reshaping into signals or
images (``input_shape_``) and the target de-standardisation are part of the graph.
"""

from __future__ import annotations

import copy
import json
from numbers import Integral
from pathlib import Path

import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .concurrency import estimator_lock
from .estimators import ResNetClassifier, ResNetRegressor
from .paths import unwritable_file
from .user_warnings import ignoring

__all__ = ["to_onnx"]

INPUT_NAME = "input"
#: Input scaling methods whose operations ONNX cannot express.
UNSUPPORTED_SCALING = ("quantile",)
_EXTRA_HINT = "install sklearn-resnet[onnx] (pip install 'sklearn-resnet[onnx]')"

#: Why the lowest opset the exporter reaches per backbone is what it is.
_LOWEST_OPSET = {
    "mlp": "layer normalisation, in every MLP, needs opset 17 or later",
    "cnn": "a CNN needs opset 18 or later: the converter cannot move its global average "
    "pooling, a ReduceMean, below 18",
}


class _InferenceGraph(nn.Module):
    """The estimator's prediction as one torch module: reshape, network, output map."""

    def __init__(self, estimator):
        super().__init__()
        self.network = copy.deepcopy(estimator.module_).to("cpu").float().eval()
        self.input_shape = tuple(estimator.input_shape_)
        self.classify = isinstance(estimator, ResNetClassifier)
        self.flatten = not self.classify and estimator._y_ndim == 1
        if not self.classify:
            self.register_buffer("y_mean", torch.as_tensor(estimator._y_mean, dtype=torch.float64))
            self.register_buffer(
                "y_scale", torch.as_tensor(estimator._y_scale, dtype=torch.float64)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x.reshape(x.shape[0], *self.input_shape))
        if self.classify:
            return torch.softmax(out.float(), dim=1)
        # De-standardised in float64, as predict does: float32 would round large targets.
        out = out.double() * self.y_scale + self.y_mean
        return out[:, 0] if self.flatten else out


def _check_exporter() -> None:
    """Raise ImportError naming what to install when ONNX export cannot run here."""
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"to_onnx needs the packages {missing}; {_EXTRA_HINT}.") from None


def _checked_opset(opset_version) -> int | None:
    """``opset_version`` as an int within the opsets the installed onnx knows, or None."""
    if opset_version is None:
        return None
    if not isinstance(opset_version, Integral) or isinstance(opset_version, bool):
        raise ValueError(
            f"to_onnx: opset_version must be an int or None; got {opset_version!r:.40} "
            f"({type(opset_version).__name__})."
        )
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not 1 <= opset_version <= newest:
        raise ValueError(
            f"to_onnx: opset_version={opset_version} is not an ONNX opset: the installed "
            f"onnx {onnx.__version__} knows opsets 1 to {newest}."
        )
    return int(opset_version)


def _quiet_exporter():
    """Keep the exporter's own log lines and deprecation notices out of user output.

    A failed conversion to another opset is logged (with a traceback) by the converter
    and is reported by :func:`to_onnx` as an error of its own instead.
    """
    return ignoring(
        {"category": DeprecationWarning}, {"category": FutureWarning}, loggers=_EXPORTER_LOGGERS
    )


#: Loggers of the ONNX exporter and the converters it calls.
_EXPORTER_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


def _classes_json(estimator) -> str | None:
    """A classifier's ``classes_`` as the JSON list stored in the metadata, checked."""
    if not isinstance(estimator, ResNetClassifier):
        return None
    try:
        return json.dumps(estimator.classes_.tolist(), allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError(
            "to_onnx stores classes_ in the model's metadata as a JSON list, and labels of "
            f"dtype {estimator.classes_.dtype} cannot be written as JSON; refit with string "
            "or numeric labels (e.g. y.astype(str)). Nothing was written."
        ) from None


def _export(estimator, opset_version):
    """The exported program and the name of its output."""
    graph = _InferenceGraph(estimator).eval()
    output = "probabilities" if graph.classify else "predictions"
    example = torch.zeros(2, estimator.n_features_in_, dtype=torch.float32)
    with _quiet_exporter():
        program = torch.onnx.export(
            graph,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[output],
            opset_version=opset_version,
            dynamo=True,
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            verbose=False,
        )
    return program, output


def to_onnx(estimator, path, *, opset_version: int | None = None) -> Path:
    """Export a fitted MLP or CNN estimator to an ONNX file.

    The graph's input ``"input"`` holds float32 rows of shape ``(batch, n_features_in_)``
    (flatten signals and images with ``X.reshape(len(X), -1)``); the batch size is
    dynamic. The graph computes in float32: a classifier's output ``"probabilities"``
    (float32) equals ``predict_proba`` and a regressor's output ``"predictions"``
    (float64) equals ``predict`` for a model that predicts in float32
    (``precision_ == "32"``, as on the CPU by default), and differ by the rounding of
    bf16 or float16 otherwise (``precision="auto"`` on a recent GPU is bf16). The
    model's metadata (``metadata_props``) records the estimator, the output kind,
    ``n_features_in_``, ``input_shape_`` and, for classifiers, ``classes_`` as a JSON
    list.

    Parameters
    ----------
    estimator : ResNetClassifier or ResNetRegressor
        A fitted estimator (either backbone, on any device; the export runs on a CPU
        copy in float32).
    path : str or path-like
        The ``.onnx`` file to write; its folder must exist and be writable (checked
        before the export).
    opset_version : int, optional
        ONNX opset, from 1 to the newest the installed onnx knows; ``None`` uses the
        exporter's default. Another value, or a version the network cannot be converted
        to, raises a ``ValueError`` and writes nothing.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ImportError
        If onnx or onnxscript is missing (install ``sklearn-resnet[onnx]``).
    TypeError
        If ``estimator`` is not a ResNetClassifier or ResNetRegressor.
    ValueError
        If it is not fitted, or was fitted with ``scaling="quantile"``, which ONNX
        cannot express, or with class labels that JSON cannot hold (dates, durations),
        or if ``path`` is a folder or its folder is missing or not writable, or if the
        ``opset_version`` is not an opset of the installed onnx, or the network cannot
        be converted to it.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np, onnxruntime
    >>> from sklearn.datasets import make_classification
    >>> from sklearn_resnet import ResNetClassifier, to_onnx
    >>> X, y = make_classification(100, 5, random_state=0)
    >>> clf = ResNetClassifier(depth=4, width=16, max_epochs=2, precision="32", random_state=0)
    >>> clf = clf.fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     session = onnxruntime.InferenceSession(to_onnx(clf, f"{tmp}/clf.onnx"))
    >>> proba = session.run(None, {"input": X.astype(np.float32)})[0]
    >>> bool(np.allclose(proba, clf.predict_proba(X), atol=1e-4))
    True
    """
    if type(estimator) not in (ResNetClassifier, ResNetRegressor):
        raise TypeError(
            "to_onnx takes a fitted ResNetClassifier or ResNetRegressor; got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    if getattr(estimator, "scaling_", None) in UNSUPPORTED_SCALING:
        raise ValueError(
            f"to_onnx cannot export scaling={estimator.scaling_!r}: ONNX has no operator "
            "for its sorted search and inverse normal CDF. Refit with scaling='robust' or "
            "'standard', or put a QuantileTransformer before the estimator in a Pipeline."
        )
    classes = _classes_json(estimator)
    path = Path(path)
    problem = unwritable_file(path)  # checked now: the export takes seconds
    if problem is not None:
        raise ValueError(f"to_onnx cannot write {str(path)!r}: {problem}.")
    _check_exporter()
    opset_version = _checked_opset(opset_version)
    # Never while this estimator trains in another thread. (The exporter changes PyTorch's
    # process-wide state while it runs: see the docs on threads.)
    with estimator_lock(estimator):
        program, output = _export(estimator, opset_version)
    written = program.model.opset_imports.get("")
    if opset_version is not None and written != opset_version:
        reason = f" ({_LOWEST_OPSET[estimator.backbone_]})" if opset_version < written else ""
        raise ValueError(
            f"to_onnx cannot write opset_version={opset_version}: the exporter could not "
            f"convert the network to it and would have written opset {written} instead"
            f"{reason}. Nothing was written; use opset_version=None or a version the "
            "exporter supports."
        )
    from . import __version__  # imported here: the package imports this module

    metadata = {
        "producer": f"sklearn-resnet {__version__}",
        "estimator": type(estimator).__name__,
        "output": output,
        "n_features_in": str(estimator.n_features_in_),
        "input_shape": json.dumps(list(estimator.input_shape_)),
    }
    if classes is not None:
        metadata["classes"] = classes
    program.model.metadata_props.update(metadata)
    program.save(str(path))
    return path
