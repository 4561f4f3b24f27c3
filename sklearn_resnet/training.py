"""The training engine: a skorch ``NeuralNet`` configured for residual networks.

This module and :mod:`~sklearn_resnet.stopping` are the only ones that import skorch.
:func:`build_net` turns a :class:`TrainingPlan` into an initialised net;
:func:`run_epochs` trains it on :class:`~sklearn_resnet.data.TensorData` through
sliced batches.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import re
import sys
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EpochTimer, PassthroughScoring, PrintLog

from .backbones.layers import set_dropout_generator
from .data import SliceBatches, TensorData
from .device import autocast_dtype, device_type
from .stopping import (
    INTERRUPTED,
    ResNetEarlyStopping,
    StopAtEpochEnd,
    StopTraining,
    TrainingGuard,
)

__all__ = [
    "COMPILE_MODES",
    "CUDA_GRAPH_COMPILE_MODES",
    "OPTIMIZERS",
    "RESERVED_CALLBACK_NAMES",
    "Callback",
    "LRSchedule",
    "ResNetNet",
    "TrainingPlan",
    "ValidationScore",
    "announce",
    "autograd_enabled",
    "build_net",
    "check_callbacks",
    "check_continued_callbacks",
    "check_validation_callbacks",
    "copy_callbacks",
    "move_net",
    "next_seed",
    "run_epochs",
    "seeded",
    "set_verbose",
    "training_guard",
    "without_validation_callbacks",
]

logger = logging.getLogger("sklearn_resnet")

#: Optimizer classes with their defaults for ``lr=None`` / ``weight_decay=None``.
OPTIMIZERS = {
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-2}, {}),
    "adam": (torch.optim.Adam, {"lr": 1e-3, "weight_decay": 0.0}, {}),
    "sgd": (
        torch.optim.SGD,
        {"lr": 0.1, "weight_decay": 1e-4},
        {"momentum": 0.9, "nesterov": True},
    ),
}

#: Modes of ``torch.compile`` that the estimators' ``compile`` takes (``True`` is
#: ``"default"``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: The modes that record CUDA graphs on CUDA. Prediction runs the uncompiled network in
#: these: its padded batches come in many sizes, and each size would record a graph.
CUDA_GRAPH_COMPILE_MODES = frozenset({"reduce-overhead", "max-autotune"})

#: Devices on which the optimizers run as one fused kernel (AdamW, Adam and SGD; every
#: torch release the package supports has these kernels).
FUSED_OPTIMIZER_DEVICES = frozenset({"cpu", "cuda"})
#: Share of the planned optimisation steps spent on linear warm-up.
WARMUP_FRACTION = 0.05
#: Relative improvement of the validation loss that counts as progress.
EARLY_STOPPING_THRESHOLD = 1e-4


def use_fused_optimizer(optimizer: str, device: str, precision: str) -> bool:
    """Whether the optimizer runs as one fused kernel on ``device``.

    Not SGD with fp16's gradient scaler: when the scaler skips a step (inf or NaN
    gradients, common on the first steps at its initial scale), fused SGD has already
    created its momentum buffers uninitialised, and the next step applies garbage.
    """
    if device_type(device) not in FUSED_OPTIMIZER_DEVICES:
        return False
    return not (optimizer == "sgd" and _uses_grad_scaler(precision, device))


#: Devices whose fp16 training uses a gradient scaler (MPS's needs a recent torch).
GRAD_SCALER_DEVICES = frozenset({"cpu", "cuda"})


def _uses_grad_scaler(precision: str, device: str) -> bool:
    """fp16 trains with a gradient scaler, so that small gradients do not underflow."""
    fp16 = autocast_dtype(precision) is torch.float16
    return fp16 and device_type(device) in GRAD_SCALER_DEVICES


#: Held while torch's global generators are seeded, so threads never share a seed.
_GLOBAL_RNG_LOCK = threading.RLock()


@contextmanager
def autograd_enabled():
    """Autograd on, even inside the caller's ``torch.no_grad()`` or ``inference_mode()``.

    Both switches are thread-local, so this changes nothing for other threads.
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


