"""In-memory batches by tensor slicing.

X, y and sample weights become tensors once per fit, on the training device when they
fit there; every epoch draws one shuffled index from a seeded generator and yields
batches as slices of it. There is no per-sample ``Dataset.__getitem__`` and no collate
step, which is where stock data loaders spend their time on tabular data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import nullcontext

import numpy as np
import torch

from .device import is_out_of_memory, release_memory
from .sparse_rows import SparseRows, is_sparse

logger = logging.getLogger("sklearn_resnet")

#: Values of the estimators' ``augment`` parameter.
AUGMENTATIONS = ("shift", "flip", "shift+flip")

__all__ = [
    "AUGMENTATIONS",
    "SliceBatches",
    "TensorData",
    "as_tensor",
    "augment_batch",
    "batched_inference",
    "device_fits",
]

# Keep at most this share of free accelerator memory for one fit's data.
_DEVICE_MEMORY_SHARE = 0.5
# Inference batches are padded to a multiple of this many samples, so that a
# sample's prediction does not depend on how many were predicted with it. CPU
# matrix and convolution kernels choose their code path by the batch's size and
# round differently on each: on an AVX-512 CPU with MKL, batches of up to 8 rows
# differ from larger ones by ~1e-8; trained bottleneck blocks (1x1 convolutions)
# differed between batches of 8 and larger ones on other CPUs too. From 16 on, every
# size we tried agrees. Known exception: very narrow layers (4 or 8 units on 6
# inputs) got, on one CPU, a kernel whose rounding depends on a row's position in
# the batch (~1e-7), which no padding removes.
_PAD_MULTIPLE = 16


def _pad_rows(x: torch.Tensor) -> torch.Tensor:
    rows = len(x)
    target = -(-rows // _PAD_MULTIPLE) * _PAD_MULTIPLE
    if target == rows:
        return x
    return torch.cat([x, x.new_zeros(target - rows, *x.shape[1:])])


def as_tensor(array: np.ndarray, dtype: torch.dtype, device: str = "cpu") -> torch.Tensor:
    """Convert a numpy array to a tensor without warnings for read-only memory."""
    array = np.asarray(array)
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array).copy()
    return torch.from_numpy(array).to(device=device, dtype=dtype)


def device_fits(n_bytes: int, device: str) -> bool:
    """Whether ``n_bytes`` of training data can live on ``device`` for a whole fit."""
    if not device.startswith("cuda"):
        return True
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return n_bytes <= _DEVICE_MEMORY_SHARE * free


class TensorData:
    """Training data held as tensors: inputs, targets and optional sample weights.

    Parameters
    ----------
    X : torch.Tensor or SparseRows
        Inputs, first dimension is the sample; sparse rows stay in host memory.
    y : torch.Tensor
        Targets (class indices or standardised values).
    weight : torch.Tensor or None
        Per-sample loss weights with mean one, or ``None`` for equal weights.
    """

    def __init__(
        self, X: torch.Tensor | SparseRows, y: torch.Tensor, weight: torch.Tensor | None = None
    ):
        self.X, self.y, self.weight = X, y, weight

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, index: torch.Tensor) -> TensorData:
        weight = None if self.weight is None else self.weight[index]
        return TensorData(self.X[index], self.y[index], weight)

    def sample_rows(self, count: int, seed: int) -> tuple:
        """``(X, y, weight)`` of ``count`` rows drawn without replacement (all rows when
        there are no more), with X as a dense tensor."""
        if count >= len(self):
            index = torch.arange(len(self))
        else:
            generator = torch.Generator().manual_seed(seed)
            index = torch.randperm(len(self), generator=generator)[:count].sort().values
        index = index.to(self.y.device)
        weight = None if self.weight is None else self.weight[index]
        return self.X.index_select(0, index.to(self.X.device)), self.y[index], weight

    def to(self, device: str) -> TensorData:
        weight = None if self.weight is None else self.weight.to(device)
        return TensorData(self.X.to(device), self.y.to(device), weight)

    @property
    def n_bytes(self) -> int:
        tensors = [self.y] + ([] if self.weight is None else [self.weight])
        if isinstance(self.X, SparseRows):
            x_bytes = self.X.n_bytes
        else:
            x_bytes = self.X.element_size() * self.X.nelement()
        return x_bytes + sum(t.element_size() * t.nelement() for t in tensors)


def tensor_data(
    X: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray | None,
    *,
    classification: bool,
    device: str,
) -> TensorData:
    """Training data as tensors: float32 inputs, int64 classes or float32 targets.

    The tensors move to ``device`` once, when they take at most half of its free
    memory; otherwise they stay in host memory and :class:`SliceBatches` gathers each
    batch there, pins it and copies it to the GPU without blocking. A scipy.sparse X
    stays sparse in host memory and is densified batch by batch.
    """
    data = TensorData(
        SparseRows(X) if is_sparse(X) else as_tensor(X, torch.float32),
        as_tensor(y, torch.int64 if classification else torch.float32),
        None if weight is None else as_tensor(weight, torch.float32),
    )
    return data.to(device) if device_fits(data.n_bytes, device) else data


class SliceBatches:
    """Iterate over ``(X, (y, weight))`` mini-batches by slicing tensors.

    Used as skorch's ``iterator_train`` and ``iterator_valid``: skorch calls it with
    the dataset and the batch size and iterates over it once per epoch.

    Parameters
    ----------
    dataset : TensorData
        The data to iterate over.
    batch_size : int
        Samples per batch.
    shuffle : bool, default=False
        Draw a new permutation every epoch.
    generator : torch.Generator, optional
        Seeded CPU generator for the permutations.
    device : str, default="cpu"
        Device the batches are moved to (a no-op when the data already lives there).
    augment : {"shift", "flip", "shift+flip"} or None, default=None
        Random augmentation of each input batch (see :func:`augment_batch`); the
        training iterator only.
    memory_format : torch.memory_format, default=torch.contiguous_format
        Layout of the input batches (``torch.channels_last`` for images on CUDA).

    Notes
    -----
    When shuffling, a last batch of one sample is merged into the previous one, so
    batch normalisation never sees a batch of size one.
    """

    def __init__(
        self,
        dataset: TensorData,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: str = "cpu",
        augment: str | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.device = device
        self.augment = augment
        self.memory_format = memory_format

    def _bounds(self) -> list[tuple[int, int]]:
        n = len(self.dataset)
        starts = list(range(0, n, self.batch_size))
        bounds = [(s, min(s + self.batch_size, n)) for s in starts]
        if self.shuffle and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def __len__(self) -> int:
        return len(self._bounds())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor | None]]]:
        data = self.dataset
        on_host = data.X.device.type == "cpu" and torch.device(self.device).type == "cuda"
        if on_host or isinstance(data.X, SparseRows):
            yield from self._host_batches()
            return
        if self.shuffle:
            order = torch.randperm(len(data), generator=self.generator)
            order = _from_host(order, data.X.device)
            take = data.X.index_select
            X, y = take(0, order), data.y.index_select(0, order)
            weight = None if data.weight is None else data.weight.index_select(0, order)
        else:
            X, y, weight = data.X, data.y, data.weight
        device = self.device
        for start, stop in self._bounds():
            xb = X[start:stop].to(device, non_blocking=True)
            if self.augment is not None:
                xb = augment_batch(xb, self.augment, self.generator)
            xb = _with_format(xb, self.memory_format)
            yb = y[start:stop].to(device, non_blocking=True)
            wb = None if weight is None else weight[start:stop].to(device, non_blocking=True)
            yield xb, (yb, wb)

    def _host_batches(self):
        """Batches gathered in host memory, pinned and copied to the GPU asynchronously.

        For data too large for the GPU and for sparse inputs: each batch is gathered on
        its own (no shuffled copy of all of X, sparse rows densified), placed in
        page-locked memory and moved with ``non_blocking=True``, so the copy overlaps
        the previous step's computation.
        """
        data = self.dataset
        n = len(data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for start, stop in self._bounds():
            index = torch.arange(start, stop) if order is None else order[start:stop]
            parts = [data.X, data.y] + ([] if data.weight is None else [data.weight])
            moved = [_gather(t, index, self.device) for t in parts]
            xb = moved[0]
            if self.augment is not None:
                xb = augment_batch(xb, self.augment, self.generator)
            xb = _with_format(xb, self.memory_format)
            yield xb, (moved[1], moved[2] if len(moved) > 2 else None)


def _gather(rows: torch.Tensor | SparseRows, index: torch.Tensor, device: str) -> torch.Tensor:
    """Rows ``index`` of ``rows`` on ``device``, through pinned memory for a GPU."""
    return _from_host(rows.index_select(0, index.to(rows.device)), device)


def _from_host(values: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``values`` on ``device``. A host tensor bound for a GPU is copied from page-locked
    memory without blocking, so that the host does not wait for the GPU's queued work (a
    copy from pageable memory does)."""
    if values.device.type == "cpu" and torch.device(device).type == "cuda":
        return values.pin_memory().to(device, non_blocking=True)
    return values.to(device)


