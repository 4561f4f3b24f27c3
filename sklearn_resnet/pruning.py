"""Pruning inside cross-validation: our estimators report to the trial they evaluate.

:class:`~sklearn_resnet.OptunaSearchCV` adds an :class:`EpochReporter` to the
``callbacks`` of the estimator (or of a Pipeline's final step) for the fits of one
trial. Each fit (one per CV fold) takes the next fold number of its trial when it
starts, so fits run one after another (``n_jobs=1``) are numbered as the CV splits;
parallel fits that start at the same moment may swap numbers. After every epoch the
fit stores its validation score in the trial and the study's pruner judges this fold
against the same fold of the other trials, at the same epoch (steps are 1-based
epochs). Only trials scored on as many splits with the same scoring take part, and the
records a pruner keeps per trial (the rungs of successive halving and Hyperband) are
kept per fold. The trial's own intermediate value at an epoch is the mean over its
folds that reached it. Once one fold prunes the trial, every fold of the trial stops
after its current epoch.

The reports go through the study's storage, so fits running in other processes
(joblib workers, other machines) reach the same trial: in this process the live study
is used, elsewhere the study is loaded once per process from its storage.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import optuna

from .search_study import scored_alike, trial_record
from .stopping import PRUNED, StopTraining
from .training import Callback

__all__ = [
    "FOLD_ATTR",
    "PRUNED_ATTR",
    "EpochReporter",
    "StudyHandle",
    "claim_fold",
    "live_study",
    "report",
]

logger = logging.getLogger("sklearn_resnet")

#: Trial system attribute marking a pruned trial (value: the epoch of the decision).
PRUNED_ATTR = "sklearn_resnet:pruned"
#: Prefix of the trial system attributes holding each fold's validation scores.
FOLD_ATTR = "sklearn_resnet:fold:"
#: Prefix of the per-fold copies of the attributes pruners keep on a trial; Optuna's
#: successive halving and Hyperband keep ``completed_rung_<i>`` there.
_PER_FOLD_ATTR = "sklearn_resnet:fold-attr:"
_PRUNER_ATTR_PREFIX = "completed_rung_"

_LIVE: dict[str, optuna.Study] = {}
_LOADED: OrderedDict[str, optuna.Study] = OrderedDict()
_LOADED_MAX = 4
_LOCK = threading.Lock()


@contextmanager
def live_study(token: str, study: optuna.Study):
    """Make ``study`` reachable by :class:`StudyHandle` ``token`` in this process."""
    with _LOCK:
        _LIVE[token] = study
    try:
        yield
    finally:
        with _LOCK:
            _LIVE.pop(token, None)


@dataclass(frozen=True)
class StudyHandle:
    """How a fit, in any process, reaches the study of the search.

    Parameters
    ----------
    token : str
        Unique per search fit; names the live study in the search's own process.
    study_name : str
        Name of the study in its storage.
    storage : str or optuna storage or None
        What :func:`optuna.load_study` accepts, for other processes; ``None`` when
        the study lives only in the search's process.
    pruner : optuna pruner
        The study's pruner, for copies loaded in other processes.

    Examples
    --------
    >>> import optuna
    >>> handle = StudyHandle("t", "s", None, optuna.pruners.MedianPruner())
    >>> handle.study() is None  # not live here and no storage to load it from
    True
    """

    token: str
    study_name: str
    storage: object
    pruner: optuna.pruners.BasePruner

    def __deepcopy__(self, memo):
        # Shared, not copied: scikit-learn deep-copies parameters (and so the callbacks).
        return self

    def study(self) -> optuna.Study | None:
        """The live study in this process, else the study loaded from the storage."""
        with _LOCK:
            study = _LIVE.get(self.token)
            if study is None:
                study = _LOADED.get(self.token)
        if study is not None or self.storage is None:
            return study
        study = optuna.load_study(
            study_name=self.study_name,
            storage=self.storage,
            pruner=self.pruner,
            sampler=optuna.samplers.RandomSampler(),  # fits never sample
        )
        with _LOCK:
            _LOADED[self.token] = study
            while len(_LOADED) > _LOADED_MAX:
                _LOADED.popitem(last=False)
        return study


def claim_fold(study: optuna.Study, trial_id: int) -> str:
    """Number the fit starting now among its trial's fits; return its storage key."""
    storage = study._storage
    with _LOCK:  # fits in threads of one process are numbered one at a time
        attrs = storage.get_trial(trial_id).system_attrs
        index = sum(key.startswith(FOLD_ATTR) for key in attrs)
        key = f"{FOLD_ATTR}{index}:{uuid.uuid4().hex}"
        storage.set_trial_system_attr(trial_id, key, [])
    return key


