"""Docstrings shared by the estimators, written once and substituted into each class."""

from __future__ import annotations

import textwrap

from .defaults import (
    DEFAULT_VALIDATION_FRACTION,
    EARLY_STOPPING_MIN_VALIDATION,
    MLP_CLASSIFIER_EARLY_STOPPING_MIN_SAMPLES,
    MLP_REGRESSOR_REFIT_MIN_SAMPLES,
    MLP_REGRESSOR_REFIT_VALIDATION_FRACTION,
)

_SHARED_PARAMETERS = """\
backbone : {"auto", "mlp", "cnn"}, default="auto"
        ``"mlp"``: residual MLP for tabular rows (samples of several dimensions are
        flattened; prediction then takes flat rows or samples of the fitted shape).
        ``"cnn"``: He et al.'s residual CNN, 1-D for samples shaped ``(C, L)`` and
        2-D for ``(C, H, W)``. ``"auto"`` picks the CNN when ``input_shape`` is set
        or X has three or more dimensions, the MLP otherwise.
    depth : int, default=None
        Number of weight layers, He's convention. MLP: ``2n + 2`` for ``n`` blocks
        (default 8; 4 in the MLP classifier's small-data choices, see ``n_members``).
        CNN: ``6n + 2`` for basic and pre-activation blocks (20, 32, 44, 56, 110;
        default 20), ``9n + 2`` for bottleneck blocks (29, 47, 56, 164). A depth that
        fits no formula raises a ``ValueError`` listing valid ones.
    width : int, default=None
        Width of the MLP's residual stream or the CNN's base channels. ``None``: 256
        for the MLP (64 for the classifier when fewer than 1,000 rows are left for
        training, where a wide net trained on every row overfits), 16 for the CNN (He
        et al.; the stages have 1x, 2x and 4x as many).
    n_members : int or "auto", default="auto"
        Number of networks of this architecture, each started from its own random
        weights, trained together on the same batches (each learns from its own loss)
        and predicting as one: the mean of their class probabilities or outputs (a
        deep ensemble, Lakshminarayanan et al., 2017, trained as in TabM, Gorishniy et
        al., 2024). ``net_`` trains them as one module, so ``history_`` records the
        mean of their training losses and the ensemble's validation loss and score.
        Callbacks that read gradients see the sum over the members (a gradient-norm
        clipping clips their joint norm). ``"auto"``: 1, except in the MLP classifier's
        small-data choices: where fewer than 1,000 rows are left for training, every
        parameter left at its default takes them, ``n_members=8``, ``width=64``,
        ``depth=4``, ``batch_size=256`` and ``scaling="standard"`` (fewer errors than
        one network and than scikit-learn's MLP over twenty cross-validations of wine
        and breast cancer). A first ``partial_fit`` call, whose rows need not be all
        the training data, takes none of them.
    block : {"basic", "bottleneck", "preact"}, default="basic"
        Residual block. CNN: two 3x3 convolutions, the 1x1-3x3-1x1 bottleneck, or the
        pre-activation block of He et al. (2016). MLP: ``"basic"`` and ``"preact"``
        are the pre-norm block ``x + Dropout(Linear(Dropout(act(Linear(Norm(x))))))``;
        ``"bottleneck"`` narrows its hidden layer to ``width // 4``.
    dropout : float, default=0.0
        Dropout probability inside the residual branches.
    input_shape : tuple or list of int, default=None
        Per-sample shape for the CNN, e.g. ``(1, 8, 8)`` or ``(1, 40)``. Flat rows are
        reshaped to it, so the CNN works after scikit-learn transformers in a
        Pipeline. ``None``: the shape of X's samples, or ``(1, n_features)`` for
        flat rows with ``backbone="cnn"``. With ``backbone="mlp"`` it is checked
        against the number of features and X's sample shape and otherwise unused (the
        MLP takes the flattened samples), so a search can try both backbones on one
        shape.
    scaling : {"auto", "robust", "quantile", "standard"} or None, default="auto"
        Input scaling fitted on the training rows and stored inside the network (so
        it travels with the weights): ``"robust"`` centres on the median, divides by
        the interquartile range and clips outliers smoothly to about ±3 (RealMLP,
        Holzmüller et al., 2024); ``"quantile"`` maps each feature through its
        empirical distribution onto a normal (Gorishniy et al., 2021);
        ``"standard"`` subtracts the mean and divides by the standard deviation.
        The CNN scales per channel. ``"auto"``: ``"robust"`` for the MLP (``"standard"``
        in the MLP classifier's small-data choices, see ``n_members``), ``"standard"`` for
        the CNN. ``None``: no scaling.
    augment : {"auto", "shift", "flip", "shift+flip"} or None, default="auto"
        CNN only: random augmentation of training batches (never of validation or
        prediction data). ``"shift"`` moves each sample by up to 1/8 of its size with
        zero fill, the padded random crops of He et al. (2015); ``"flip"`` mirrors each
        sample with probability 1/2 along the last axis. ``"auto"``: ``"shift"`` for the
        CNN, nothing for the MLP. Setting an augmentation with the MLP raises a ValueError.
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        ``"sgd"`` uses Nesterov momentum 0.9 (He et al.).
    lr : float, default=None
        Base learning rate; ``None`` is 1e-3 for Adam(W) and 0.1 for SGD.
    weight_decay : float, default=None
        ``None`` is 1e-2 for AdamW (decoupled), 0 for Adam and 1e-4 for SGD.
    lr_schedule : {"cosine", "constant", "step"}, default="cosine"
        ``"cosine"``: linear warm-up over the first 5 % of the steps (none in a fit of
        fewer than 30 steps), then cosine decay to zero over ``max_epochs``.
        ``"step"``: divide by 10 at 50 % and 75 % of the planned steps (He et al.).
        ``"constant"``: the base rate throughout.
    batch_size : int or "auto", default="auto"
        Samples per training step. ``"auto"``: ``n/8`` rounded down to a power of two,
        between 16 and 256, where ``n`` is the number of training rows left after the
        validation split (of the first call, for ``partial_fit``); 256 in the MLP
        classifier's small-data choices (see ``n_members``). A batch holds at most
        the rows a call trains on: one step per epoch on fewer rows than a batch, and
        full batches again in a later ``partial_fit`` call on more rows.
    max_epochs : int, default=None
        Upper bound on training epochs; ``None`` is 100 for the MLP and 60 for the CNN.
    early_stopping : bool, "auto" or "refit", default="auto"
        Hold out ``validation_fraction`` of the training data, stop when the validation
        loss has not improved by 0.01 % for ``n_iter_no_change`` epochs, and restore
        the weights of the best epoch. {auto_early_stopping} ``"refit"`` does that
        fit, then trains the network it keeps on every row for the best epoch's
        number of epochs, with the schedule planned over them, the same seed and the
        first fit's ``"auto"`` and ``None`` choices (width, batch size, and the
        small-data choices of ``n_members``): where the ``"auto"`` choices for all the
        rows are the same as for the first fit's training rows, the fit
        ``early_stopping=False, max_epochs=best_epoch_`` would make. Each fit trains
        with its own copies of ``callbacks``; those that monitor a ``valid_*`` value
        (or have a true ``reads_validation`` attribute) run in the first fit only. It
        costs a second fit; on small data it keeps most of the holdout's calibration
        and of training on every row's accuracy. The first fit's history is
        ``selection_history_``. After a first fit that diverged or was interrupted
        (or pruned, in a search) there is no second one, and the estimator keeps the
        first fit's network; so it does, with a warning, when the second fit diverges
        or is interrupted. ``partial_fit`` holds nothing out, whatever the value.
    validation_fraction : float or "auto", default="auto"
        Share of the training data held out for early stopping (stratified for
        classification where every class has two samples and each part has at least
        one row per class; otherwise drawn at random).
        {auto_validation_fraction}
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    {extra_parameters}device : str, default="auto"
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
        ``"mps"``. An unavailable device raises a ``ValueError`` naming the available ones.
    precision : {"auto", "32", "bf16", "16"}, default="auto"
        Autocast precision of the forward pass.
        ``"auto"`` is bf16 on CUDA GPUs with bfloat16 in hardware (compute capability
        8.0, Ampere, and newer) and float32 elsewhere, older GPUs included (they emulate
        bf16, slower than float32). ``"16"`` (float16) trains with a gradient scaler on
        CUDA and the CPU, and without one on MPS. The forward pass runs under autocast;
        the loss is computed in float32 and the weights stay float32.
    compile : bool or str, default=False
        Compile the network with ``torch.compile``. A string is the compiler's ``mode``:
        ``"default"`` (the same as ``True``), ``"reduce-overhead"`` (on CUDA, replays each
        training step as recorded CUDA graphs, which saves the launch cost of small
        networks), ``"max-autotune"`` (tunes kernels, and records CUDA graphs too) or
        ``"max-autotune-no-cudagraphs"``. Compiling takes time of its own at the first
        batch of each new batch size. In the modes that record CUDA graphs, prediction
        runs the uncompiled network, as its batches come in many sizes.
    random_state : int, RandomState instance or None, default=None
        Seeds weight init, dropout, shuffling and the validation split; an int gives
        bit-identical refits on CPU with the same torch build and thread count.
        ``None`` draws a fresh seed from OS entropy, so, unlike scikit-learn's
        estimators, ``np.random.seed`` has no effect. Global numpy and torch RNGs are
        left as found (see the user guide's "Reproducibility").
    verbose : int, default=0
        0: silent. 1: a progress bar over epochs with the latest losses. 2: also a
        table row per epoch.
    callbacks : list of skorch callbacks, default=None
        Extra callbacks (objects, classes or ``(name, callback)`` pairs) for power
        users; they are copied (shallowly where a deep copy fails), never modified, and
        see every epoch. With a refit (``early_stopping="refit"``, or an MLP regressor's
        ``"auto"``) each fit has its own copies, and those that monitor ``valid_*`` values
        run in the first fit only. skorch's ``EpochScoring``, ``BatchScoring``, ``LRScheduler``,
        ``EarlyStopping`` and ``Checkpoint(load_best=True)`` are refused (the estimator
        scores, schedules, stops and restores the best weights itself), as are the
        names of its own callbacks, two entries of one name and, without a validation
        set, callbacks monitoring ``valid_*``.
"""