def _with_format(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    if memory_format is torch.contiguous_format or x.ndim != 4:
        return x
    return x.contiguous(memory_format=memory_format)


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None) -> torch.Tensor:
    """Randomly shift and/or flip each sample of a ``(N, C, L)`` or ``(N, C, H, W)`` batch.

    ``"shift"`` moves each sample by up to an eighth of its length (rounded down)
    along every spatial axis, filling with zeros: the random crops of a zero-padded
    input that He et al. (2015) use on CIFAR (4 pixels of 32). Axes shorter than 8 are
    not shifted. ``"flip"`` mirrors each sample with probability 1/2 along the last axis
    (horizontally for images, in time for signals). Random numbers come from
    ``generator`` on the CPU, so training stays reproducible on every device; they are
    copied to a GPU without making the host wait.
    """
    n, spatial = x.shape[0], x.shape[2:]
    if "shift" in kind:
        for axis, size in enumerate(spatial, start=2):
            pad = size // 8
            if pad == 0:
                continue
            offsets = _from_host(torch.randint(-pad, pad + 1, (n,), generator=generator), x.device)
            x = _shift_along(x, axis, offsets)
    if "flip" in kind:
        flip = _from_host(torch.rand(n, generator=generator, dtype=torch.float32) < 0.5, x.device)
        x = torch.where(flip.view(-1, *([1] * (x.ndim - 1))), x.flip(-1), x)
    return x