@contextmanager
def seeded(seed: int, device: str):
    """Seed torch's global generators for weight init, restoring them afterwards.

    A process-wide lock is held inside, so networks built in several threads at once
    each get their own seed's weights. Training itself never uses the global
    generators (see :func:`run_epochs`).
    """
    on_cuda = device_type(device) == "cuda"
    devices = [torch.device(device).index or 0] if on_cuda else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        if on_cuda:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(seed)
        yield


def schedule_factor(kind: str, step: int, total_steps: int) -> float:
    """Learning-rate multiplier at optimisation ``step`` of ``total_steps``.

    ``"constant"``: 1. ``"cosine"``: linear warm-up over the first 5 % of the steps,
    then cosine decay to zero (Loshchilov & Hutter, 2017; Goyal et al., 2017).
    ``"step"``: He et al.'s division by 10 at 50 % and 75 % of the steps.
    """
    if kind == "constant" or total_steps <= 0:
        return 1.0
    progress = min(step / total_steps, 1.0)
    if kind == "step":
        return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    warmup = max(1, round(WARMUP_FRACTION * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    decay = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(decay, 1.0)))


class LRSchedule(Callback):
    """Set the learning rate before every training batch from :func:`schedule_factor`.

    The net's ``schedule_steps_`` gives the planned number of steps; ``None`` holds
    the base learning rate (as in ``partial_fit``).
    """

    def __init__(self, kind: str = "cosine"):
        self.kind = kind

    def on_train_begin(self, net, **kwargs):
        self.step_ = 0

    def on_batch_begin(self, net, training=False, **kwargs):
        if not training:
            return
        total = getattr(net, "schedule_steps_", None)
        factor = 1.0 if total is None else schedule_factor(self.kind, self.step_, total)
        for group in net.optimizer_.param_groups:
            group["lr"] = net.lr * factor
        self.step_ += 1