def _fold_index(key: str) -> int:
    return int(key[len(FOLD_ATTR) :].split(":", 1)[0])


def _fold_curve(trial, index: int) -> dict[int, float] | None:
    """Fold ``index``'s score per epoch (mean over fits sharing that number), or None."""
    curves = [
        v
        for k, v in trial.system_attrs.items()
        if k.startswith(FOLD_ATTR) and _fold_index(k) == index
    ]
    if not curves:
        return None
    length = max(len(c) for c in curves)
    means = {}
    for epoch in range(1, length + 1):
        values = [c[epoch - 1] for c in curves if len(c) >= epoch]
        means[epoch] = math.fsum(values) / len(values)
    return means


def _comparable(record: dict | None, judged: dict | None) -> bool:
    """Whether a trial with cross-validation ``record`` was scored like the judged one
    (as ``results_rows`` decides which trials ``cv_results_`` shows)."""
    if not record or not judged:  # no record: another tool's trial, or an older release's
        return True
    return scored_alike(record, judged.get("n_splits"), judged.get("scoring"))


class _FoldStorage:
    """The study's storage as a pruner sees it when judging fold ``index``.

    Every trial with fold records shows its fold ``index`` scores as intermediate
    values and its fold ``index`` pruner records (written back under a per-fold key),
    so successive halving's rungs are kept per fold. Trials of ours without that fold,
    or scored on other splits or with another scoring (a resumed study), are left
    out; trials without fold records (from other tools) are shown as they are.
    """

    def __init__(self, storage, index: int, judged: dict | None):
        self._fold_storage = storage
        self._fold_index = index
        self._judged = judged

    def __getattr__(self, name):
        return getattr(self._fold_storage, name)

    def _per_fold_key(self, key: str) -> str:
        return f"{_PER_FOLD_ATTR}{self._fold_index}:{key}"

    def view(self, trial, curve: dict[int, float]):
        """``trial`` as seen from this fold, with ``curve`` as its intermediate values."""
        view = copy.copy(trial)
        view.intermediate_values = curve
        prefix = self._per_fold_key("")
        attrs = {k: v for k, v in trial.system_attrs.items() if not _kept_per_fold(k)}
        attrs.update({k[len(prefix) :]: v for k, v in attrs.items() if k.startswith(prefix)})
        view.system_attrs = attrs
        return view

    def _shown(self, trial):
        if not any(k.startswith(FOLD_ATTR) for k in trial.system_attrs):
            return trial
        curve = _fold_curve(trial, self._fold_index)
        if curve is None or not _comparable(trial_record(trial), self._judged):
            return None
        return self.view(trial, curve)

    def get_all_trials(self, study_id, deepcopy=True, states=None):
        trials = self._fold_storage.get_all_trials(study_id, deepcopy=False, states=states)
        shown = [t for t in map(self._shown, trials) if t is not None]
        return copy.deepcopy(shown) if deepcopy else shown

    def set_trial_system_attr(self, trial_id, key, value):
        if _kept_per_fold(key):
            key = self._per_fold_key(key)
        self._fold_storage.set_trial_system_attr(trial_id, key, value)