def _shift_along(x: torch.Tensor, axis: int, offsets: torch.Tensor) -> torch.Tensor:
    """Shift sample ``i`` by ``offsets[i]`` positions along ``axis``, zero-filled."""
    size = x.shape[axis]
    source = torch.arange(size, device=x.device).view(1, -1) - offsets.view(-1, 1)
    valid = (source >= 0) & (source < size)
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    shape[axis] = size
    index = source.clamp(0, size - 1).view(shape).expand_as(x)
    return torch.gather(x, axis, index) * valid.view(shape).to(x.dtype)


def _rows(X, start: int, stop: int):
    """Rows ``start:stop`` by position, for arrays and DataFrames alike."""
    return X.iloc[start:stop] if hasattr(X, "iloc") else X[start:stop]


def batched_inference(
    module: torch.nn.Module,
    X: np.ndarray,
    *,
    device: str,
    batch_size: int,
    autocast: Callable[[], object] | None = None,
    in_shape: tuple[int, ...] | None = None,
    convert: Callable[[object], np.ndarray] = np.asarray,
    memory_format: torch.memory_format = torch.contiguous_format,
    reduce: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Run ``module`` over ``X`` in large batches and return float64 outputs.

    Runs under ``torch.inference_mode()`` with the module in evaluation mode; each
    batch is sliced from ``X``, passed through ``convert`` (validation and conversion
    to a numpy array), reshaped to ``(-1, *in_shape)`` and moved to ``device`` on its
    own, so peak memory is bounded by the output plus one batch. ``reduce`` maps each
    batch's outputs to what is kept (the class index, say) before they are stored.

    When the device runs out of memory, the batch is halved and tried again, down to
    a single sample; the smaller size is kept for the rest of the call.
    """
    if module.training:
        module.eval()
    n = X.shape[0]
    outputs = None
    context = autocast or nullcontext
    start = 0
    with torch.inference_mode(), context():
        while start < n:
            try:
                out = _infer_batch(
                    module,
                    convert(_rows(X, start, start + batch_size)),
                    device,
                    in_shape,
                    memory_format,
                )
            except Exception as exc:
                if not is_out_of_memory(exc) or batch_size == 1:
                    raise
                release_memory(device)
                batch_size //= 2
                logger.info("Out of memory on %s; predicting in batches of %d.", device, batch_size)
                continue
            out = out if reduce is None else reduce(out)
            if outputs is None:
                outputs = np.empty((n, *out.shape[1:]), dtype=out.dtype)
            outputs[start : start + len(out)] = out
            start += len(out)
    return outputs


def _infer_batch(module, batch, device, in_shape, memory_format) -> np.ndarray:
    xb = as_tensor(batch, torch.float32, device)
    rows = len(xb)
    if in_shape is not None:
        xb = _with_format(xb.reshape(rows, *in_shape), memory_format)
    # float64 on the host: MPS has no float64.
    return module(_pad_rows(xb))[:rows].cpu().double().numpy()