class ValidationScore(Callback):
    """Record ``valid_score`` every epoch: accuracy (classification) or R² (regression).

    ``valid_score_best`` says whether it is the highest so far, as skorch's scoring
    callbacks record it (a ``Checkpoint`` can monitor it).

    Per-batch sums stay on the device and are read once per epoch, so there is no
    host synchronisation per batch. For R² each batch keeps its weighted mean and
    centred sum of squares, combined in float64 at the end of the epoch: the float32
    difference of raw sums would cancel to noise when the targets barely vary (a
    validation part of one row).
    """

    def __init__(self, task: str):
        self.task = task

    def __getstate__(self):
        # The sums are device tensors, which a pickle of the net must not hold: a fit
        # interrupted in its validation pass leaves that epoch's sums unread.
        return {key: value for key, value in self.__dict__.items() if key != "sums_"}

    def on_epoch_begin(self, net, **kwargs):
        self.sums_ = []

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training:
            return
        _, (target, weight) = batch
        y_pred = y_pred.detach().float()
        if weight is None:
            weight = torch.ones(len(target), device=y_pred.device)
        weight = weight.float()
        if self.task == "classification":
            correct = (y_pred.argmax(1) == target).float()
            self.sums_.append(torch.stack([(weight * correct).sum(), weight.sum()]))
            return
        target = target.float().reshape(y_pred.shape)
        w = weight.reshape(-1, 1)
        total = w.sum(0).expand(target.shape[1])
        mean = (w * target).sum(0) / total.clamp_min(torch.finfo(torch.float32).tiny)
        residual = (w * (target - y_pred) ** 2).sum(0)
        squares = (w * (target - mean) ** 2).sum(0)
        self.sums_.append(torch.stack([residual, total, mean, squares]))

    def on_epoch_end(self, net, **kwargs):
        if not self.sums_:
            return
        sums = torch.stack(self.sums_).cpu().double().numpy()  # MPS has no float64
        self.sums_ = []
        if self.task == "classification":
            correct, total = sums.sum(0)
            score = float(correct / total)
        else:
            residual, total, mean, squares = sums[:, 0].sum(0), sums[:, 1], sums[:, 2], sums[:, 3]
            weight = total.sum(0)
            overall = (total * mean).sum(0) / weight
            variance = squares.sum(0) + (total * (mean - overall) ** 2).sum(0)
            # What rounding leaves of a zero variance (or residual) is far below this.
            negligible = 1e-12 * (squares.sum(0) + (total * mean**2).sum(0))
            # As r2_score: a constant target scores 1 when predicted exactly, else 0.
            exact = np.where(residual <= negligible, 1.0, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = np.where(variance > negligible, 1.0 - residual / variance, exact)
            score = float(np.mean(r2))
        earlier = [row["valid_score"] for row in net.history[:-1] if "valid_score" in row]
        net.history.record("valid_score", score)
        net.history.record("valid_score_best", not earlier or score > max(earlier))


class EpochProgress(Callback):
    """A tqdm progress bar over epochs with the latest losses (``verbose >= 1``)."""

    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        total = getattr(net, "planned_epochs_", None)
        self.bar_ = tqdm(total=total, unit="epoch", leave=True)

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        postfix = {key: f"{row[key]:.4f}" for key in ("train_loss", "valid_loss") if key in row}
        self.bar_.set_postfix(postfix, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        self.bar_.close()
        del self.bar_


class EpochLog(Callback):
    """Send one line per epoch to the ``sklearn_resnet`` logger at DEBUG level."""

    def on_epoch_end(self, net, **kwargs):
        if logger.isEnabledFor(logging.DEBUG):
            row = net.history[-1]
            keys = ("epoch", "train_loss", "valid_loss", "valid_score", "dur")
            logger.debug(" ".join(f"{k}={row[k]:.5g}" for k in keys if k in row))


class ResNetNet(NeuralNet):
    """skorch ``NeuralNet`` with weighted losses, autocast and sliced-batch data.

    Batches are ``(X, (y, weight))``; the criterion is built with
    ``reduction="none"`` and :meth:`get_loss` takes the weighted mean.
    """

    def __init__(self, *args, precision: str = "32", **kwargs):
        self.precision = precision
        super().__init__(*args, **kwargs)

    def _yield_callbacks(self):
        # skorch yields PrintLog callbacks last; "stop" ends training by raising at the end
        # of an epoch, so it goes after them, or the last epoch's row would never print.
        items = list(super()._yield_callbacks())
        yield from (item for item in items if item[0] != "stop")
        yield from (item for item in items if item[0] == "stop")

    @property
    def _default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]

    def initialize(self):
        super().initialize()
        use_scaler = _uses_grad_scaler(self.precision, self.device)
        self.grad_scaler_ = torch.amp.GradScaler(device_type(self.device)) if use_scaler else None
        return self

    def autocast(self):
        """Autocast context for the configured precision (a no-op for fp32)."""
        dtype = autocast_dtype(self.precision)
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type(self.device), dtype=dtype)

    def _set_training(self, training=True):
        # skorch switches every submodule's mode on every batch; do it only on a change.
        if self.module_.training != training:
            super()._set_training(training)

    def get_dataset(self, X, y=None):
        if isinstance(X, TensorData):
            return X
        return super().get_dataset(X, y)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        target, weight = y_true
        if y_pred.ndim == 3:
            # An ensemble in training mode: (members, N, outputs). The mean over its
            # members of each one's loss on the batch.
            members = y_pred.shape[0]
            y_pred = y_pred.flatten(0, 1)
            target = target.repeat(members, *([1] * (target.ndim - 1)))
            weight = None if weight is None else weight.repeat(members)
        loss = self.criterion_(y_pred.float(), target)
        if loss.ndim > 1:
            loss = loss.mean(dim=tuple(range(1, loss.ndim)))
        if weight is None:
            return loss.mean()
        return (loss * weight).mean()

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # skorch's partial_fit ends training quietly on any KeyboardInterrupt; keep why.
        self.stop_reason_ = None
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except StopTraining as stop:
            self.stop_reason_ = stop.reason
            raise
        except KeyboardInterrupt:
            self.stop_reason_ = INTERRUPTED
            raise

    def infer(self, x, **fit_params):
        with self.autocast():
            return self.module_(x)

    def torch_compile(self, module, name):
        # The network only: compiling the loss gains nothing, and under CUDA graphs each
        # call of a compiled loss in a validation pass would start a new graph generation
        # that frees the network's outputs before the callbacks have read them.
        if name != "module":
            return module
        return super().torch_compile(module, name)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """One pass over ``iterator`` without making the host wait for the device per batch.

        skorch reads each batch's loss with ``.item()``, which blocks until the GPU has
        finished that step, so the host cannot queue the next one while the GPU works.
        Here a batch records its loss as a detached 0-d tensor, and the epoch's losses
        are read together at its end, in one transfer, and stored as floats, as skorch
        stores them. When a callback of the user's hooks into every batch (skorch's
        ``ProgressBar`` shows the batch losses, say), each loss is read as skorch reads
        it, so that the callback sees floats.
        """
        if iterator is None:
            return
        key = prefix + "_loss"
        per_batch = _reads_batches(self.callbacks_)
        rows = []
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            loss = step["loss"].detach()
            self.history.record_batch(key, loss.item() if per_batch else loss)
            self.history.record_batch(prefix + "_batch_size", len(batch[0]))
            rows.append(self.history[-1]["batches"][-1])
            self.notify("on_batch_end", batch=batch, training=training, **step)
        # An epoch that ends in an error never gets here; its history row is removed
        # (TrainingGuard), tensors and all.
        _losses_to_floats(rows, key)
        self.history.record(prefix + "_batch_count", len(rows))

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = batch
        y_pred = self.infer(Xi)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        # An ensemble's loss is its members' mean; each member's weights get the
        # gradient of its own loss, as if it trained alone.
        objective = loss * y_pred.shape[0] if y_pred.ndim == 3 else loss
        scaler = self.grad_scaler_
        if scaler is None:
            objective.backward()
        else:
            scaler.scale(objective).backward()
            # Callbacks that read or clip gradients (on_grad_computed, next) see them in
            # the units of the objective (an ensemble's: the sum of its members' losses);
            # scaler.step then skips its own unscaling.
            for name in self._optimizers:
                scaler.unscale_(getattr(self, name + "_"))
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        scaler = self.grad_scaler_
        if scaler is None:
            return super()._step_optimizer(step_fn)
        step_fn()
        for name in self._optimizers:
            scaler.step(getattr(self, name + "_"))
        scaler.update()
        return None

    def __getstate__(self):
        # Tensors are pickled for the CPU so that a GPU-fitted model loads anywhere
        # without a device warning; the estimator moves them back where it can. skorch
        # maps only ``module_`` and the like to the CPU; ``module``, the instance the net
        # was built with, is the same object, so it is left out here and restored from
        # ``module_`` (pickled apart, its weights would need the GPU to load).
        shared_module = self.__dict__.get("module") is self.__dict__.get("module_")
        state = super().__getstate__()
        state["device"] = "cpu"
        if shared_module:
            state["module"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if self.__dict__.get("module") is None and "module_" in self.__dict__:
            self.module = self.module_


@dataclass
class TrainingPlan:
    """Everything :func:`build_net` needs, resolved from the estimator's parameters."""

    task: str
    optimizer: str
    lr: float
    weight_decay: float
    lr_schedule: str
    batch_size: int
    max_epochs: int
    early_stopping: bool
    n_iter_no_change: int
    device: str
    precision: str
    compile: bool | str
    shuffle_seed: int
    verbose: int = 0
    augment: str | None = None
    memory_format: torch.memory_format = torch.contiguous_format
    label_smoothing: float = 0.0
    callbacks: list = field(default_factory=list)


def _reads_batches(callbacks) -> bool:
    """Whether a callback other than the net's own acts on every batch, and so may read
    the batch's entries in the history."""
    for _, callback in callbacks:
        if isinstance(callback, ValidationScore | LRSchedule):
            continue  # the net's own: they never read the history's batch entries
        kind = type(callback)
        if (
            kind.on_batch_begin is not Callback.on_batch_begin
            or kind.on_batch_end is not Callback.on_batch_end
        ):
            return True
    return False


def _losses_to_floats(rows: list[dict], key: str) -> None:
    """Replace the loss tensors that batches recorded under ``key`` by floats, read in
    one transfer (a callback may already have replaced some)."""
    recorded = [row for row in rows if torch.is_tensor(row.get(key))]
    if not recorded:
        return
    values = torch.stack([row[key].float() for row in recorded]).cpu().tolist()
    for row, value in zip(recorded, values, strict=True):
        row[key] = value


def _compile_params(compile: bool | str) -> dict:
    """skorch's ``compile`` arguments for the estimators' ``compile`` (a mode or a bool)."""
    if isinstance(compile, str) and compile != "default":
        return {"compile": True, "compile__mode": compile}
    return {"compile": bool(compile)}


def _criterion(plan: TrainingPlan):
    if plan.task == "classification":
        return partial(
            torch.nn.CrossEntropyLoss, reduction="none", label_smoothing=plan.label_smoothing
        )
    return partial(torch.nn.MSELoss, reduction="none")


#: Names of the callbacks that ``verbose`` switches on.
_VERBOSITY_CALLBACKS = ("progress", "print_log")


def _verbosity_callbacks(verbose: int) -> list[tuple[str, Callback]]:
    """A progress bar at ``verbose >= 1``, plus a table per epoch at ``verbose >= 2``."""
    callbacks = []
    if verbose >= 1:
        callbacks.append(("progress", EpochProgress()))
    if verbose >= 2:
        callbacks.append(("print_log", PrintLog(sink=_write_table_row).initialize()))
    return callbacks


#: skorch's colour codes in the per-epoch table.
_ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


def announce(verbose: int, text: str) -> None:
    """Print a line between the progress bars and tables of ``verbose >= 1``."""
    if verbose >= 1:
        _write_table_row(text)


def _write_table_row(text: str) -> None:
    """``tqdm.write`` (under the progress bar), without colour codes when stdout shows
    none: a log file or a captured stream, but not a terminal or a Jupyter notebook."""
    from tqdm.auto import tqdm

    if not _shows_colours(sys.stdout):
        text = _ANSI_CODES.sub("", text)
    tqdm.write(text)


def _shows_colours(stream) -> bool:
    """Whether ``stream`` renders ANSI colour codes: a terminal, or a notebook's output."""
    if getattr(stream, "isatty", lambda: False)():
        return True
    return type(stream).__module__.startswith("ipykernel")


#: Names of the callbacks the estimators add themselves, skorch's defaults included.
RESERVED_CALLBACK_NAMES = (
    "epoch_timer",
    "train_loss",
    "valid_loss",
    "lr_schedule",
    "valid_score",
    "epoch_log",
    "guard",
    "early_stopping",
    *_VERBOSITY_CALLBACKS,
    "stop",
)


def _entries(callbacks):
    """``(index, name or None, callback)`` for each entry of a ``callbacks`` list."""
    for index, entry in enumerate(callbacks or ()):
        if _is_named(entry):
            yield index, entry[0], entry[1]
        else:
            yield index, None, entry


def _is_named(entry) -> bool:
    """Whether a ``callbacks`` entry is a ``(name, callback)`` pair (a tuple or, as skorch
    takes, a list)."""
    return isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[0], str)