_CLASS_WEIGHT = """\
class_weight : dict, "balanced" or None, default=None
        Weights per class, as in scikit-learn; multiplied with ``sample_weight``.
        ``"balanced"`` is computed from the labels passed to ``fit`` (the
        early-stopping validation rows included, as in ``HistGradientBoostingClassifier``),
        each counted with its ``sample_weight`` (as in ``LogisticRegression``), and refused
        by ``partial_fit`` (pass a dict of weights computed over all the data).
    label_smoothing : float in [0, 1), default=0.0
        Share of each target's probability spread evenly over all classes in the
        cross-entropy loss (Szegedy et al., 2016); regularises over-confident logits.
    """

_SHARED_ATTRIBUTES = """\
n_features_in_ : int
        Number of features (values per sample) seen in fit.
    feature_names_in_ : ndarray of str
        Column names of X, when X was a DataFrame with string column names.
    n_outputs_ : int
        Outputs of the network's head: {outputs}.
    backbone_ : {{"mlp", "cnn"}}
        The backbone used.
    input_shape_ : tuple of int
        Per-sample shape fed to the network.
    scaling_ : str or None
        Resolved input scaling.
    augment_ : str or None
        Resolved augmentation.
    width_ : int
        Resolved width.
    n_members_ : int
        Resolved number of networks (``module_`` is a ``NetworkEnsemble`` of them
        above 1).
    device_ : str
        Device the model lives on.
    precision_ : str
        Resolved precision.
    early_stopping_ : bool
        Whether the kept network's fit held a validation set out (``False`` after the
        refit of ``early_stopping="refit"``, or of an ``"auto"`` that means it).
    validation_fraction_ : float or None
        The ``validation_fraction`` the last ``fit`` held out for early stopping
        (``"auto"`` resolved), also for a refit's first fit; ``None`` where it held
        nothing out, and after ``partial_fit``. With ``early_stopping="auto"`` an MLP
        regressor's refit holds out at least 20 rows, which can be more than this share.
    selection_history_ : skorch.History
        After a refit (``early_stopping="refit"``, or ``"auto"`` where it means that):
        the history of the first fit, whose best
        epoch set the refit's number of epochs (``valid_loss`` and ``valid_score``
        per epoch; ``best_validation_score_`` is ``None`` after the refit, and the
        holdout's best score is in here). ``partial_fit`` keeps it; a ``fit`` that
        makes no refit removes it.
    net_ : skorch.NeuralNet
        The skorch net that trained the module.
    module_ : torch.nn.Module
        The trained network.
    history_ : skorch.History
        Per-epoch training history (``train_loss``, ``valid_loss``, ``valid_score``, ``dur``).
    n_iter_ : int
        Epochs trained.
    best_epoch_ : int
        Epoch whose weights the model holds (1-based).
    loss_curve_ : list of float
        Training loss per epoch.
    validation_scores_ : list of float or None
        {score} on the held-out set per epoch, weighted by ``sample_weight`` (and
        ``class_weight``); ``None`` without early stopping. Epochs added later by
        ``partial_fit``, which does not validate, hold ``None``.
    best_validation_score_ : float or None
        Validation score at ``best_epoch_``."""

