"""How training ends: normally, by early stopping, by divergence or by an interrupt.

skorch ends its training loop on any ``KeyboardInterrupt``, its early stopping
included, and returns as if nothing happened. Here the reason is kept:

- :class:`StopTraining` is what our callbacks raise to end training on purpose
  (early stopping, a non-finite loss, a pruned search trial); anything else that
  interrupts the loop is the user's Ctrl-C. Early stopping and the guard only ask
  for the stop (:func:`request_stop`); :class:`StopAtEpochEnd`, the last callback,
  raises it, so every other callback (progress bars, the user's) sees the last
  epoch end.
- :class:`TrainingGuard` keeps the weights of the best finished epoch, stops at the
  first epoch whose loss is not finite and, when training ends, puts the best
  weights back (always when a validation set is monitored, otherwise only after a
  divergence or an interrupt) and drops the half-finished epoch of an interrupt.
- :func:`report_stop` turns the outcome into a warning or an error for the user.
"""

from __future__ import annotations

import contextvars
import logging
import math
from contextlib import contextmanager
from copy import deepcopy

import torch
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback, EarlyStopping

from .user_warnings import warn

__all__ = [
    "DIVERGED",
    "EARLY_STOPPED",
    "INTERRUPTED",
    "PRUNED",
    "ResNetEarlyStopping",
    "StopAtEpochEnd",
    "StopTraining",
    "TrainingGuard",
    "abandoned_refit",
    "interrupts_propagate",
    "report_stop",
    "request_stop",
]

logger = logging.getLogger("sklearn_resnet")

EARLY_STOPPED = "early_stopping"
PRUNED = "pruned"
DIVERGED = "diverged"
INTERRUPTED = "interrupted"


#: Whether an interrupted fit raises instead of keeping its finished epochs (in a search).
_PROPAGATE = contextvars.ContextVar("sklearn_resnet_interrupts_propagate", default=False)


@contextmanager
def interrupts_propagate():
    """Inside the block, a fit interrupted by Ctrl-C raises ``KeyboardInterrupt``.

    Alone, an interrupted fit keeps the weights of its finished epochs and warns. Inside
    a hyper-parameter search that would score a cut-short fit as a finished trial and go
    on with the next one, so the search wraps its fits in this block: the interrupt ends
    the search, and the interrupted estimator is left as it was before the call.
    """
    token = _PROPAGATE.set(True)
    try:
        yield
    finally:
        _PROPAGATE.reset(token)


class StopTraining(KeyboardInterrupt):
    """Ends skorch's training loop on purpose; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def request_stop(net, reason: str) -> None:
    """Ask :class:`StopAtEpochEnd` to end training after this epoch (first reason wins)."""
    if getattr(net, "stop_request_", None) is None:
        net.stop_request_ = reason


class StopAtEpochEnd(Callback):
    """The last callback: raises :class:`StopTraining` once an epoch's stop was requested."""

    def on_train_begin(self, net, **kwargs):
        net.stop_request_ = None

    def on_epoch_end(self, net, **kwargs):
        reason, net.stop_request_ = getattr(net, "stop_request_", None), None
        if reason is not None:
            raise StopTraining(reason)


class ResNetEarlyStopping(EarlyStopping):
    """skorch's early stopping, asking for the stop with :func:`request_stop`.

    Restoring the best weights is left to :class:`TrainingGuard`.
    """

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            request_stop(net, EARLY_STOPPED)


def _copy_into(target: dict | None, live: dict) -> dict:
    """Copy the tensors of ``live`` into ``target`` (allocated on the first call)."""
    if target is None:
        return {key: tensor.detach().clone() for key, tensor in live.items()}
    with torch.no_grad():
        for key, tensor in live.items():
            target[key].copy_(tensor)
    return target