def copy_callbacks(callbacks) -> list:
    """Copies of the ``callbacks`` entries to train with, so that the user's are never
    modified.

    An entry is deep-copied where it can be. A callback that holds what cannot be copied
    (a logger's writer, a lock, a connection) is copied shallowly: the copy keeps its own
    attributes and shares those objects, as a logger is meant to. Classes are taken as
    they are (skorch makes the instance).
    """
    copies = []
    for entry in callbacks or ():
        try:
            copies.append(copy.deepcopy(entry))
        except (TypeError, copy.Error):
            if _is_named(entry):
                copies.append((entry[0], _shallow_copy(entry[1])))
            else:
                copies.append(_shallow_copy(entry))
    return copies


def _shallow_copy(callback):
    return callback if isinstance(callback, type) else copy.copy(callback)


def _validation_monitor(callback) -> str | None:
    """The ``valid_*`` value a callback (an instance, or a class with its defaults)
    monitors, if it monitors one."""
    monitor = getattr(callback, "monitor", None)  # an attribute, of the class too
    if isinstance(callback, type):
        try:
            parameter = inspect.signature(callback).parameters.get("monitor")
        except (TypeError, ValueError):
            parameter = None
        if parameter is not None:
            monitor = parameter.default
    return monitor if isinstance(monitor, str) and monitor.startswith("valid") else None