_TEMPLATE = """{summary}

    {intro}

    Parameters
    ----------
    {parameters}
    Attributes
    ----------
    {classes}{attributes}

    See Also
    --------
    {see_also}

    Notes
    -----
    Tips: for speed, raise ``batch_size`` or lower ``depth``/``width``; for accuracy
    of a classifier on small data, lower ``width`` and add ``dropout``; on images pass
    ``input_shape`` (or 4-D X) and keep ``depth=20``.

    Examples
    --------
{examples}
    """


_AUTO_EARLY_STOPPING = (
    '``"auto"`` turns it on when\n'
    "        ``validation_fraction * n_samples`` is at least 20 (200 samples at 0.1, the\n"
    '        fraction ``"auto"`` decides with)'
)
_CLASSIFIER_AUTO_EARLY_STOPPING = (
    _AUTO_EARLY_STOPPING + "; with the MLP backbone, only from "
    f"{MLP_CLASSIFIER_EARLY_STOPPING_MIN_SAMPLES:,}\n"
    "        samples on. On fewer rows the MLP is more accurate trained on every row for\n"
    "        all ``max_epochs`` (see the benchmarks page), but it then reports no\n"
    "        per-epoch validation scores, which ``OptunaSearchCV`` prunes on."
)
_REGRESSOR_AUTO_EARLY_STOPPING = (
    _AUTO_EARLY_STOPPING + '; with the MLP backbone it means ``"refit"``, from '
    f"{MLP_REGRESSOR_REFIT_MIN_SAMPLES}\n"
    "        samples on (its first fit then holds out ``validation_fraction`` of them, at\n"
    f"        least {EARLY_STOPPING_MIN_VALIDATION} rows), which on the\n"
    "        regression benchmark's sets was never far behind the better of the holdout\n"
    "        alone and training on every row, where each of those falls well behind\n"
    "        somewhere, for a second fit up to as long as the first (see the benchmarks page)."
)