class TrainingGuard(Callback):
    """Best-epoch weights, a stop on non-finite losses and a clean end after Ctrl-C.

    After every finished epoch whose losses are finite, the weights are copied when
    the monitored loss (``valid_loss`` with a validation set, else ``train_loss``)
    is the lowest of this training call. An epoch with a NaN or infinite loss ends
    training. At the end, the net's ``stop_reason_`` (set by
    :meth:`~sklearn_resnet.training.ResNetNet.fit_loop`) decides what happens:

    - a normal end or early stopping: the best weights come back when a validation
      set was monitored; otherwise the last epoch's weights stay;
    - a divergence or an interrupt: the best weights come back and the optimizer's
      moments, which may hold NaN, are reset; an interrupted epoch's half-written
      history row is removed.

    The last history row records ``weights_epoch``, the epoch whose weights the
    network holds. If no epoch finished with finite losses, the weights from before
    the call are put back and ``net.finished_epochs_`` is zero.
    """

    def on_train_begin(self, net, **kwargs):
        self.start_ = len(net.history)
        self.finished_ = self.start_
        self.best_loss_ = math.inf
        self.best_epoch_ = None
        self.best_weights_ = None
        # The module's tensors, looked up once: copying them is cheap, a state_dict
        # walk over the module tree every epoch is not.
        self.live_ = net.module_.state_dict()
        # Weights (and optimizer moments) to fall back to if no epoch finishes.
        self.initial_weights_ = _copy_into(None, self.live_)
        self.initial_optimizer_ = deepcopy(net.optimizer_.state_dict()) if self.start_ else None
        scaler = getattr(net, "grad_scaler_", None)
        self.initial_scaler_ = None if scaler is None else scaler.state_dict()

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        monitor = "valid_loss" if "valid_loss" in row else "train_loss"
        losses = [row[key] for key in ("train_loss", "valid_loss") if key in row]
        if not all(math.isfinite(loss) for loss in losses):
            request_stop(net, DIVERGED)
            return
        self.finished_ = len(net.history)
        if row[monitor] < self.best_loss_:
            self.best_loss_ = row[monitor]
            self.best_epoch_ = row["epoch"]
            self.best_weights_ = _copy_into(self.best_weights_, self.live_)

    def rollback(self, net) -> None:
        """Undo a training call that failed with an error: weights, optimizer, history.

        Works until :meth:`release`, also after ``on_train_end`` (an error raised by a
        later callback or by the estimator after training).
        """
        if getattr(self, "initial_weights_", None) is None:
            return
        del net.history[self.start_ :]
        self.finished_ = self.start_
        self.best_weights_ = None
        self.on_train_end(net)
        if self.initial_scaler_ is not None:
            net.grad_scaler_.load_state_dict(self.initial_scaler_)
        self.release()

    def release(self) -> None:
        """Drop the weights from before the call, once the call has succeeded."""
        self.initial_weights_ = self.initial_optimizer_ = self.initial_scaler_ = None

    def on_train_end(self, net, **kwargs):
        reason = getattr(net, "stop_reason_", None)
        history = net.history
        net.finished_epochs_ = self.finished_ - self.start_
        net.diverged_epoch_ = history[-1]["epoch"] if reason == DIVERGED else None
        if reason == INTERRUPTED or self.best_weights_ is None:
            del history[self.finished_ :]
        if self.best_weights_ is None:
            net.module_.load_state_dict(self.initial_weights_)
            if self.initial_optimizer_ is not None:
                net.optimizer_.load_state_dict(self.initial_optimizer_)
            else:
                net.optimizer_.state.clear()
        else:
            abnormal = reason in (DIVERGED, INTERRUPTED)
            restore = abnormal or "valid_loss" in history[-1]
            # After an interrupt the weights are part-way through the next epoch.
            if abnormal or (restore and self.best_epoch_ != history[-1]["epoch"]):
                net.module_.load_state_dict(self.best_weights_)
                logger.info("Restored the weights of epoch %d.", self.best_epoch_)
            if abnormal:
                net.optimizer_.state.clear()
            if len(history) > self.start_:
                kept = self.best_epoch_ if restore else history[-1]["epoch"]
                history.record("weights_epoch", int(kept))
        # The weights from before the call stay until release(): a later error can
        # still roll the call back.
        self.best_weights_ = self.live_ = None


def abandoned_refit(net, owner: str, kept: int) -> bool:
    """Whether ``early_stopping="refit"``'s second fit (``net``) diverged or was interrupted.

    Then the estimator keeps the holdout fit's network (the weights of its epoch
    ``kept``): this warns so, or raises ``KeyboardInterrupt`` for an interrupt inside
    :func:`interrupts_propagate`.
    """
    reason = getattr(net, "stop_reason_", None)
    if reason == INTERRUPTED and _PROPAGATE.get():
        raise KeyboardInterrupt
    if reason not in (DIVERGED, INTERRUPTED):
        return False
    if reason == DIVERGED:
        what, category = f"diverged at epoch {net.diverged_epoch_}", ConvergenceWarning
    else:
        finished = getattr(net, "finished_epochs_", 0)
        what, category = f"was interrupted after {finished} finished epoch(s)", UserWarning
    warn(
        f"{owner}: the refit on every row of early_stopping='refit' (or an MLP regressor's "
        f"'auto') {what}, so the estimator keeps the network of the holdout fit (the "
        f"weights of its epoch {kept}), as early_stopping=True would.",
        category,
    )
    return True


def report_stop(net, owner: str, lr: float) -> None:
    """Warn about, or refuse, a training call that did not end normally.

    Raises
    ------
    ValueError
        When the loss was not finite in any epoch of the call (the estimator is left
        as it was before the call).
    KeyboardInterrupt
        When an interrupt came before the first epoch finished, or inside
        :func:`interrupts_propagate`.
    """
    reason = getattr(net, "stop_reason_", None)
    finished = getattr(net, "finished_epochs_", 0)
    if reason == DIVERGED:
        epoch = net.diverged_epoch_
        if finished == 0:
            fp16 = (
                " Under precision='16' the inputs and activations must stay within float16's "
                "range (±65,504): use precision='32' or 'bf16', or scale the inputs."
                if getattr(net, "precision", None) == "16"
                else ""
            )
            advice = [f"Use a lower learning rate than lr={lr:g}"]
            advice.append("check the targets for extreme values")
            scaler = getattr(net.module_, "input_scaler", None)
            if getattr(scaler, "method", None) in (None, "standard"):  # not robust already
                advice.append("use scaling='robust'")
            last = (", or " if len(advice) > 2 else " or ") + advice.pop()
            raise ValueError(
                f"{owner} diverged: the training loss was NaN or infinite from the first "
                f"epoch of this call (epoch {epoch}) on, so it found no usable weights and the "
                f"estimator is left as it was before the call. {', '.join(advice)}{last}.{fp16}"
            )
        warn(
            f"{owner} diverged at epoch {epoch}: the training loss became NaN or "
            f"infinite, so training stopped and the weights of epoch "
            f"{net.history[-1]['weights_epoch']} were restored. Use a lower learning rate "
            f"than lr={lr:g}.",
            ConvergenceWarning,
        )
    elif reason == INTERRUPTED:
        if finished == 0 or _PROPAGATE.get():
            raise KeyboardInterrupt
        warn(
            f"{owner}: training was interrupted after {finished} finished epoch(s); the "
            f"estimator keeps the weights of epoch {net.history[-1]['weights_epoch']}.",
            UserWarning,
        )
