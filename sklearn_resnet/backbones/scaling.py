"""Input scaling that lives inside the network, as fitted buffers.

A :class:`InputScaler` is the first step of every backbone's forward pass, so the
trained module maps raw inputs to outputs on its own: the scaling travels with the
weights (``state_dict``, safe export, ONNX) and is never fitted on prediction data.

Methods
-------
``"standard"``
    ``(x - mean) / std``, clamped to ±10,000 so far outliers cannot overflow.
``"robust"``
    Centre on the median, divide by the interquartile range (half the range, then the
    median's size but at least 1, when that is zero), then clip smoothly:
    ``x / sqrt(1 + (x / 3)^2)``. This is RealMLP's robust scaling with smooth clipping
    (Holzmüller et al., 2024): outliers land near ±3 instead of far out, while the bulk
    of the data stays linear.
``"quantile"``
    Map each value through the empirical distribution of its feature onto a standard
    normal, as scikit-learn's ``QuantileTransformer(output_distribution="normal")``
    does; the quantile transform Gorishniy et al. (2021) use for their tabular ResNet.
``None``
    Identity.

Statistics are per feature for flat rows and per channel for signals and images
(reducing over the positions), so a convolution sees the same scaling everywhere.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch import nn

from .layers import FLOAT32

__all__ = ["SCALING_METHODS", "InputScaler"]

SCALING_METHODS = ("standard", "robust", "quantile")
#: Smooth clipping bound of the robust method.
_CLIP = 3.0
#: Standardised values are clamped to this many (robust) standard deviations.
_BOUND = 1e4
#: Quantiles kept per feature by the quantile method (QuantileTransformer's default).
_N_QUANTILES = 1000
#: Most values per feature (rows times positions) used for medians and quantiles.
_SUBSAMPLE = 1_000_000
#: Most rows per chunk when accumulating means and variances.
_CHUNK_ROWS = 65_536
#: Most values densified at a time: a chunk of means and variances, or a block of
#: columns for medians and quantiles of flat rows.
_BLOCK_VALUES = 1 << 24
#: Probabilities are kept this far from 0 and 1 before the normal quantile function.
_EPS = 1e-7
_FLOAT32 = np.finfo(np.float32)


class InputScaler(nn.Module):
    """Fitted per-feature (or per-channel) scaling applied before the backbone.

    Parameters
    ----------
    in_shape : tuple of int
        Shape of one sample: ``(n_features,)`` for rows, ``(C, L)`` or ``(C, H, W)``
        for signals and images (scaled per channel).
    method : {"standard", "robust", "quantile"} or None
        Scaling method; ``None`` makes the module an identity.

    Examples
    --------
    >>> import numpy as np, torch
    >>> scaler = InputScaler((2,), "standard").fit(np.array([[0.0, 1.0], [2.0, 3.0]]))
    >>> scaler(torch.tensor([[1.0, 2.0]]))
    tensor([[0., 0.]])
    """

    def __init__(self, in_shape: tuple[int, ...], method: str | None):
        super().__init__()
        if method is not None and method not in SCALING_METHODS:
            raise ValueError(
                f"Unknown scaling {method!r}; expected one of {list(SCALING_METHODS)} or None."
            )
        self.method = method
        self.in_shape = tuple(int(s) for s in in_shape)
        n_stats = self.in_shape[0]
        # Statistics broadcast over positions: (n_features,) or (C, 1[, 1]).
        self._stat_shape = (n_stats,) + (1,) * (len(self.in_shape) - 1)
        if method in ("standard", "robust"):
            self.register_buffer("shift", torch.zeros(self._stat_shape, **FLOAT32))
            self.register_buffer("scale", torch.ones(self._stat_shape, **FLOAT32))
        elif method == "quantile":
            references = torch.linspace(0.0, 1.0, _N_QUANTILES, dtype=torch.float64)
            self.register_buffer("quantiles", torch.zeros(n_stats, _N_QUANTILES, **FLOAT32))
            self.register_buffer("references", references.float())

    def extra_repr(self) -> str:
        return f"method={self.method!r}"

    def _values_per_stat(self, X: np.ndarray) -> np.ndarray:
        """``X`` as a 2-D array with one column per feature or channel."""
        X = _dense(X).reshape(X.shape[0], *self.in_shape)
        if len(self.in_shape) == 1:
            return X
        return np.moveaxis(X, 1, -1).reshape(-1, self.in_shape[0])

    def fit(self, X: np.ndarray, rows: np.ndarray | None = None, *, seed: int = 0) -> InputScaler:
        """Estimate the statistics from training inputs ``X[rows]`` (all rows by default).

        Means and standard deviations use every value, accumulated in chunks; medians
        and quantiles use at most about a million values (whole samples drawn with
        ``seed``), so memory stays bounded for large data. ``X`` may be a scipy.sparse
        matrix of flat rows; it is densified a block of columns at a time.

        Returns
        -------
        self : InputScaler
        """
        if self.method is None:
            return self
        rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows)
        if self.method == "standard":
            mean, std = self._moments(X, rows)
            self._set("shift", mean)
            self._set("scale", np.where(std > 0, std, _own_unit(mean)))
            return self
        positions = int(np.prod(self.in_shape[1:], dtype=np.int64))
        cap = max(1, _SUBSAMPLE // positions)
        if len(rows) > cap:
            rows = np.sort(np.random.default_rng(seed).choice(rows, cap, replace=False))
        if self.method == "robust":
            stats = self._per_column(X[rows], _robust_statistics)
            self._set("shift", stats[0])
            self._set("scale", stats[1])
            return self
        # A fixed number of quantiles (interpolated between samples when there are
        # fewer), so the buffers' shapes depend on the architecture only.
        references = np.linspace(0.0, 1.0, _N_QUANTILES)
        quantiles = self._per_column(
            X[rows], lambda v: _in_range(partial(np.quantile, q=references, axis=0), v)
        ).T
        self.quantiles.copy_(torch.as_tensor(np.ascontiguousarray(quantiles)))
        return self

    def _per_column(self, X, statistic) -> np.ndarray:
        """``statistic`` of every feature or channel, over blocks of flat-row columns."""
        if len(self.in_shape) > 1:
            return statistic(self._values_per_stat(X))
        step = max(1, _BLOCK_VALUES // max(X.shape[0], 1))
        blocks = [
            statistic(_dense(X[:, start : start + step])) for start in range(0, X.shape[1], step)
        ]
        return np.concatenate(blocks, axis=-1)

    def _moments(self, X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation per feature/channel, two passes over chunks.

        A chunk holds at most ``_BLOCK_VALUES`` values, so wide (or sparse) rows are
        densified a few at a time.
        """
        per_sample = int(np.prod(self.in_shape, dtype=np.int64))
        size = max(1, min(_CHUNK_ROWS, _BLOCK_VALUES // max(per_sample, 1)))
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        count = 0
        total = np.zeros(self.in_shape[0])
        for chunk in chunks:
            values = self._values_per_stat(X[chunk])
            count += len(values)
            total += values.sum(axis=0, dtype=np.float64)
        mean = total / max(count, 1)
        squares = np.zeros_like(mean)
        for chunk in chunks:
            values = self._values_per_stat(X[chunk])
            squares += ((values - mean) ** 2).sum(axis=0)
        return mean, np.sqrt(squares / max(count, 1))

    def _set(self, name: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if name == "scale":
            # A spread beyond float32's range (a column at ±3e38) or below its smallest
            # normal number (a denormal column) would divide to infinity or NaN.
            values = np.clip(values, _FLOAT32.tiny, _FLOAT32.max)
        tensor = torch.as_tensor(values.astype(np.float32).reshape(self._stat_shape))
        getattr(self, name).copy_(tensor)

    def forward(self, x: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """Scaled ``x``; ``clip=False`` leaves out the robust method's smooth clipping.

        Without the clipping the map is affine in ``x`` (apart from the ±10,000 bound),
        which is what a linear model on the scaled inputs needs.
        """
        if self.method is None:
            return x
        if self.method == "quantile":
            return self._quantile(x)
        # Bounded, so inputs far outside the training range (1e30, say) cannot
        # overflow the float32 layers that follow.
        z = ((x - self.shift) / self.scale).clamp(-_BOUND, _BOUND)
        if self.method == "robust" and clip:
            z = z * torch.rsqrt(1 + (z / _CLIP) ** 2)
        return z

    def _quantile(self, x: torch.Tensor) -> torch.Tensor:
        # One row of ``values`` per feature or channel, for a batched searchsorted.
        # (No unpacking of the shape, so that torch.fx can trace it.)
        moved = x.movedim(1, -1)
        values = moved.reshape(-1, moved.shape[-1]).T.contiguous().float()
        quantiles, refs = self.quantiles, self.references
        # Average of the left- and right-sided interpolations, so tied quantiles
        # (repeated values) map to the middle of their probability range.
        prob = 0.5 * (
            _interpolate(values, quantiles, refs, right=False)
            + _interpolate(values, quantiles, refs, right=True)
        )
        z = torch.special.ndtri(prob.clamp(_EPS, 1 - _EPS)).to(x.dtype)
        return z.T.reshape(moved.shape).movedim(-1, 1)


def _dense(X) -> np.ndarray:
    """A float32 ndarray of ``X``, densifying a scipy.sparse matrix."""
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.asarray(X, dtype=np.float32)


def _own_unit(centre: np.ndarray) -> np.ndarray:
    """The spread of a column without any: its centre's size, at least 1.

    A constant column (or the single row of a first ``partial_fit`` call) has no
    spread to divide by; dividing by 1 would leave later values in raw units, so a
    column near 1e5 would be scaled to ±1e4 and clamped. Its own size keeps later
    values of the same order near ±1.
    """
    return np.maximum(np.abs(centre), 1.0)


def _robust_statistics(values: np.ndarray) -> np.ndarray:
    """Median and spread per column: the interquartile range, else half the range, else
    the median's size (at least 1)."""
    return _in_range(_median_and_spread, values)


def _median_and_spread(values: np.ndarray) -> np.ndarray:
    low, median, high = np.quantile(values, [0.25, 0.5, 0.75], axis=0)
    spread = high - low
    half_range = (values.max(axis=0) - values.min(axis=0)) / 2
    spread = np.where(spread > 0, spread, np.where(half_range > 0, half_range, _own_unit(median)))
    return np.stack([median, spread])


def _in_range(statistic, values: np.ndarray) -> np.ndarray:
    """``statistic(values)`` in the values' float32, or in float64 where that overflows.

    Quantiles and spreads of float32 values spread over more than float32's range (a
    column at ±3e38) overflow to infinity; ordinary data keeps its float32 result.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        result = statistic(values)
    if np.isfinite(result).all():
        return result
    return statistic(np.asarray(values, dtype=np.float64))


def _interpolate(
    values: torch.Tensor, quantiles: torch.Tensor, refs: torch.Tensor, *, right: bool
) -> torch.Tensor:
    """Piecewise-linear map of ``values`` (one row per feature) through ``quantiles``."""
    n = quantiles.shape[1]
    upper = torch.searchsorted(quantiles, values, right=right).clamp(1, n - 1)
    lower = upper - 1
    q_low, q_high = quantiles.gather(1, lower), quantiles.gather(1, upper)
    r_low, r_high = refs[lower], refs[upper]
    # Halved (exactly, in binary floating point) so that quantiles spread over more
    # than float32's range cannot overflow to inf / inf.
    width = q_high * 0.5 - q_low * 0.5
    offset = values * 0.5 - q_low * 0.5
    t = torch.where(width > 0, offset / torch.where(width > 0, width, 1), 0.5)
    return (r_low + t.clamp(0, 1) * (r_high - r_low)).clamp(0, 1)