def _kept_per_fold(key: str) -> bool:
    return key.startswith(_PRUNER_ATTR_PREFIX)


class _FoldStudy:
    """The study as the pruner sees it when judging one fold: its trials and storage
    go through a :class:`_FoldStorage`. Everything else is the study itself."""

    def __init__(self, study: optuna.Study, storage: _FoldStorage):
        self._fold_study = study
        self._storage = storage

    def __getattr__(self, name):
        return getattr(self._fold_study, name)

    def get_trials(self, deepcopy: bool = True, states=None):
        return self._storage.get_all_trials(self._study_id, deepcopy=deepcopy, states=states)

    @property
    def trials(self):
        return self.get_trials()


def report(study: optuna.Study, trial_id: int, fold: str, scores: list[float]) -> bool:
    """Store one fold's validation scores and ask the pruner; True means stop.

    Parameters
    ----------
    study : optuna.Study
        The study of the search.
    trial_id : int
        Storage id of the trial being evaluated.
    fold : str
        This fit's key, from :func:`claim_fold`.
    scores : list of float
        This fit's validation score after each epoch so far.

    Returns
    -------
    stop : bool
        Whether the trial is pruned (by this check or by another fold's earlier).
    """
    storage = study._storage
    epoch = len(scores)
    storage.set_trial_system_attr(trial_id, fold, scores)
    trial = storage.get_trial(trial_id)
    curves = [v for k, v in trial.system_attrs.items() if k.startswith(FOLD_ATTR)]
    reached = [curve[epoch - 1] for curve in curves if len(curve) >= epoch]
    storage.set_trial_intermediate_value(trial_id, epoch, math.fsum(reached) / len(reached))
    if trial.system_attrs.get(PRUNED_ATTR) is not None:
        return True
    fold_storage = _FoldStorage(storage, _fold_index(fold), trial_record(trial))
    view = fold_storage.view(trial, dict(enumerate(scores, start=1)))
    if study.pruner.prune(_FoldStudy(study, fold_storage), view):
        storage.set_trial_system_attr(trial_id, PRUNED_ATTR, epoch)
        return True
    return False


class EpochReporter(Callback):
    """Callback reporting the validation score of every epoch to a trial.

    Raises :class:`~sklearn_resnet.stopping.StopTraining` inside the training loop
    when the trial is pruned, which ends training normally (as early stopping does). Fits
    without a validation set (no early stopping) have nothing to report.

    Parameters
    ----------
    handle : StudyHandle
        Where the study is.
    trial_id : int
        Storage id of the trial whose folds this callback's copies report to.

    Examples
    --------
    >>> import optuna
    >>> handle = StudyHandle("t", "s", None, optuna.pruners.MedianPruner())
    >>> EpochReporter(handle, trial_id=0).trial_id
    0
    """

    #: Only fits that hold a validation set out run it (``early_stopping="refit"``
    #: trains its second network without it).
    reads_validation = True

    def __init__(self, handle: StudyHandle | None = None, trial_id: int | None = None):
        self.handle = handle
        self.trial_id = trial_id

    def on_train_begin(self, net, **kwargs):
        study = self.handle.study()
        self.fold_ = None if study is None else claim_fold(study, self.trial_id)
        self.scores_ = []

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        score = row.get("valid_score")
        if score is None or self.fold_ is None:
            return
        if not all(math.isfinite(row.get(key, 0.0)) for key in ("train_loss", "valid_loss")):
            # A diverged epoch is the divergence guard's: it fails the fit when no epoch
            # was finite, else restores the best one and warns; a pruner must not hide it.
            return
        study = self.handle.study()
        self.scores_.append(float(score))
        if report(study, self.trial_id, self.fold_, self.scores_):
            logger.debug("Trial %s pruned at epoch %d.", self.trial_id, len(self.scores_))
            raise StopTraining(PRUNED)