def check_callbacks(callbacks, owner: str) -> None:
    """Refuse ``callbacks`` entries the estimators cannot train with, before training.

    An entry is a :class:`skorch.callbacks.Callback` (instance or class) or a
    ``(name, callback)`` pair. Refused: anything else; names the estimator uses
    itself (:data:`RESERVED_CALLBACK_NAMES`); skorch's ``EpochScoring`` and
    ``BatchScoring``, which expect plain targets and a ``predict`` of labels, while
    the estimator's batches carry ``(y, weight)`` and its net returns logits (the
    estimator records the validation score itself, see ``validation_scores_``);
    ``LRScheduler``, which ``lr_schedule`` would overwrite at every batch; and
    ``EarlyStopping``, whose stop skorch signals as a Ctrl-C (the estimator's own
    ``early_stopping`` stops, and restores the best weights, instead); a ``Checkpoint``
    with ``load_best=True``, which would also replace ``history_`` with the best
    epoch's (the estimator restores the best weights itself); and two entries of one
    name.

    Raises
    ------
    ValueError
        Naming the first entry refused and why.
    """
    from skorch.callbacks import (
        BatchScoring,
        Checkpoint,
        EarlyStopping,
        EpochScoring,
        LRScheduler,
    )

    named = {}
    for index, name, callback in _entries(callbacks):
        kind = callback if isinstance(callback, type) else type(callback)
        where = f"callbacks[{index}] of {owner}"
        if not (isinstance(kind, type) and issubclass(kind, Callback)):
            raise ValueError(
                f"{where} is {callbacks[index]!r}; each entry must be a skorch Callback (an "
                "instance or a class) or a (name, Callback) pair."
            )
        if name in RESERVED_CALLBACK_NAMES:
            raise ValueError(
                f"{where} is named {name!r}, a name the estimator uses for its own callbacks "
                f"({', '.join(RESERVED_CALLBACK_NAMES)}); choose another name."
            )
        if name is not None and name in named:
            raise ValueError(
                f"{where} is named {name!r}, as callbacks[{named[name]}] is; give each "
                "callback a name of its own."
            )
        named.setdefault(name, index)
        if isinstance(callback, Checkpoint) and callback.load_best:
            raise ValueError(
                f"{where} is a Checkpoint with load_best=True, which would also replace "
                "history_ with the best epoch's. The estimator restores the best epoch's "
                "weights itself (with early_stopping); use load_best=False."
            )
        if issubclass(kind, EpochScoring | BatchScoring):
            raise ValueError(
                f"{where} is skorch's {kind.__name__}, which the estimator cannot run: its "
                "batches carry (y, weight) and its net returns logits. The validation "
                "accuracy or R² is recorded as 'valid_score' in history_ (see "
                "validation_scores_); compute other scores in a Callback of your own."
            )
        if issubclass(kind, EarlyStopping):
            raise ValueError(
                f"{where} is skorch's EarlyStopping; the estimator stops early itself: set "
                "early_stopping=True and n_iter_no_change (it monitors the validation loss "
                "and restores the best epoch's weights)."
            )
        if issubclass(kind, LRScheduler):
            raise ValueError(
                f"{where} is skorch's LRScheduler, whose learning rates lr_schedule would "
                "overwrite at every batch; choose the schedule with lr_schedule "
                "('cosine', 'step' or 'constant')."
            )