_AUTO_VALIDATION_FRACTION = f'``"auto"`` is {DEFAULT_VALIDATION_FRACTION}.'
_REGRESSOR_AUTO_VALIDATION_FRACTION = (
    f'``"auto"`` is {MLP_REGRESSOR_REFIT_VALIDATION_FRACTION} for an MLP regressor\'s ``"refit"`` '
    f"and {DEFAULT_VALIDATION_FRACTION} otherwise: that\n"
    "        holdout only picks the number of epochs, so a larger one costs the network kept\n"
    '        no rows (its ``"auto"`` batch size comes from the rows left, as the first fit\'s\n'
    "        does), and on the regression benchmark it picked better (see the benchmarks\n"
    "        page)."
)


def _render(
    summary, intro, extra_parameters, auto_stop, classes, outputs, score, see_also, examples
):
    parameters = _SHARED_PARAMETERS.replace("{extra_parameters}", extra_parameters)
    parameters = parameters.replace("{auto_early_stopping}", auto_stop[0])
    parameters = parameters.replace("{auto_validation_fraction}", auto_stop[1])
    attributes = _SHARED_ATTRIBUTES.format(outputs=outputs, score=score)
    return _TEMPLATE.format(
        summary=summary,
        intro=intro,
        parameters=parameters,
        classes=classes,
        attributes=attributes,
        see_also=see_also,
        examples=examples,
    )


