"""The shared machinery of the estimators: validation, resolution of ``"auto"``/``None``
parameters into fitted attributes, building the backbone, training and prediction.

:class:`_BaseResNet` holds everything; the public classes in
:mod:`sklearn_resnet.estimators` only declare and fill in small hooks.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from functools import partial
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import (
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import check_is_fitted

from .backbones import (
    BLOCK_TYPES,
    SCALING_METHODS,
    blocks_for_depth,
    build_backbone,
    cnn_output_positions,
    depth_formula,
    ensemble_members,
    nearest_depths,
)
from .concurrency import estimator_lock
from .data import AUGMENTATIONS, batched_inference, tensor_data
from .defaults import (
    DEFAULT_VALIDATION_FRACTION,
    DEFAULTS,
    EARLY_STOPPING_MIN_VALIDATION,
    LINEAR_PATH_ALPHA,
    LINEAR_PATH_MAX_FEATURES,
    PREDICT_BATCH_SIZE,
    auto_early_stopping,
    auto_validation_fraction,
    linear_path_rows,
    resolve_augment,
    resolve_batch_size,
    resolve_depth,
    resolve_n_members,
    resolve_scaling,
    resolve_width,
)
from .device import (
    compiler_failed,
    first_line,
    is_available,
    is_out_of_memory,
    memory_format,
    out_of_memory_error,
    resolve_device,
    resolve_precision,
)
from .inputs import (
    check_batch_norm_batches,
    check_input_shape,
    check_predict_X,
    finite_outputs,
    float32_batch,
    resolve_seed,
    sample_weights,
    small_float32,
    spawn_seeds,
    split_indices,
)
from .sparse_rows import dense_rows, is_sparse
from .stopping import EARLY_STOPPED, abandoned_refit, report_stop
from .training import (
    COMPILE_MODES,
    CUDA_GRAPH_COMPILE_MODES,
    OPTIMIZERS,
    TrainingPlan,
    announce,
    autograd_enabled,
    build_net,
    check_callbacks,
    check_continued_callbacks,
    check_validation_callbacks,
    copy_callbacks,
    move_net,
    next_seed,
    run_epochs,
    seeded,
    set_verbose,
    training_guard,
    without_validation_callbacks,
)

__all__ = ["_BaseResNet"]

#: Parameters a later ``partial_fit`` call reads (the rest are read when the net is built).
_READ_AT_EVERY_CALL = ("verbose", "class_weight")
#: Training rows whose outputs must be finite after a call that validated none.
_CHECKED_ROWS = 64
#: What each augmentation does, for the error that refuses it on tabular rows.
_AUGMENT_VERBS = {"shift": "shifts", "flip": "flips", "shift+flip": "shifts and flips"}


class RefitPlan(NamedTuple):
    """What ``early_stopping="refit"``'s second fit takes from the first."""

    epochs: int  #: the first fit's best epoch
    rows: int  #: the first fit's training rows, which its ``"auto"`` choices depended on


def kept_epoch(history) -> int:
    """The epoch (1-based) whose weights a fit with this skorch ``history`` kept.

    See :attr:`_BaseResNet.best_epoch_`.
    """
    if "weights_epoch" in history[-1]:
        return int(history[-1]["weights_epoch"])
    if "valid_loss" not in history[-1]:
        return len(history)
    best = [row["epoch"] for row in history if row.get("valid_loss_best")]
    return int(best[-1]) if best else len(history)