def without_validation_callbacks(callbacks) -> list:
    """The ``callbacks`` entries that can train without a validation set.

    Left out: callbacks that monitor a ``valid_*`` value (skorch's ``EarlyStopping`` and
    ``Checkpoint`` by default) and those whose ``reads_validation`` attribute is true
    (the search's per-epoch reporter). ``early_stopping="refit"`` trains its second
    network, on every row, with the rest.
    """
    return [
        callbacks[index]
        for index, _, callback in _entries(callbacks)
        if not (_validation_monitor(callback) or getattr(callback, "reads_validation", False))
    ]


def check_validation_callbacks(callbacks, validation: bool, owner: str) -> None:
    """Refuse callbacks that monitor a validation value when no validation set is held out.

    Raises
    ------
    ValueError
        For a callback whose ``monitor`` names a ``valid_*`` value (skorch's
        ``EarlyStopping`` and ``Checkpoint`` by default) while ``validation`` is false.
    """
    if validation:
        return
    for index, _, callback in _entries(callbacks):
        if monitor := _validation_monitor(callback):
            raise ValueError(
                f"callbacks[{index}] of {owner} monitors {monitor!r}, which needs a "
                "validation set, but this fit holds none out (early_stopping=False, or 'auto' "
                "on too few rows for it): set early_stopping=True or monitor a training value."
            )