def classifier_doc() -> str:
    """Docstring of :class:`~sklearn_resnet.ResNetClassifier`."""
    return _render(
        "Residual network classifier (residual MLP or residual CNN).",
        "Binary and multiclass classification with the labels scikit-learn's classifiers\n"
        "    take (strings, integers, booleans, integral floats, pandas categories); a\n"
        "    scikit-learn estimator that trains a residual network with skorch and PyTorch.",
        _CLASS_WEIGHT,
        (_CLASSIFIER_AUTO_EARLY_STOPPING, _AUTO_VALIDATION_FRACTION),
        "classes_ : ndarray of shape (n_classes,)\n        Sorted class labels.\n    ",
        "one logit per class",
        "Validation accuracy",
        "ResNetRegressor : The regressor.",
        "    >>> from sklearn.datasets import load_digits\n"
        "    >>> from sklearn_resnet import ResNetClassifier\n"
        "    >>> X, y = load_digits(return_X_y=True)\n"
        "    >>> clf = ResNetClassifier(depth=20, max_epochs=3, random_state=0).fit(X, y)\n"
        "    >>> clf.predict(X[:3]).shape\n"
        "    (3,)",
    )


def regressor_doc() -> str:
    """Docstring of :class:`~sklearn_resnet.ResNetRegressor`."""
    return _render(
        "Residual network regressor (residual MLP or residual CNN).",
        "Single- and multi-output regression. Targets are standardised internally\n"
        "    and predictions mapped back to the original scale. The MLP learns the\n"
        "    residual of a linear model, ``y = H(x) + Lx``: a linear path from the\n"
        "    scaled inputs to the outputs starts at the ridge regression solution\n"
        "    (``alpha=1``, closed form, up to 1,024 features) and the residual part's\n"
        "    output layer starts at zero, so training begins from the linear model.",
        "",
        (_REGRESSOR_AUTO_EARLY_STOPPING, _REGRESSOR_AUTO_VALIDATION_FRACTION),
        "",
        "one per target",
        "Validation R²",
        "ResNetClassifier : The classifier.",
        "    >>> from sklearn.datasets import load_diabetes\n"
        "    >>> from sklearn_resnet import ResNetRegressor\n"
        "    >>> X, y = load_diabetes(return_X_y=True)\n"
        "    >>> reg = ResNetRegressor(max_epochs=3, random_state=0).fit(X, y)\n"
        "    >>> reg.predict(X[:3]).shape\n"
        "    (3,)",
    )


_PREDICTION_TEMPLATE = """{summary}

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
            Inputs like those of ``fit``.

        Returns
        -------
        {returns}
{description}
        """


def prediction(summary: str, returns: str, description: str):
    """Decorator giving a prediction method its docstring: ``summary``, the ``X``
    parameter every prediction method takes, and a Returns section of one entry,
    ``returns`` (name and type) with its ``description``."""
    indent = " " * 12
    text = textwrap.fill(
        description,
        width=92,
        initial_indent=indent,
        subsequent_indent=indent,
        break_on_hyphens=False,
    )

    def document(method):
        method.__doc__ = _PREDICTION_TEMPLATE.format(
            summary=summary, returns=returns, description=text
        )
        return method

    return document