class _BaseResNet(BaseEstimator, metaclass=ABCMeta):
    """Everything the classifier and the regressor share."""

    _parameter_constraints: dict = {
        "backbone": [StrOptions({"auto", "mlp", "cnn"})],
        "depth": [Interval(Integral, 1, None, closed="left"), None],
        "width": [Interval(Integral, 1, None, closed="left"), None],
        "n_members": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "block": [StrOptions(set(BLOCK_TYPES))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "input_shape": [tuple, list, None],
        "scaling": [StrOptions({"auto", *SCALING_METHODS}), None],
        "augment": [StrOptions({"auto", *AUGMENTATIONS}), None],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "weight_decay": [Interval(Real, 0, None, closed="left"), None],
        "lr_schedule": [StrOptions({"constant", "cosine", "step"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "early_stopping": ["boolean", StrOptions({"auto", "refit"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), StrOptions({"auto"})],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "precision": [StrOptions({"auto", "32", "bf16", "16"})],
        "compile": ["boolean", StrOptions(set(COMPILE_MODES))],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
    }

    _task: str

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
        device="auto",
        precision="auto",
        compile=False,
        random_state=None,
        verbose=0,
        callbacks=None,
    ):
        self.backbone = backbone
        self.depth = depth
        self.width = width
        self.n_members = n_members
        self.block = block
        self.dropout = dropout
        self.input_shape = input_shape
        self.scaling = scaling
        self.augment = augment
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.precision = precision
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    def set_params(self, **params):
        """Set the estimator's parameters (see scikit-learn's ``BaseEstimator.set_params``).

        ``callbacks`` is a list, whose items have no parameter names of their own here:
        ``callbacks__patience=3`` is refused with a ``ValueError``; set ``callbacks`` to a
        new list instead.

        Parameters
        ----------
        **params : dict
            Parameter names (``name`` or ``step__name``) and their values.

        Returns
        -------
        self : estimator
            The estimator.
        """
        for key in params:
            name, nested, _ = key.partition("__")
            value = getattr(self, name, None) if nested else None
            if nested and name in self._get_param_names() and not hasattr(value, "set_params"):
                example = (
                    " (callbacks=[GradientNormClipping(gradient_clip_value=1.0)], say)"
                    if name == "callbacks"
                    else ""
                )
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}: "
                    f"{name!r} holds a {type(value).__name__}, which has no parameters of "
                    f"its own to set. Set {name!r} itself instead{example}."
                )
        return super().set_params(**params)

    # ---- hooks for the subclasses ---------------------------------------------------
    @abstractmethod
    def _validate_targets(self, X, y, *, reset: bool, classes=None, sample_weight=None):
        """Validate X and y together; return X, encoded y and per-sample extra weights.

        ``sample_weight`` (unchecked) is there for extra weights that depend on it.
        """

    def _scale_targets(self, y, weight, *, reset: bool):
        """Map validated targets to what the network learns (identity by default)."""
        return y

    @abstractmethod
    def _n_network_outputs(self) -> int:
        """Number of outputs of the network's head."""

    def _label_smoothing(self) -> float:
        """Label smoothing of the loss (classifiers only)."""
        return 0.0

    # ---- fitting ----------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network from scratch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, L) or (n_samples, C, H, W)
            Training inputs; pandas DataFrames are accepted and their column names kept.
        y : array-like of shape (n_samples,), or (n_samples, n_outputs) for the regressor
            Class labels (classifier) or targets (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights for the loss.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _partial_fit(self, X, y, sample_weight=None, classes=None):
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _fit(self, X, y, sample_weight, *, incremental: bool, classes=None):
        # One call at a time per estimator (a prediction in another thread would switch
        # the network's mode mid-epoch); fits of other estimators run side by side.
        with estimator_lock(self):
            return self._fit_locked(X, y, sample_weight, incremental, classes)

    def _fit_locked(self, X, y, sample_weight, incremental: bool, classes):
        previous = dict(self.__dict__)
        # The shuffling stream that continued training draws from: a failed call puts
        # it back too, so that a retry trains as if the failure had not happened.
        net = getattr(self, "net_", None)
        stream = getattr(net, "iterator_train__generator", None)
        stream_state = None if stream is None else stream.get_state()
        try:
            self._fit_unchecked(X, y, sample_weight, incremental=incremental, classes=classes)
        except BaseException:
            # Nothing half-fitted: every attribute goes back to what it was, and a net
            # trained further in place (partial_fit) to its weights, optimizer state and
            # history from before the call, whether the error came during its epochs (out
            # of memory, a failing callback) or after them (a callback's on_train_end).
            self.__dict__.clear()
            self.__dict__.update(previous)
            if net is not None:
                training_guard(net).rollback(net)
            if stream is not None:
                stream.set_state(stream_state)
            raise
        training_guard(self.net_).release()
        return self

    def _fit_unchecked(self, X, y, sample_weight, *, incremental: bool, classes):
        owner = type(self).__name__
        warm = incremental and hasattr(self, "net_")
        if warm:
            # scikit-learn validates the parameters of an unfitted estimator only; those
            # read at every call (verbose, class_weight) must be valid here too.
            read = [name for name in _READ_AT_EVERY_CALL if name in self._parameter_constraints]
            validate_parameter_constraints(
                {name: self._parameter_constraints[name] for name in read},
                {name: getattr(self, name) for name in read},
                caller_name=owner,
            )
            check_continued_callbacks(self.net_, owner)
        else:
            # Callbacks, like the other training settings, are read when the net is built.
            check_callbacks(self.callbacks, owner)
        X, y, extra_weight = self._validate_targets(
            X, y, reset=not warm, classes=classes, sample_weight=sample_weight
        )
        # fit normalises the weights to mean 1; partial_fit takes them as given, so
        # that batches weighted differently keep their relative weight across calls.
        weight = sample_weights(sample_weight, X, extra_weight, as_given=incremental)
        if weight is not None:
            keep = np.flatnonzero(weight > 0)
            X, y, weight = X[keep], y[keep], weight[keep]
            if not incremental:
                weight = weight / weight.mean()
        y = self._scale_targets(y, weight, reset=not warm)
        if not warm:
            self._resolve_architecture(X, owner)
            self.device_ = resolve_device(self.device, owner=owner)
            self.precision_ = resolve_precision(self.precision, self.device_)
        else:
            self._check_sparse_backbone(X, owner)
        if not is_sparse(X):
            X = X.reshape(X.shape[0], *self.input_shape_)
        if self.backbone_ == "cnn" and X.shape[0] < 2:
            weighted = " with a positive sample_weight" if weight is not None else ""
            raise ValueError(
                f"The CNN backbone of {owner} needs at least 2 training samples for batch "
                f"normalisation; got 1 sample{weighted}."
            )
        if warm:
            set_verbose(self.net_, self.verbose)
        seed = resolve_seed(self.random_state) if not warm else next_seed(self.net_)
        try:
            with autograd_enabled():
                self._train_and_refit(X, y, weight, incremental, warm, seed)
        except Exception as exc:
            cause = compiler_failed(exc) if self.compile else None
            if cause is not None:
                raise RuntimeError(
                    f"compile={self.compile!r}: torch.compile could not compile the network of "
                    f"{owner} on device {self.device_!r} "
                    f"({type(cause).__name__}: {first_line(cause)}). "
                    "Use compile=False, or "
                    "install what the compiler needs (a C++ compiler for the CPU, Triton for "
                    "CUDA)."
                ) from exc
            if not is_out_of_memory(exc):
                raise
            # The rows left for training once early stopping (decided first in _train)
            # has taken its validation part, as the network and batch size were planned.
            n_train = X.shape[0]
            if not warm and self.early_stopping_:
                n_train -= self._holdout_rows(n_train)
            refit = self.__dict__.get("_refit_plan")
            batch_size = (
                self.net_.batch_size if warm else self._batch_size_for(n_train, incremental)
            )
            batch_size = min(batch_size, n_train)  # the rows a batch held
            precision = "precision='bf16', " if self.precision_ == "32" else ""
            # A new network's, not n_members_: the error may come before this call sets it.
            members = self.n_members_ if warm else self._n_members_for(n_train, incremental)
            fewer = "fewer n_members, " if members > 1 else ""
            remedies = (
                f"a smaller batch_size, a smaller width or depth, {fewer}{precision}"
                "or another device"
            )
            advice = (
                "partial_fit keeps the network and batch size of its first call; refit with "
                f"fit and {remedies}."
                if warm
                else f"Use {remedies}."
            )
            if refit:
                advice = (
                    "The holdout fit of early_stopping='refit' (or an MLP regressor's 'auto') "
                    "had finished; this was its second fit, on every row "
                    f"({refit.epochs} epochs). {advice} "
                    "early_stopping=True trains the first fit only (add "
                    "validation_fraction=0.2 for an MLP regressor's holdout)."
                )
            depth = self._depth_for(n_train, incremental)
            # Not width_: the error may come before this call sets it (a refit's is old).
            width = self._width_for(n_train, incremental)
            ensemble = f"n_members={members}, " if members > 1 else ""
            size = f"{ensemble}width={width}, depth={depth}, " if not warm else ""
            raise out_of_memory_error(
                exc,
                self.device_,
                f"training {owner} ({size}batch_size={batch_size}) needs more memory than "
                f"the device has. {advice}",
            ) from exc
        report_stop(self.net_, owner, self.net_.lr)

    def _train_and_refit(self, X, y, weight, incremental: bool, warm: bool, seed: int) -> None:
        """:meth:`_train`, and for ``early_stopping="refit"`` (or an ``"auto"`` that resolves
        to it) a second network on every row.

        The second network has the first's ``"auto"`` choices (made for its rows) and
        seed; it trains on every row for the first fit's ``best_epoch_`` epochs, the
        schedule planned over them, with the callbacks that need no validation set. It
        follows only a holdout fit that ended normally (all its epochs, or early
        stopping): after a divergence, an interrupt or a pruned search trial the
        estimator keeps the holdout fit's network, as ``early_stopping=True``; so it does,
        with a warning, when the second fit diverges or is interrupted.
        """
        if not incremental:
            self.__dict__.pop("selection_history_", None)
        self._train(X, y, weight, incremental, warm, seed)
        if incremental or self._early_stopping_for(X.shape[0]) != "refit":
            return
        holdout = self.net_
        if getattr(holdout, "stop_reason_", None) not in (None, EARLY_STOPPED):
            return
        training_guard(holdout).release()  # a fresh network: nothing to roll back to
        epochs = self.best_epoch_
        first_rows = X.shape[0] - self._holdout_rows(X.shape[0])
        self._refit_plan = RefitPlan(epochs, first_rows)
        announce(
            self.verbose,
            f"Refit on all {X.shape[0]} rows for {epochs} epochs (the holdout fit's best).",
        )
        self._train(X, y, weight, False, False, seed)
        del self._refit_plan
        if abandoned_refit(self.net_, type(self).__name__, epochs):
            self.net_, self.early_stopping_ = holdout, True
        else:
            self.selection_history_ = holdout.history

    def _train(self, X, y, weight, incremental: bool, warm: bool, seed: int) -> None:
        """Build (unless ``warm``) and train the network: the part that uses the device.

        With ``_refit_plan`` set (``early_stopping="refit"``'s second fit), it trains on
        every row for the plan's epochs, with its ``"auto"`` choices, without early
        stopping or the callbacks that need a validation set.
        """
        init_seed, shuffle_seed, split_seed, dropout_seed = spawn_seeds(seed, 4)
        refit = self.__dict__.get("_refit_plan")
        self.early_stopping_ = (
            not incremental and not refit and self._use_early_stopping(X.shape[0])
        )
        fraction = self._validation_fraction_for(X.shape[0])
        if not refit:  # a refit's second fit keeps its first fit's
            self.validation_fraction_ = float(fraction) if self.early_stopping_ else None
        classify = self._task == "classification"
        valid, train_idx = None, None
        if self.early_stopping_:
            train_idx, valid_idx = split_indices(
                X.shape[0],
                fraction,
                split_seed,
                y if classify else None,
                min_valid=self._holdout_rows(X.shape[0]),
                shown=self._validation_fraction_shown(fraction),
            )
            if weight is not None:
                # Mean 1 within each part, so that the training rows' weights do not
                # depend on (or underflow float32 next to) a heavy validation row's.
                weight = weight.copy()
                for part in (train_idx, valid_idx):
                    weight[part] /= weight[part].mean()
        train = tensor_data(X, y, weight, classification=classify, device=self.device_)
        if self.early_stopping_:
            train, valid = train.subset(train_idx), train.subset(valid_idx)
        if not warm:
            owner = type(self).__name__
            check_validation_callbacks(self._fit_callbacks(), self.early_stopping_, owner)
            if self.backbone_ == "cnn":
                check_batch_norm_batches(
                    len(train),
                    self._batch_size_for(len(train), incremental),
                    cnn_output_positions(self.input_shape_),
                    owner,
                    self._validation_fraction_shown(fraction) if self.early_stopping_ else None,
                )
            rows = len(train)
            self.width_ = self._width_for(rows, incremental)
            self.n_members_ = self._n_members_for(rows, incremental)
            self.scaling_ = self._scaling_for(rows, incremental)
            plan = self._plan(rows, shuffle_seed, incremental)
            with seeded(init_seed, self.device_):
                module = self._build_module(depth=self._depth_for(rows, incremental))
            self._fit_input_statistics(module, X, train, train_idx, split_seed)
            module.to(self.device_)
            self.net_ = build_net(plan, module)
        epochs = 1 if incremental else self.net_.max_epochs
        run_epochs(self.net_, train, valid, epochs, schedule=not incremental, seed=dropout_seed)
        # A refit that diverged or was interrupted gives way to the holdout fit's network.
        if valid is None and not (refit and self.net_.stop_reason_ is not None):
            self._refuse_unusable_weights(train)

    def _refuse_unusable_weights(self, train) -> None:
        """Refuse weights whose outputs on a few training rows are NaN or infinite.

        Without a validation set, the guard sees only each epoch's training loss, the
        mean over batches taken before each optimizer step: a last step that threw the
        weights far off leaves a finite loss behind (a learning rate far too high, say),
        and the weights it restores after a NaN epoch can be as far off. A forward pass
        over a few training rows tells; the error leaves the estimator as it was.
        """
        if getattr(self.net_, "finished_epochs_", 0) == 0:
            return  # nothing was trained: report_stop explains why
        rows = train.sample_rows(_CHECKED_ROWS, seed=0)[0]
        outputs = self._inference(rows.cpu().numpy(), batch_size=_CHECKED_ROWS)
        if not np.isfinite(outputs).all():
            history = self.net_.history
            kept = history[-1].get("weights_epoch", history[-1]["epoch"])
            loss = next(row["train_loss"] for row in history if row["epoch"] == kept)
            raise ValueError(
                f"{type(self).__name__} diverged: the weights training kept (those of epoch "
                f"{kept}, whose mean training loss was {loss:.3g}) give NaN or infinite "
                "outputs on its own training rows, so the estimator is left as it was "
                f"before the call. Use a lower learning rate than lr={self.net_.lr:g}."
            )

    def _check_sparse_backbone(self, X, owner: str) -> None:
        """Refuse scipy.sparse training X for the CNN (first and later fits alike)."""
        if is_sparse(X) and self.backbone_ == "cnn":
            raise ValueError(
                f"{owner} takes scipy.sparse X with the MLP backbone only (rows of "
                "features); convert X to a dense array for backbone='cnn' or input_shape."
            )

    @staticmethod
    def _fit_input_statistics(module, X, train, train_idx, seed: int) -> None:
        """Fit the input scaling to the training rows only, and start the linear path (if
        there is one) at the ridge regression of those rows; an ensemble's other members
        take the first one's, computed once."""
        first, *others = ensemble_members(module)
        first.input_scaler.fit(X, train_idx, seed=seed)
        linear = getattr(first, "linear", None)
        started = linear is not None and linear.in_features <= LINEAR_PATH_MAX_FEATURES
        if started:
            sample = train.sample_rows(linear_path_rows(linear.in_features), seed=seed)
            first.fit_linear_path(*sample, alpha=LINEAR_PATH_ALPHA)
        for member in others:
            member.input_scaler.load_state_dict(first.input_scaler.state_dict())
            if started:
                member.linear.load_state_dict(linear.state_dict())

    def _resolve_architecture(self, X, owner: str) -> None:
        """Set ``backbone_`` and ``input_shape_`` and check ``depth`` before training."""
        sample_shape = X.shape[1:]
        if self.backbone == "auto":
            use_cnn = self.input_shape is not None or len(sample_shape) >= 2
            self.backbone_ = "cnn" if use_cnn else "mlp"
        else:
            self.backbone_ = self.backbone
        if self.input_shape is not None:
            shape = check_input_shape(self.input_shape, self.n_features_in_, owner)
            if len(sample_shape) >= 2 and sample_shape != shape:
                # Reshaping (or, for the MLP, flattening) would scramble the values
                # (channels-last images, say), and prediction refuses such X anyway.
                raise ValueError(
                    f"X has samples shaped {sample_shape}, but input_shape={shape}; pass X "
                    f"shaped (n_samples, *{shape}) or flat rows of {self.n_features_in_} "
                    "values (for channels-last images, move the channel axis first)."
                )
        elif len(sample_shape) >= 2:
            shape = tuple(sample_shape)
        else:
            shape = (1, self.n_features_in_) if self.backbone_ == "cnn" else sample_shape
        self._check_sparse_backbone(X, owner)
        # The MLP flattens samples of several dimensions; it predicts on flat rows or on
        # samples of the shape it was fitted on (which input_shape_ cannot hold).
        self.__dict__.pop("_sample_shape", None)
        if self.backbone_ == "mlp":
            self._sample_shape = tuple(shape)
            shape = (self.n_features_in_,)
            if self.augment not in (None, "auto"):
                verb = _AUGMENT_VERBS.get(self.augment, "augments")
                raise ValueError(
                    f"augment={self.augment!r} {verb} signals and "
                    f"images; it needs the CNN backbone, but {owner} resolved backbone='mlp'. "
                    "Set augment=None for tabular data, or set input_shape to use the CNN."
                )
        elif len(shape) not in (2, 3):
            advice = (
                f"input_shape={shape} has {len(shape)} dimension(s); give (C, L) for signals "
                "or (C, H, W) for images, or leave input_shape out for the MLP"
                if self.input_shape is not None
                else "Set input_shape or use backbone='mlp'"
            )
            raise ValueError(
                f"The CNN backbone of {owner} takes samples shaped (C, L) or (C, H, W); "
                f"got per-sample shape {shape}. {advice}."
            )
        self.input_shape_ = shape
        self.augment_ = resolve_augment(self.augment, self.backbone_)
        depth = DEFAULTS[self.backbone_]["depth"] if self.depth is None else self.depth
        try:
            blocks_for_depth(self.backbone_, depth, self.block)
        except ValueError:
            near = nearest_depths(self.backbone_, depth, self.block)
            # The smallest valid depth starts the list; other lists go on below too.
            smaller = "" if near[0] == nearest_depths(self.backbone_, 0, self.block)[0] else "..., "
            formula = depth_formula(self.backbone_, self.block)
            raise ValueError(
                f"The 'depth' parameter of {owner} must be one of {smaller}"
                f"{', '.join(map(str, near))}, ... ({formula}) "
                f"for backbone={self.backbone_!r} and block={self.block!r}. "
                f"Got {depth} instead."
            ) from None

    def _build_module(self, depth=None, block=None, dropout=None):
        """A freshly initialised network for the resolved architecture.

        Depends only on the parameters and on fitted attributes set before training
        (``backbone_``, ``input_shape_``, the number of outputs), so a saved model can be
        rebuilt from them and its weights loaded into the result. ``depth``, ``block``
        and ``dropout`` override the parameters (a saved model records those its network
        was built with, as ``set_params`` may have changed the parameters since). An
        ensemble has ``n_members_`` networks.
        """
        return build_backbone(
            self.backbone_,
            self.input_shape_,
            self._n_network_outputs(),
            depth=self.depth if depth is None else depth,
            width=self.width_,
            block=self.block if block is None else block,
            dropout=self.dropout if dropout is None else dropout,
            n_members=self.n_members_,
            average="probability" if self._task == "classification" else "mean",
            scaling=self.scaling_,
            **self._module_options(),
        )

    def _module_options(self) -> dict:
        """Extra backbone arguments of this estimator (none by default)."""
        return {}

    def _early_stopping_for(self, n_samples: int) -> bool | str:
        """``early_stopping`` for a fit on ``n_samples``: ``False``, ``True`` or
        ``"refit"`` (``"auto"`` resolved)."""
        if self.early_stopping == "auto":
            # The "auto" fraction decides at a tenth: its fifth is for an MLP regressor's
            # refit only, which starts from fewer rows than either fraction would need.
            fraction = self.validation_fraction
            if fraction == "auto":
                fraction = DEFAULT_VALIDATION_FRACTION
            return auto_early_stopping(self._task, self.backbone_, n_samples, fraction)
        return self.early_stopping if self.early_stopping == "refit" else bool(self.early_stopping)

    def _validation_fraction_for(self, n_samples: int) -> float:
        """``validation_fraction`` of a fit on ``n_samples`` (``"auto"`` resolved)."""
        if self.validation_fraction != "auto":
            return self.validation_fraction
        refit = self._early_stopping_for(n_samples) == "refit"
        return auto_validation_fraction(self._task, self.backbone_, refit)

    def _validation_fraction_shown(self, fraction: float) -> str:
        """The resolved ``fraction`` as an error names it: ``'auto' (0.2)`` or the number."""
        return f"'auto' ({fraction})" if self.validation_fraction == "auto" else f"{fraction}"

    def _holdout_rows(self, n_samples: int) -> int:
        """Rows a fit on ``n_samples`` holds out: ``validation_fraction`` of them, and at
        least ``EARLY_STOPPING_MIN_VALIDATION`` for an MLP regressor's ``"auto"`` refit."""
        n_valid = math.ceil(self._validation_fraction_for(n_samples) * n_samples)
        if self.early_stopping == "auto" and self._early_stopping_for(n_samples) == "refit":
            n_valid = max(n_valid, EARLY_STOPPING_MIN_VALIDATION)
        return n_valid

    def _use_early_stopping(self, n_samples: int) -> bool:
        """Whether a fit on ``n_samples`` holds a validation set out (``"refit"``'s
        first fit does)."""
        return bool(self._early_stopping_for(n_samples))

    def _batch_size_for(self, n_train: int, incremental: bool = False) -> int:
        """The batch size of training on ``n_train`` rows, kept by later ``partial_fit``
        calls. It is not capped at ``n_train``: each call's batches are (a call on fewer
        rows takes one step per epoch), so a later call on more rows gets full batches.
        A refit takes its first fit's."""
        return self._resolved(resolve_batch_size, self.batch_size, n_train, incremental)

    def _width_for(self, n_train: int, incremental: bool = False) -> int:
        """The width of a network trained on ``n_train`` rows (a refit's: its first fit's)."""
        return self._resolved(resolve_width, self.width, n_train, incremental)

    def _depth_for(self, n_train: int, incremental: bool = False) -> int:
        """The depth of a network trained on ``n_train`` rows (a refit's: its first fit's)."""
        return self._resolved(resolve_depth, self.depth, n_train, incremental)

    def _n_members_for(self, n_train: int, incremental: bool = False) -> int:
        """The networks of an ensemble trained on ``n_train`` rows (a refit's: its first
        fit's)."""
        return self._resolved(resolve_n_members, self.n_members, n_train, incremental)

    def _scaling_for(self, n_train: int, incremental: bool = False) -> str | None:
        """The input scaling of a network trained on ``n_train`` rows (a refit's: its
        first fit's)."""
        return self._resolved(resolve_scaling, self.scaling, n_train, incremental)

    def _resolved(self, resolve, value, n_train: int, incremental: bool):
        """``resolve(value, backbone, rows, task, small_data)`` for a fit on ``n_train``
        rows: the ``"auto"`` and ``None`` choices depend on the rows, and a refit makes its
        first fit's (it trains on more rows, with the first fit's best number of epochs).
        A first ``partial_fit`` call (``incremental``) takes no small-data choices: its
        rows need not be all the training data."""
        refit = self.__dict__.get("_refit_plan")
        rows = refit.rows if refit else n_train
        return resolve(value, self.backbone_, rows, self._task, small_data=not incremental)

    def _fit_callbacks(self) -> list:
        """The ``callbacks`` entries this fit trains with (a refit's: those that need no
        validation set)."""
        if "_refit_plan" in self.__dict__:
            return without_validation_callbacks(self.callbacks)
        return self.callbacks

    def _plan(self, n_train: int, shuffle_seed: int, incremental: bool = False) -> TrainingPlan:
        """The training settings (a refit's: for its first fit's number of epochs)."""
        defaults = OPTIMIZERS[self.optimizer][1]
        refit = self.__dict__.get("_refit_plan")
        max_epochs = self.max_epochs or DEFAULTS[self.backbone_]["max_epochs"]
        max_epochs = refit.epochs if refit else max_epochs
        return TrainingPlan(
            task=self._task,
            optimizer=self.optimizer,
            lr=defaults["lr"] if self.lr is None else self.lr,
            weight_decay=defaults["weight_decay"]
            if self.weight_decay is None
            else self.weight_decay,
            lr_schedule=self.lr_schedule,
            batch_size=self._batch_size_for(n_train, incremental),
            max_epochs=max_epochs,
            early_stopping=self.early_stopping_,
            n_iter_no_change=self.n_iter_no_change,
            device=self.device_,
            precision=self.precision_,
            compile=self.compile,
            shuffle_seed=shuffle_seed,
            augment=self.augment_,
            memory_format=self._memory_format(),
            label_smoothing=self._label_smoothing(),
            verbose=self.verbose,
            callbacks=copy_callbacks(self._fit_callbacks()),
        )

    # ---- prediction -------------------------------------------------------------------
    def _forward(self, X, reduce=None) -> np.ndarray:
        """Raw network outputs for X as float64, or ``reduce`` of them batch by batch."""
        with estimator_lock(self):
            return self._forward_locked(X, reduce)

    def _forward_locked(self, X, reduce) -> np.ndarray:
        check_is_fitted(self)
        small = small_float32(self, X)
        if small is not None:
            # A few plain rows: already checked and converted in one step.
            X, convert = small, np.asarray
        else:
            # Checked first: a DataFrame of sparse columns comes back as CSR.
            X = check_predict_X(self, X)
            convert = dense_rows if is_sparse(X) else partial(float32_batch, self)
        return self._inference(
            X, batch_size=PREDICT_BATCH_SIZE, convert=convert, reduce=finite_outputs(self, reduce)
        )

    def _inference(self, X, **options) -> np.ndarray:
        """:func:`~sklearn_resnet.data.batched_inference` of the fitted network on ``X``,
        on its device, in its precision and memory layout (through the uncompiled network
        for the compile modes that record CUDA graphs)."""
        graphs = getattr(self.net_, "compile__mode", None) in CUDA_GRAPH_COMPILE_MODES
        return batched_inference(
            self.module_ if graphs else self.net_.module_,
            X,
            device=self.device_,
            autocast=self.net_.autocast,
            in_shape=self.input_shape_,
            memory_format=self._memory_format(),
            **options,
        )

    def _memory_format(self):
        width = self.width_ if self.backbone_ == "cnn" else None
        return memory_format(self.device_, self.input_shape_, width)

    def __sklearn_is_fitted__(self) -> bool:
        return "net_" in self.__dict__

    # ---- fitted attributes derived from the history -----------------------------------
    @property
    def module_(self):
        """The trained ``torch.nn.Module`` (the original module when ``compile=True``)."""
        module = self._trained_net().module_
        return getattr(module, "_orig_mod", module)

    @property
    def history_(self):
        """skorch ``History``: one row per epoch with losses, scores and durations."""
        return self._trained_net().history

    def _trained_net(self):
        """``net_``; scikit-learn's ``NotFittedError`` (an ``AttributeError``) before fit."""
        check_is_fitted(self)
        return self.net_

    @property
    def n_iter_(self) -> int:
        """Number of epochs trained."""
        return len(self.history_)

    @property
    def loss_curve_(self) -> list[float]:
        """Training loss per epoch."""
        return [float(v) for v in self.history_[:, "train_loss"]]

    @property
    def validation_scores_(self) -> list[float] | None:
        """Validation accuracy (classifier) or R² (regressor) per epoch.

        Weighted by the validation rows' weights. ``None`` when the fit held out no
        validation set (no early stopping).
        """
        scores = [row.get("valid_score") for row in self.history_]
        return None if all(s is None for s in scores) else scores

    @property
    def best_validation_score_(self) -> float | None:
        """Validation score at :attr:`best_epoch_`; ``None`` without early stopping."""
        scores = self.validation_scores_
        return None if scores is None else scores[self.best_epoch_ - 1]

    @property
    def best_epoch_(self) -> int:
        """Epoch (1-based) whose weights the model holds.

        The epoch of the lowest validation loss (weighted, with any label smoothing)
        when the last fit used early stopping, else the last one (``partial_fit`` trains
        on from the current weights). After a divergence or an interrupt, the epoch of
        the lowest loss before it.
        """
        return kept_epoch(self.history_)

    # ---- persistence and tags -----------------------------------------------------------
    def __setstate__(self, state):
        super().__setstate__(state)
        # Pickled by a release before ensembles: the parameter's default, one network.
        self.__dict__.setdefault("n_members", "auto")
        if "net_" in self.__dict__:
            self.__dict__.setdefault("n_members_", 1)
        net = self.__dict__.get("net_")
        if net is not None:
            self._place_unpickled_net(net)

    def __getstate__(self):
        # Not in the middle of a fit in another thread: a half-trained copy is no copy.
        with estimator_lock(self):
            return super().__getstate__()

    def _place_unpickled_net(self, net) -> None:
        """Move an unpickled net to its device, or to the CPU where that is missing."""
        target = self.device_ if is_available(self.device_) else "cpu"
        if target == "cpu" and self.device_ != "cpu":
            self.device_, self.precision_ = "cpu", "32"
            net.precision = "32"
            net.grad_scaler_ = None
        move_net(net, target)
        net.module_.to(memory_format=self._memory_format())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # scipy.sparse rows train the MLP backbone, densified one batch at a time.
        tags.input_tags.sparse = True
        return tags

    # ---- hyper-parameter search ---------------------------------------------------------
    @classmethod
    def default_search_space(cls, backbone="mlp", block="basic", optimizer="adamw"):
        """The default Optuna search space, used by ``OptunaSearchCV(param_distributions=None)``.

        Depth, width, dropout, learning rate, weight decay and batch size, plus
        ``label_smoothing`` for classifiers, ``scaling`` for the MLP and ``augment``
        for the CNN, with log scales for the learning rate, the weight decay and the
        MLP width. The table is ``SPACE`` in ``sklearn_resnet.search_space``.

        Parameters
        ----------
        backbone : {"mlp", "cnn"}, default="mlp"
            Backbone whose valid depths and widths to search.
        block : {"basic", "bottleneck", "preact"}, default="basic"
            Residual block (bottleneck CNNs have other depths).
        optimizer : {"adamw", "adam", "sgd"}, default="adamw"
            The learning-rate and weight-decay ranges surround its defaults.

        Returns
        -------
        space : dict of str to optuna distribution
            Parameter name to distribution.

        Examples
        --------
        >>> from sklearn_resnet import ResNetRegressor
        >>> ResNetRegressor.default_search_space()["lr"]
        FloatDistribution(high=0.01, log=True, low=0.0001, step=None)
        """
        from .search_space import default_search_space

        return default_search_space(cls, backbone=backbone, block=block, optimizer=optimizer)