def check_continued_callbacks(net: ResNetNet, owner: str) -> None:
    """Refuse a ``partial_fit`` of a fitted net whose callbacks monitor a validation value.

    ``partial_fit`` keeps the callbacks of the net's first training call and holds no
    validation set out, so such a callback would fail after the epoch.

    Raises
    ------
    ValueError
        Naming the callback and what it monitors.
    """
    for name, callback in net.callbacks_:
        monitor = None if name in RESERVED_CALLBACK_NAMES else _validation_monitor(callback)
        if monitor:
            raise ValueError(
                f"The callback {name!r} of this {owner} monitors {monitor!r}, which needs a "
                "validation set; partial_fit keeps the callbacks of the first fit and holds "
                "no validation set out, so it cannot train this model on. Train with fit "
                "(early stopping holds a validation set out), or without that callback."
            )


def set_verbose(net: ResNetNet, verbose: int) -> None:
    """Make the next training call of a fitted net show what ``verbose`` asks for.

    ``partial_fit`` after ``set_params(verbose=...)`` continues with the same net; its
    progress callbacks are swapped here so that ``verbose=0`` stays silent. A net
    pickled before the ``"stop"`` callback existed gets it, last, so that a
    divergence still ends its training.
    """
    if not any(name == "stop" for name, _ in net.callbacks_):
        net.callbacks_ = [*net.callbacks_, ("stop", StopAtEpochEnd())]
    if net.verbose == verbose:
        return
    net.verbose = verbose
    callbacks = [(n, cb) for n, cb in net.callbacks_ if n not in _VERBOSITY_CALLBACKS]
    built_in = ("guard", "early_stopping")
    at = max((i + 1 for i, (n, _) in enumerate(callbacks) if n in built_in), default=0)
    callbacks[at:at] = _verbosity_callbacks(verbose)
    net.callbacks_ = callbacks


