"""Search spaces for :class:`~sklearn_resnet.OptunaSearchCV`.

Two concerns: the estimators' default spaces (one table, :data:`SPACE`) and the
conversion of a user's ``param_distributions`` into Optuna distributions, with the
way back from a trial's parameters to the values given to ``set_params``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from .training import OPTIMIZERS

__all__ = [
    "SPACE",
    "SearchSpace",
    "default_search_space",
    "estimator_settings",
    "final_step",
    "fingerprint",
]

#: Parameters that do not change what a trial measures (output, parallelism, caching, where
#: the arithmetic runs, and seeds): searches on one study may set them differently.
_UNSCORED = frozenset({"verbose", "n_jobs", "memory", "device", "compile", "random_state"})
#: Longer texts of a setting are kept as a digest.
_SETTING_CHARS = 2000

#: The default search space: one row per parameter, one distribution per backbone
#: (``"any"``: every backbone; ``"cnn-bottleneck"``: CNN with bottleneck blocks, whose
#: depths are 9n+2). ``lr`` and ``weight_decay`` are factors applied to the optimizer's
#: default, so the range suits AdamW and SGD alike. A parameter the estimator class does
#: not have (``label_smoothing`` on a regressor) is left out. New parameters get a row here.
SPACE: dict[str, dict[str, tuple]] = {
    "depth": {
        "mlp": ("int", 4, 10, 2),
        "cnn": ("int", 8, 32, 6),
        "cnn-bottleneck": ("int", 11, 29, 9),
    },
    "width": {"mlp": ("int", 32, 512, "log"), "cnn": ("choice", [8, 16, 32])},
    "dropout": {"mlp": ("float", 0.0, 0.5), "cnn": ("float", 0.0, 0.3)},
    "lr": {"any": ("factor", 0.1, 10.0)},
    "weight_decay": {"any": ("factor", 1e-3, 10.0)},
    "batch_size": {"any": ("choice", [32, 64, 128, 256])},
    "label_smoothing": {"any": ("float", 0.0, 0.2)},
    "scaling": {"mlp": ("choice", ["robust", "quantile", "standard"])},
    "augment": {"cnn": ("choice", ["shift", None])},
}

_OPTUNA_CHOICE_TYPES = (type(None), bool, int, float, str)


def _distribution(row: tuple, default: float | None) -> BaseDistribution:
    kind, *args = row
    if kind == "int":
        low, high, step = args
        if step == "log":
            return IntDistribution(low, high, log=True)
        return IntDistribution(low, high, step=step)
    if kind == "float":
        return FloatDistribution(*args)
    if kind == "factor":
        low, high = args
        if default == 0:  # e.g. Adam's weight decay: search around AdamW's instead
            default = OPTIMIZERS["adamw"][1]["weight_decay"]
        return FloatDistribution(default * low, default * high, log=True)
    return CategoricalDistribution(list(args[0]))


def default_search_space(
    estimator_class, backbone: str = "mlp", block: str = "basic", optimizer: str = "adamw"
) -> dict[str, BaseDistribution]:
    """The default search space of ``estimator_class`` for one backbone.

    Parameters
    ----------
    estimator_class : type
        ``ResNetClassifier`` or ``ResNetRegressor`` (or a subclass); rows of
        :data:`SPACE` for parameters the class does not have are left out.
    backbone : {"mlp", "cnn"}, default="mlp"
        Backbone whose depths and widths to search.
    block : {"basic", "bottleneck", "preact"}, default="basic"
        Residual block; bottleneck CNNs take other depths (9n+2).
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        The searched ``lr`` and ``weight_decay`` ranges are factors of this
        optimizer's defaults: AdamW searches lr in [1e-4, 1e-2] and weight decay in
        [1e-5, 1e-1]; SGD lr in [1e-2, 1].

    Returns
    -------
    space : dict of str to optuna distribution
        Parameter name to distribution, ready for ``OptunaSearchCV``.

    Examples
    --------
    >>> from sklearn_resnet import ResNetRegressor
    >>> from sklearn_resnet.search_space import default_search_space
    >>> sorted(default_search_space(ResNetRegressor, "cnn"))
    ['augment', 'batch_size', 'depth', 'dropout', 'lr', 'weight_decay', 'width']
    """
    if backbone not in ("mlp", "cnn"):
        raise ValueError(f"backbone must be 'mlp' or 'cnn'; got {backbone!r}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}; got {optimizer!r}.")
    defaults = OPTIMIZERS[optimizer][1]
    keys = [f"{backbone}-{block}", backbone, "any"]
    names = set(estimator_class._get_param_names())
    space = {}
    for name, rows in SPACE.items():
        row = next((rows[key] for key in keys if key in rows), None)
        if name in names and row is not None:
            space[name] = _distribution(row, defaults.get(name))
    return space


def final_step(estimator) -> tuple[str, object]:
    """The parameter prefix and the estimator at the end of (nested) Pipelines.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.linear_model import LogisticRegression
    >>> final_step(make_pipeline(StandardScaler(), LogisticRegression()))[0]
    'logisticregression__'
    """
    prefix = ""
    while hasattr(estimator, "steps") and estimator.steps:
        name, estimator = estimator.steps[-1]
        prefix += f"{name}__"
    return prefix, estimator


def fingerprint(value) -> str:
    """``repr(value)`` without memory addresses, which differ between processes.

    Examples
    --------
    >>> fingerprint(object()) == fingerprint(object())
    True
    """
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def estimator_settings(estimator) -> dict[str, str]:
    """Every parameter of ``estimator`` (nested ones included) as a text to compare.

    Trials of one study are only comparable when scored with the same settings, and a
    trial's refit combines its searched values with the estimator's other parameters, so
    each trial records these texts. An estimator-valued parameter is its class name (its
    own parameters are listed beside it), as are the estimators of a Pipeline's steps;
    other objects inside a parameter (callbacks, column selectors) show their class and
    parameters, sets and dicts are sorted, and a long text is a digest. Parameters that
    do not change what a trial measures (``verbose``, ``n_jobs``, ``memory``, ``device``,
    ``compile``, and ``random_state``, whose seeds only draw another sample of the same
    score) are left out.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.linear_model import LogisticRegression
    >>> settings = estimator_settings(make_pipeline(StandardScaler(), LogisticRegression()))
    >>> settings["logisticregression"], settings["logisticregression__C"]
    ('LogisticRegression', '1.0')
    >>> "logisticregression__n_jobs" in settings
    False
    """
    params = estimator.get_params(deep=True)
    return {
        name: _setting(value, name, params)
        for name, value in params.items()
        if name.rsplit("__", 1)[-1] not in _UNSCORED
    }


def _choice_text(value) -> str:
    return _shortened(fingerprint(_canonical(value)))


def _shortened(text: str) -> str:
    if len(text) <= _SETTING_CHARS:
        return text
    return "sha1:" + hashlib.sha1(text.encode()).hexdigest()[:16]


def _setting(value, name: str, params: dict) -> str:
    if _is_estimator(value):
        return type(value).__qualname__
    parent = name.rpartition("__")[0]
    prefix = f"{parent}__" if parent else ""

    def listed(step) -> bool:  # a step whose parameters are settings of their own
        return isinstance(step[0], str) and params.get(prefix + step[0]) is step[1]

    return _shortened(fingerprint(_canonical(value, listed)))


def _canonical(value, listed=lambda step: False, depth: int = 0):
    """``value`` in a form whose text does not depend on the process: numpy scalars as
    Python numbers, sets sorted, dicts by key, objects as their class and parameters.

    ``listed(step)`` tells the ``(name, estimator)`` steps whose estimator's parameters
    are settings of their own (a Pipeline's): those steps show only the class.
    """
    if depth > 4:
        return value
    deeper = {"listed": listed, "depth": depth + 1}
    value = _as_choice(value)
    if isinstance(value, dict):
        items = [(key, _canonical(item, **deeper)) for key, item in value.items()]
        return dict(sorted(items, key=lambda pair: fingerprint(pair[0])))
    if isinstance(value, set | frozenset):
        return sorted((_canonical(item, **deeper) for item in value), key=fingerprint)
    if isinstance(value, list | tuple):
        items = [_canonical_item(item, listed, deeper) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    if _is_estimator(value):
        params = value.get_params(deep=False)
    elif type(value).__repr__ is object.__repr__ and hasattr(value, "__dict__"):
        params = vars(value)  # its text would be its class alone
    else:
        return value
    return _Text(f"{type(value).__qualname__}({_arguments(_canonical(params, **deeper))})")


def _canonical_item(item, listed, deeper):
    if _is_step(item) and listed(item):
        rest = [_canonical(part, **deeper) for part in item[2:]]
        return (item[0], _Text(type(item[1]).__qualname__), *rest)
    return _canonical(item, **deeper)


def _arguments(params: dict) -> str:
    return ", ".join(f"{key}={fingerprint(value)}" for key, value in params.items())


class _Text(str):
    """A text shown as it is (without quotes) inside the text of a setting."""

    def __repr__(self) -> str:
        return str(self)


def _is_estimator(value) -> bool:
    return hasattr(value, "get_params") and not isinstance(value, type)


def _is_step(step) -> bool:
    """A ``(name, estimator, ...)`` entry of a Pipeline's, ColumnTransformer's or
    callbacks' list."""
    return isinstance(step, tuple) and len(step) >= 2 and _is_estimator(step[1])


def _as_choice(value):
    return value.item() if isinstance(value, np.generic) else value


class SearchSpace:
    """Optuna distributions for ``param_distributions``, and back to parameter values.

    Lists (and tuples, ranges, one-dimensional arrays) become categorical distributions.
    Choices Optuna cannot store (estimators, tuples, arrays, ...) are stored as their
    position in the list and decoded when the parameters are handed to the estimator.

    Parameters
    ----------
    param_distributions : dict
        Parameter name to a list of values or an Optuna distribution.
    valid_names : collection of str
        The estimator's parameters (``get_params(deep=True)``); others are rejected.
    owner : str
        Class name used in error messages.

    Examples
    --------
    >>> space = SearchSpace({"C": [0.1, 1.0], "penalty": [None, "l2"]}, {"C", "penalty"})
    >>> space.decode({"C": 1.0, "penalty": "l2"})
    {'C': 1.0, 'penalty': 'l2'}
    """

    def __init__(self, param_distributions, valid_names, owner: str = "OptunaSearchCV"):
        self.distributions: dict[str, BaseDistribution] = {}
        self._choices: dict[str, list] = {}
        for name, value in param_distributions.items():
            if not isinstance(name, str):
                raise TypeError(
                    f"The keys of param_distributions of {owner} must be parameter names "
                    f"(str); got {name!r}."
                )
            if name not in valid_names:
                raise ValueError(
                    f"Invalid parameter {name!r} in param_distributions of {owner}. "
                    f"Valid parameters are: {sorted(valid_names)!r}."
                )
            self.distributions[name] = self._convert(name, value, owner)

    def _convert(self, name, value, owner) -> BaseDistribution:
        if isinstance(value, BaseDistribution):
            return value
        # As in GridSearchCV: any sequence of values, a one-dimensional array included.
        if isinstance(value, (range, np.ndarray)) and np.ndim(value) == 1:
            value = list(value)
        if not isinstance(value, (list, tuple)):
            raise TypeError(
                f"param_distributions[{name!r}] of {owner} must be a list of values (or a "
                f"tuple, a range, a one-dimensional array) or an optuna distribution "
                f"(FloatDistribution, IntDistribution, CategoricalDistribution); got "
                f"{type(value).__name__}."
            )
        if len(value) == 0:
            raise ValueError(f"param_distributions[{name!r}] of {owner} is an empty list.")
        choices = [_as_choice(v) for v in value]
        if all(isinstance(c, _OPTUNA_CHOICE_TYPES) for c in choices):
            return CategoricalDistribution(choices)
        self._choices[name] = list(value)
        return CategoricalDistribution(list(range(len(value))))

    def fingerprints(self, plain: bool = False) -> dict[str, list[str]]:
        """For each parameter whose choices are stored by position, what they are.

        Each choice is its text with the parameters of the objects in it (a callback's
        clip value, say, which its text hides), as :func:`estimator_settings` writes
        them; ``plain=True``: its text alone, as studies of earlier releases recorded.
        """
        text = fingerprint if plain else _choice_text
        return {name: [text(c) for c in choices] for name, choices in self._choices.items()}

    def decode(self, params: Mapping) -> dict:
        """Parameter values for ``set_params`` from a trial's parameters."""
        decoded = {}
        for name, value in params.items():
            choices = self._choices.get(name)
            if choices is not None and isinstance(value, int) and 0 <= value < len(choices):
                value = choices[value]
            decoded[name] = value
        return decoded
