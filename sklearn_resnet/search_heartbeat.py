"""Heartbeats of running trials, and the trials of killed search workers marked as failed.

While :class:`~sklearn_resnet.OptunaSearchCV` cross-validates a batch of trials on a
persistent storage, a background thread of its process records each trial's heartbeat
in the storage every ``heartbeat_interval`` seconds. A worker that dies without telling
Optuna (``SIGKILL``, out-of-memory killer, power loss) stops beating: once a ``RUNNING``
trial's last heartbeat is older than the grace period (twice the interval), any search
on the study marks it ``FAIL`` when it starts, before each batch and before building
``cv_results_``.

Database storages use Optuna's own heartbeat (``RDBStorage(heartbeat_interval=...,
grace_period=...)`` and :func:`optuna.storages.fail_stale_trials`). Optuna's journal
storage has none; :class:`HeartbeatJournalStorage` adds it, keeping each heartbeat (a
wall-clock time) in a trial system attribute of the journal.
"""

from __future__ import annotations

import logging
import threading
import time

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import TrialState

from .user_warnings import ignoring

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "HEARTBEAT_ATTR",
    "Heartbeat",
    "HeartbeatJournalStorage",
    "ask",
    "fail_dead_trials",
    "grace_period",
]

logger = logging.getLogger("sklearn_resnet")

#: Default seconds between two heartbeats of a running trial.
DEFAULT_HEARTBEAT_INTERVAL = 30.0
#: Trial system attribute holding a journal trial's last heartbeat (seconds since the epoch).
HEARTBEAT_ATTR = "sklearn_resnet:heartbeat"
_ASK_WARNING = "Heartbeat of storage is supposed to be used with Study.optimize"


def grace_period(interval: float) -> float:
    """Seconds without a heartbeat after which a running trial counts as dead.

    Examples
    --------
    >>> grace_period(30.0)
    60.0
    """
    return 2.0 * interval


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with heartbeats, kept in the journal itself.

    Parameters
    ----------
    backend : optuna.storages.journal.BaseJournalBackend
        The journal, e.g. a ``JournalFileBackend``.
    heartbeat_interval : float or None, default=None
        Seconds between two heartbeats of a running trial; ``None`` turns heartbeats off.
    grace_period : float or None, default=None
        Seconds without a heartbeat after which a running trial is stale; ``None``:
        twice ``heartbeat_interval``.

    Examples
    --------
    >>> import os, tempfile
    >>> from optuna.storages.journal import JournalFileBackend
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "study.log")
    >>> storage = HeartbeatJournalStorage(JournalFileBackend(path), heartbeat_interval=30)
    >>> storage.get_heartbeat_interval()
    30
    >>> folder.cleanup()
    """

    def __init__(self, backend, heartbeat_interval=None, grace_period=None):
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period

    def record_heartbeat(self, trial_id: int) -> None:
        """Store the current wall-clock time as the trial's heartbeat."""
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        grace = self.grace_period or 2.0 * self.heartbeat_interval
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get(HEARTBEAT_ATTR)
            if beat is not None and now - beat > grace:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self):
        """Seconds between two heartbeats, or ``None`` when heartbeats are off."""
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        """No callback runs for stale trials (``None``)."""
        return None


class Heartbeat:
    """Context manager recording the heartbeats of some trials while it is active.

    The first heartbeat is recorded on entry, the next ones every interval of the
    storage by a daemon thread, until exit. Storages without heartbeats are left alone.
    A heartbeat that cannot be written is logged and retried at the next interval.

    Parameters
    ----------
    storage : optuna storage
        The study's storage (``study._storage``).
    trial_ids : list of int
        Storage ids of the running trials.

    Examples
    --------
    >>> storage = optuna.storages.InMemoryStorage()
    >>> with Heartbeat(storage, [0]) as beat:  # no heartbeat in memory: nothing runs
    ...     beat.enabled
    False
    """

    def __init__(self, storage, trial_ids):
        self.storage = storage
        self.trial_ids = list(trial_ids)
        self.enabled = is_heartbeat_enabled(storage)
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.enabled:
            self._beat()
            self._thread = threading.Thread(
                target=self._run, name="sklearn-resnet-heartbeat", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        interval = self.storage.get_heartbeat_interval()
        while not self._stop.wait(interval):
            self._beat()

    def _beat(self) -> None:
        for trial_id in list(self.trial_ids):
            try:
                self.storage.record_heartbeat(trial_id)
            except UpdateFinishedTrialError:  # failed by another worker: nothing to keep alive
                self.trial_ids.remove(trial_id)
            except Exception:  # the next beat retries; a dead storage fails the search itself
                logger.warning("No heartbeat recorded for trial %d.", trial_id, exc_info=True)


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark ``FAIL`` the running trials whose heartbeat is older than the grace period.

    Parameters
    ----------
    study : optuna.Study
        The study; nothing happens when its storage has no heartbeat.

    Returns
    -------
    numbers : list of int
        Numbers of the trials now failed.

    Examples
    --------
    >>> fail_dead_trials(optuna.create_study())
    []
    """
    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return []
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    with ignoring({"category": ExperimentalWarning}):
        optuna.storages.fail_stale_trials(study)
    numbers = [t.number for t in running if storage.get_trial(t._trial_id).state == TrialState.FAIL]
    if numbers:
        logger.info(
            "Trials %s of study %r had no heartbeat for too long (a worker died): marked FAIL.",
            numbers,
            study.study_name,
        )
    return numbers


def ask(study: optuna.Study, distributions) -> optuna.Trial:
    """``study.ask(distributions)``, without Optuna's warning that heartbeats belong to
    ``Study.optimize`` (the search records them itself, with :class:`Heartbeat`)."""
    with ignoring({"message": _ASK_WARNING}):
        return study.ask(distributions)