def build_net(plan: TrainingPlan, module: torch.nn.Module) -> ResNetNet:
    """Create and initialise the skorch net that trains ``module`` according to ``plan``."""
    optimizer_cls, _, optimizer_extra = OPTIMIZERS[plan.optimizer]
    generator = torch.Generator().manual_seed(plan.shuffle_seed)
    callbacks = [
        ("lr_schedule", LRSchedule(plan.lr_schedule)),
        ("valid_score", ValidationScore(plan.task)),
        ("epoch_log", EpochLog()),
        ("guard", TrainingGuard()),
    ]
    if plan.early_stopping:
        # The guard restores the best weights; early stopping only decides when to stop.
        stopper = ResNetEarlyStopping(
            monitor="valid_loss",
            patience=plan.n_iter_no_change,
            threshold=EARLY_STOPPING_THRESHOLD,
            threshold_mode="rel",
            load_best=False,
            sink=logger.info,
        )
        callbacks.append(("early_stopping", stopper))
    callbacks.extend(_verbosity_callbacks(plan.verbose))
    callbacks.extend(plan.callbacks)
    callbacks.append(("stop", StopAtEpochEnd()))
    optimizer_params = {f"optimizer__{k}": v for k, v in optimizer_extra.items()}
    if use_fused_optimizer(plan.optimizer, plan.device, plan.precision):
        # One fused kernel per step instead of a Python loop over parameters.
        optimizer_params["optimizer__fused"] = True
    # The module in the layout its batches come in (channels_last for image CNNs), for
    # a new fit and for a loaded model alike.
    module.to(memory_format=plan.memory_format)
    net = ResNetNet(
        module,
        criterion=_criterion(plan),
        optimizer=optimizer_cls,
        optimizer__weight_decay=plan.weight_decay,
        **optimizer_params,
        lr=plan.lr,
        max_epochs=plan.max_epochs,
        batch_size=plan.batch_size,
        iterator_train=SliceBatches,
        iterator_train__shuffle=True,
        iterator_train__generator=generator,
        iterator_train__augment=plan.augment,
        iterator_train__memory_format=plan.memory_format,
        iterator_valid__memory_format=plan.memory_format,
        iterator_train__device=plan.device,
        iterator_valid=SliceBatches,
        iterator_valid__device=plan.device,
        train_split=None,
        callbacks=callbacks,
        device=plan.device,
        precision=plan.precision,
        **_compile_params(plan.compile),
        verbose=plan.verbose,
    )
    return net.initialize()


def run_epochs(
    net: ResNetNet,
    train: TensorData,
    valid: TensorData | None,
    epochs: int,
    *,
    schedule: bool,
    seed: int,
) -> None:
    """Train ``net`` for up to ``epochs`` epochs on ``train``, validating on ``valid``.

    With ``schedule=False`` the learning rate stays at its base value (``partial_fit``).
    Early stopping, if configured, ends training early and restores the best weights.
    Dropout draws from a generator seeded with ``seed``; shuffling and augmentation
    from the net's own generator, so torch's global generators are left alone.
    """
    if valid is None:
        # Nothing to monitor: partial_fit trains without a validation set.
        net.callbacks_ = [(n, cb) for n, cb in net.callbacks_ if n != "early_stopping"]
    n_batches = len(SliceBatches(train, net.batch_size, shuffle=True))
    net.schedule_steps_ = epochs * n_batches if schedule else None
    net.planned_epochs_ = epochs
    net.train_split = None if valid is None else partial(_fixed_split, valid=valid)
    generator = torch.Generator(device=net.device).manual_seed(seed)
    set_dropout_generator(net.module_, generator)
    # On an error the estimator rolls the net back through its guard (training_guard).
    try:
        net.partial_fit(train, None, epochs=epochs)
    finally:
        # Do not keep references to the data (or pickle them with the model).
        net.train_split = None
        set_dropout_generator(net.module_, None)


def training_guard(net: ResNetNet) -> TrainingGuard:
    """The net's :class:`~sklearn_resnet.stopping.TrainingGuard`, which can undo its last
    training call until that call is released."""
    return dict(net.callbacks_)["guard"]


def next_seed(net: ResNetNet) -> int:
    """A fresh seed for continued training, drawn from the net's shuffling generator."""
    return int(torch.randint(2**62, (1,), generator=net.iterator_train__generator))


def _fixed_split(dataset, y=None, *, valid):
    return dataset, valid


def move_net(net: ResNetNet, device: str) -> None:
    """Move a fitted net (module, criterion, optimizer state, batches) to ``device``."""
    net.device = device
    net.iterator_train__device = device
    net.iterator_valid__device = device
    net.module_.to(device)
    net.criterion_.to(device)
    # A state-dict round trip puts every optimizer tensor where torch wants it for
    # the parameters' new device, the 0-dim step counters of fused optimizers included.
    net.optimizer_.load_state_dict(net.optimizer_.state_dict())
