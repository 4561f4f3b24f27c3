"""The study behind :class:`~sklearn_resnet.OptunaSearchCV`: storage and trial records.

``storage`` accepts what Optuna accepts (``None`` for memory, database URLs such as
``sqlite:///search.db`` or ``postgresql://user@host/db``, storage objects) plus a file
path ending in ``.log`` or ``.jsonl``, which means a ``JournalFileBackend`` journal.
Storages the search opens itself (URLs and journal paths) record the heartbeats of
running trials (:mod:`sklearn_resnet.search_heartbeat`), so the trials of a killed
worker are marked ``FAIL`` by the next search on the study.

Every trial the search evaluates records its per-split results in the user attribute
``"cv_results"``: test (and train) scores per metric, fit and score times. A later
search on the same study, in this process or another, rebuilds ``cv_results_`` rows
from these records, so a resumed or shared search ranks every trial of the study. A
failed trial without a record (its worker was killed, or its search interrupted) gets a
row of NaN scores and times.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from contextlib import contextmanager

import numpy as np
import optuna
from optuna.distributions import check_distribution_compatibility
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import TrialState

from .search_heartbeat import HeartbeatJournalStorage, grace_period
from .search_space import fingerprint
from .user_warnings import ignoring

__all__ = [
    "RECORD_ATTR",
    "check_comparable",
    "check_resumable",
    "copy_to_memory",
    "create_study",
    "data_digest",
    "failed_record",
    "folds_digest",
    "in_memory",
    "interrupted_record",
    "journal_storage",
    "objective_key",
    "objective_metric",
    "open_storage",
    "quiet_format",
    "quiet_optuna",
    "resolve_storage",
    "results_rows",
    "scored_alike",
    "scoring_key",
    "split_record",
    "stamp",
    "stamped_otherwise",
    "tell",
    "trial_record",
]

#: User attribute holding a trial's per-split cross-validation results.
RECORD_ATTR = "cv_results"
#: Study user attribute of earlier releases: for each parameter whose choices are stored by
#: position, what the choices were. Trials now record them (:func:`stamp`).
CHOICES_ATTR = "sklearn_resnet:choices"
#: Study user attribute of earlier releases: the score the study's trials told Optuna
#: (:func:`objective_key`). Trials now record it (:func:`stamp`).
OBJECTIVE_ATTR = "sklearn_resnet:objective"
_JOURNAL_SUFFIXES = (".log", ".jsonl")
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
#: States of the trials whose values Optuna compares, now or once they finish.
SCORING_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
_SCHEMA_ATTEMPTS = 6


#: Quiet searches running now (in any thread), and Optuna's verbosity before the first.
_quiet = {"searches": 0, "verbosity": None}
_QUIET_LOCK = threading.Lock()


@contextmanager
def quiet_optuna(quiet: bool = True):
    """Optuna's log at WARNING inside the block when ``quiet`` (``verbose=0``), then as before.

    Optuna's verbosity is process-wide. Searches that overlap in several threads share
    one change: the first to start saves the verbosity and the last to end restores it,
    so it is never left at WARNING. While a quiet search runs, Optuna is quiet in every
    thread.
    """
    if not quiet:
        yield
        return
    with _QUIET_LOCK:
        if _quiet["searches"] == 0:
            _quiet["verbosity"] = optuna.logging.get_verbosity()
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        _quiet["searches"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet["searches"] -= 1
            if _quiet["searches"] == 0:
                optuna.logging.set_verbosity(_quiet["verbosity"])


def journal_storage(path, heartbeat_interval=None) -> JournalStorage:
    """A journal storage in the file ``path`` (created when missing).

    Parameters
    ----------
    path : str or path-like
        The journal file.
    heartbeat_interval : float or None, default=None
        Seconds between heartbeats of running trials; ``None``: no heartbeats.

    Returns
    -------
    storage : HeartbeatJournalStorage
        The storage (a ``JournalStorage``).

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> storage = journal_storage(os.path.join(folder.name, "study.log"), 30)
    >>> storage.get_heartbeat_interval()
    30
    >>> folder.cleanup()
    """
    grace = None if heartbeat_interval is None else grace_period(heartbeat_interval)
    return HeartbeatJournalStorage(JournalFileBackend(os.fspath(path)), heartbeat_interval, grace)


def resolve_storage(
    storage, owner: str = "OptunaSearchCV", heartbeat_interval=None, open_journal=True
):
    """What ``optuna.create_study`` takes for the ``storage`` parameter.

    Parameters
    ----------
    storage : None, str, path-like or optuna storage
        ``None`` (memory), a database URL, a ``.log``/``.jsonl`` journal path, or a
        storage object.
    owner : str
        Class name used in error messages.
    heartbeat_interval : float or None, default=None
        Heartbeats of a journal path's storage (a URL's are set by :func:`open_storage`).
    open_journal : bool, default=True
        Open a journal path (which creates the file); ``False`` checks the path and
        returns it as a string, so that nothing is created before the search starts.

    Returns
    -------
    storage : None, str or optuna storage
        ``None``, the URL, the journal path (``open_journal=False``), or a storage object.

    Examples
    --------
    >>> resolve_storage("sqlite:///search.db")
    'sqlite:///search.db'
    """
    if storage is None or isinstance(storage, BaseStorage):
        return storage
    text = os.fspath(storage)
    if "://" in text:
        return text
    if text.endswith(_JOURNAL_SUFFIXES):
        return journal_storage(text, heartbeat_interval) if open_journal else text
    raise ValueError(
        f"The 'storage' parameter of {owner} must be a database URL (sqlite:///file.db, "
        f"postgresql://user@host/db), a journal file path ending in .log or .jsonl, or an "
        f"optuna storage. Got {text!r} instead."
    )


def open_storage(storage, heartbeat_interval=None):
    """Open a database URL as an ``RDBStorage``; other storages are returned as is.

    With ``heartbeat_interval``, the ``RDBStorage`` records heartbeats of running trials
    with that interval and a grace period of twice the interval.

    Workers started together on a fresh database all create Optuna's tables at once;
    the losers of that race get an integrity error, or from SQLite an "already exists"
    or "database is locked" error, and retry (with back-off) once the winner's tables
    are there.
    """
    if not isinstance(storage, str):
        return storage
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

    beats = {}
    if heartbeat_interval is not None:
        beats = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period(heartbeat_interval),
        }
    attempt = 0
    while True:
        try:
            with ignoring({"category": ExperimentalWarning}):
                return optuna.storages.RDBStorage(storage, **beats)
        except (IntegrityError, ProgrammingError, OperationalError) as error:
            if isinstance(error, OperationalError) and not _schema_race(error):
                # An unreachable database or an unreadable file.
                raise _cannot_open(storage, error) from None
            attempt += 1
            if attempt == _SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.1 * 2**attempt)
        except (ArgumentError, ImportError) as error:
            # An unknown dialect or a database driver not installed.
            raise _cannot_open(storage, error) from None


def _cannot_open(storage, error) -> ValueError:
    reason = str(error).strip().splitlines()[0]
    return ValueError(f"The 'storage' {storage!r} cannot be opened: {reason}")


def _schema_race(error) -> bool:
    """Whether SQLite failed because another worker was creating the same tables."""
    message = str(error).lower()
    return "already exists" in message or "database is locked" in message


def in_memory(storage) -> bool:
    """Whether a resolved storage lives only in this process."""
    return storage is None or isinstance(storage, InMemoryStorage)


def create_study(
    storage,
    study_name,
    load_if_exists,
    sampler,
    pruner,
    owner="OptunaSearchCV",
    heartbeat_interval=None,
):
    """Create (or, with ``load_if_exists``, resume) the maximising study of a search.

    A stored study created elsewhere to minimise, or with several objectives, is refused.
    """
    try:
        study = optuna.create_study(
            storage=open_storage(storage, heartbeat_interval),
            sampler=sampler,
            pruner=pruner,
            study_name=study_name,
            direction="maximize",
            load_if_exists=load_if_exists,
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise ValueError(
            f"A study named {study_name!r} already exists in the storage of {owner}. Pass "
            f"load_if_exists=True to resume it, or choose another study_name."
        ) from None
    if study.directions != [StudyDirection.MAXIMIZE]:
        directions = " and ".join(d.name.lower() for d in study.directions)
        raise ValueError(
            f"Study {study.study_name!r} in the storage of {owner} was created to {directions}; "
            f"{owner} maximises one score (higher is better). Pass another study_name."
        )
    return study


def tell(study: optuna.Study, trial, **kwargs) -> bool:
    """``study.tell(trial, **kwargs)``; return whether the sampler asked the search to stop.

    Some samplers end a search from their ``after_trial`` hook with ``study.stop()``
    (``GridSampler`` and ``BruteForceSampler`` once every combination has run), which
    Optuna allows only inside ``Study.optimize``. The search asks and tells outside it,
    so the hook is let through here and the request handed back to the search's loop.
    """
    local = study._thread_local
    inside = getattr(local, "in_optimize_loop", False)
    local.in_optimize_loop, study._stop_flag = True, False
    try:
        study.tell(trial, **kwargs)
    finally:
        local.in_optimize_loop = inside
    stop, study._stop_flag = study._stop_flag, False
    return stop


def scoring_key(scoring) -> str:
    """A text that differs between scorings, stored with every trial's record.

    Examples
    --------
    >>> scoring_key("accuracy"), scoring_key(None), scoring_key(["f1", "accuracy"])
    ('accuracy', 'default', '["accuracy", "f1"]')
    """
    if scoring is None:
        return "default"
    if isinstance(scoring, str):
        return scoring
    if isinstance(scoring, dict):
        named = {str(name): scoring_key(value) for name, value in scoring.items()}
        return json.dumps(named, sort_keys=True)
    if isinstance(scoring, (list, tuple, set)):
        return json.dumps(sorted(str(name) for name in scoring))
    return fingerprint(scoring)


def objective_metric(scoring, refit) -> str | None:
    """Of several metrics, the one a search tells Optuna: ``refit``'s when it names one,
    else the first; ``None`` for one metric (or a callable's unnamed several).

    Examples
    --------
    >>> objective_metric(["f1", "accuracy"], False), objective_metric("accuracy", True)
    ('f1', None)
    """
    if isinstance(scoring, dict | list | tuple | set) and scoring:
        names = [str(name) for name in scoring]
        return refit if isinstance(refit, str) and refit in names else names[0]
    if callable(scoring) and isinstance(refit, str):  # a callable may return several
        return refit
    return None


def objective_key(scoring, refit) -> str:
    """A text that differs between the scores a search tells Optuna.

    That is the ``scoring`` and, of several metrics, the one ``refit`` names, else the
    first.

    Examples
    --------
    >>> objective_key("accuracy", True)
    '{"metric": null, "scoring": "accuracy"}'
    >>> json.loads(objective_key(["f1", "accuracy"], "f1"))["metric"]
    'f1'
    """
    metric = objective_metric(scoring, refit)
    return json.dumps({"metric": metric, "scoring": scoring_key(scoring)}, sort_keys=True)


def data_digest(X, y, params: dict) -> dict:
    """What tells the data of one search from another's: its number of samples and a
    digest of the values of ``X``, ``y`` and the fit parameters (``sample_weight``, ...).

    Values count, not their containers: a list, an array in any memory order, a Series,
    integers and floats of equal value, and strings in a text or an object array give
    one digest (a float32 array is its float32 values, which float64 ones need not
    equal). A DataFrame counts with its column names and kinds of column (a Pipeline may
    select by them), not its index; a sparse matrix counts by its nonzero entries.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.eye(3), [0, 1, 1]
    >>> data_digest(X, y, {}) == data_digest(np.asfortranarray(X), np.array([0.0, 1, 1]), {})
    True
    >>> data_digest(X, y, {}) == data_digest(X, [0, 1, 0], {})
    False
    """
    import joblib

    values = [_data_values(X), _data_values(y)]
    values += [(name, _data_values(value)) for name, value in sorted(params.items())]
    try:
        digest = joblib.hash(values)
    except Exception:  # a fit parameter that cannot be pickled: its text stands in
        digest = joblib.hash([repr(value) for value in values])
    return {"n_samples": _num_samples(X), "digest": digest}


def folds_digest(splits) -> str:
    """A digest of the test samples of each cross-validation split, in order.

    Examples
    --------
    >>> from sklearn.model_selection import KFold
    >>> X = list(range(6))
    >>> folds_digest(KFold(2).split(X)) == folds_digest(KFold(2).split(X))
    True
    >>> folds_digest(KFold(2).split(X)) == folds_digest(KFold(3).split(X))
    False
    """
    import joblib

    return joblib.hash([_array_values(test) for _, test in splits])


def _data_values(data):
    """``data`` in a form whose digest depends only on its values."""
    if data is None or isinstance(data, str | bytes):
        return data
    if hasattr(data, "columns") and hasattr(data, "dtypes"):  # a DataFrame
        return [
            (str(name), _column_kind(column.dtype), _array_values(column))
            for name, column in data.items()
        ]
    if hasattr(data, "tocsr") and hasattr(data, "nnz"):  # a scipy sparse matrix or array
        matrix = data.tocsr(copy=True)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        matrix.sort_indices()
        parts = (matrix.data, matrix.indices, matrix.indptr)
        return [matrix.shape, *(_array_values(part) for part in parts)]
    if hasattr(data, "__array__") or isinstance(data, list | tuple):
        return _array_values(data)
    return data


def _column_kind(dtype) -> str:
    kind = getattr(dtype, "kind", "O")
    return "number" if kind in "biuf" else str(dtype)


def _array_values(data):
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):  # ragged rows, say: kept as they are
        return data
    if array.dtype.kind in "biuf":
        array = array.astype(np.float64)
    elif array.dtype.kind == "U":  # the Python strings of a Series or an object array
        array = array.astype(object)
    return np.ascontiguousarray(array)


def _num_samples(X) -> int | None:
    try:
        return int(X.shape[0]) if hasattr(X, "shape") else len(X)
    except TypeError:
        return None


def stamp(
    scoring, refit, settings: dict, searched, choices: dict, n_splits: int, data=None, folds=None
) -> dict:
    """What makes a trial's scores comparable with another's; every record carries it.

    Parameters
    ----------
    scoring, refit
        The search's ``scoring`` and ``refit`` (:func:`objective_key`).
    settings : dict
        The estimator's parameters as texts
        (:func:`~sklearn_resnet.search_space.estimator_settings`).
    searched : collection of str
        The parameters the search searches.
    choices : dict
        Parameter name to the fingerprints of its choices, for parameters whose choices
        are stored by position.
    n_splits : int
        The number of cross-validation splits.
    data : dict or None, default=None
        The data's :func:`data_digest`; ``None`` for a study that is never resumed.
    folds : str or None, default=None
        The splits' :func:`folds_digest`; ``None`` as for ``data``.
    """
    return {
        "objective": objective_key(scoring, refit),
        "settings": settings,
        "searched": sorted(searched),
        "choices": choices,
        "n_splits": n_splits,
        "data": data,
        "folds": folds,
    }


def check_comparable(study: optuna.Study, mine: dict, owner: str, own=()) -> None:
    """Refuse to add trials to ``study`` whose scores would not compare with its trials'.

    Optuna's sampler and ``best_trial`` compare the values of every trial, and the
    search refits the best one with the estimator it has now, so the trials of one study
    must tell the same score of the same settings. Each trial records its :func:`stamp`
    from the moment it is asked; a search whose stamp differs from that of a trial that
    completed, was pruned or is running (a worker starting now) is refused. Failed
    trials tell Optuna nothing and do not count, except for the meaning of their
    positions. The search calls this before asking any trial and again once its first
    trials carry its stamp (trial numbers in ``own``): of two workers starting together
    with different settings, at least one sees the other's running trials and is
    refused. Trials of earlier releases, without a stamp, are judged by the study's
    recorded objective and positions, or else their scorings.

    Parameters
    ----------
    study : optuna.Study
        The study about to be extended.
    mine : dict
        The stamp of this search (:func:`stamp`).
    owner : str
        Class name used in error messages.
    own : collection of int, default=()
        Numbers of this search's trials, which are not compared.
    """
    stamped, legacy = [], []
    for trial in study.get_trials(deepcopy=False):
        record = trial_record(trial)
        if trial.number in own or record is None or record.get("refused"):
            continue
        (stamped if "objective" in record else legacy).append((trial, record))
    for trial, record in stamped:
        _check_choices(
            study, trial, record.get("choices", {}), mine["choices"], mine["searched"], owner
        )
    # Trials of earlier releases (and the study's record of their score) always count.
    done = [r for trial, r in legacy if trial.state == TrialState.COMPLETE]
    _check_legacy_objective(study, mine["objective"], done, owner)
    # Trials whose values Optuna compares, now or once they finish.
    stamped = [(trial, record) for trial, record in stamped if trial.state in SCORING_STATES]
    for _, record in stamped:
        if record["objective"] != mine["objective"]:
            _refuse_objective(study, mine["objective"], record["objective"], owner)
    for trial, record in stamped:
        differences = _differences(
            trial, record.get("settings", {}), mine["settings"], mine["searched"]
        )
        if differences:
            raise ValueError(
                f"Trial {trial.number} of study {study.study_name!r} {_scored(trial)} with "
                f"other settings than the estimator of {owner} has: {'; '.join(differences)}. "
                "The search would rank both settings' scores as one and refit the best trial "
                "with the settings of now. Resume with the same estimator and settings, or "
                "pass another study_name."
            )
    for trial, record in stamped:
        if _other_splits(record, mine):
            raise ValueError(
                f"Trial {trial.number} of study {study.study_name!r} {_scored(trial)} on "
                f"{record['n_splits']} cross-validation splits, and {owner} scores on "
                f"{mine['n_splits']}: Optuna's sampler and best trial would compare the two as "
                "one score. Resume with the same cv, or pass another study_name."
            )
    for trial, record in stamped:
        if _other_data(record, mine):
            theirs = record["data"]
            raise ValueError(
                f"Trial {trial.number} of study {study.study_name!r} {_scored(trial)} on other "
                f"data than {owner} is fitted on ({theirs['n_samples']} samples then, "
                f"{mine['data']['n_samples']} now, or other values of X, y or the fit "
                "parameters): the search would rank scores of both as one. Resume with the "
                "same data, or pass another study_name."
            )
    for trial, record in stamped:
        if _other_folds(record, mine):
            raise ValueError(
                f"Trial {trial.number} of study {study.study_name!r} {_scored(trial)} on other "
                f"cross-validation folds of the same data than {owner} draws now (a splitter "
                "shuffled without a random_state draws new folds at every fit), so their "
                "scores would differ by the folds alone. Pass cv as an int or a splitter with "
                "a fixed random_state, or pass another study_name."
            )


def stamped_otherwise(trial, record: dict, mine: dict) -> bool:
    """Whether a trial's record carries a stamp of another score, settings or data than
    ``mine`` (a record of an earlier release, without a stamp, does not)."""
    if "objective" not in record:
        return False
    if record["objective"] != mine["objective"]:
        return True
    if _differences(trial, record.get("settings", {}), mine["settings"], mine["searched"]):
        return True
    return _other_splits(record, mine) or _other_data(record, mine) or _other_folds(record, mine)


def _other_splits(record: dict, mine: dict) -> bool:
    """Whether a stamped record was scored on another number of splits than ``mine``."""
    return record["n_splits"] != mine["n_splits"]


def _other_data(record: dict, mine: dict) -> bool:
    """Whether a stamped record was scored on other data than ``mine`` (either digest
    missing: a study in memory, or a record from before digests: no)."""
    theirs, data = record.get("data"), mine["data"]
    return bool(theirs and data) and theirs["digest"] != data["digest"]


def _other_folds(record: dict, mine: dict) -> bool:
    """Whether a stamped record was scored on other folds than ``mine`` draws."""
    theirs, folds = record.get("folds"), mine["folds"]
    return theirs is not None and folds is not None and theirs != folds


def _scored(trial) -> str:
    if trial.state == TrialState.RUNNING:
        return "is being scored (by another worker, or one that died without a heartbeat)"
    return "was scored"


def _refuse_objective(study, key: str, stored: str, owner: str):
    raise ValueError(
        f"{owner} would optimise {_describe_objective(key)} in study {study.study_name!r}, "
        f"whose trials optimised {_describe_objective(stored)}: Optuna's sampler and best "
        "trial would compare the two as one score. Resume with the same scoring and refit, "
        "or pass another study_name."
    )


def _describe_objective(key: str) -> str:
    try:
        objective = json.loads(key)
        scoring, metric = objective["scoring"], objective["metric"]
    except (ValueError, TypeError, KeyError):  # written by another tool
        return f"the objective recorded as {key!r}"
    text = "the estimator's own score method" if scoring == "default" else f"scoring={scoring}"
    return text + (f" (metric {metric})" if metric else "")


def _check_legacy_objective(study, key: str, done: list, owner: str) -> None:
    """The objective check of earlier releases: the study's record, else the scorings of
    the completed trials' records ``done``."""
    stored = study.user_attrs.get(OBJECTIVE_ATTR)
    if not isinstance(stored, str):
        old = {r.get("scoring") for r in done} - {None}
        if not old or old == {json.loads(key)["scoring"]}:
            return
        stored = json.dumps({"metric": None, "scoring": " and ".join(sorted(old))})
    if stored != key:
        _refuse_objective(study, key, stored, owner)


def _check_choices(study, trial, theirs: dict, mine: dict, searched, owner: str) -> None:
    """Refuse positions that would rebuild another value than the trial's."""
    for name in trial.params:
        searched_now = name in searched
        if name in theirs and name in mine and theirs[name] != mine[name]:
            then, now = _where_they_differ(str(theirs[name]), str(mine[name]), after=80)
            raise ValueError(
                f"param_distributions[{name!r}] of {owner} lists other values, or the same in "
                f"another order, than when study {study.study_name!r} was searched: "
                f"{then} then, {now} now. Its trials record these values by "
                "position, so resume with the same list in the same order, or pass another "
                "study_name."
            )
        if name in theirs and name not in mine:
            _refuse_positions(study, name, theirs[name], owner, searched_now)
        if name in mine and name not in theirs:
            raise ValueError(
                f"Trial {trial.number} of study {study.study_name!r} searched {name!r} over "
                f"plain values, and param_distributions of {owner} lists values recorded by "
                f"position for it: its value {trial.params[name]!r} would be read as a "
                f"position. Search {name!r} as before, or pass another study_name."
            )


def _refuse_positions(study, name: str, positions, owner: str, in_space: bool):
    left = "lists plain values for" if in_space else "leaves out"
    raise ValueError(
        f"The trials of study {study.study_name!r} searched {name!r} over values they "
        f"record by position ({positions}), and param_distributions of {owner} {left} "
        f"it, so those trials' values cannot be rebuilt (nor refitted). Search {name!r} "
        "with the same list in the same order, or pass another study_name."
    )


def _differences(trial, theirs: dict, mine: dict, searched, limit: int = 3) -> list[str]:
    """How the trial's settings differ from ``mine``, as far as its refit would notice.

    A parameter the trial searched is refitted with the trial's value, so only its being
    fixed now differs; any other is refitted with the estimator's value of now.
    """
    differences = []
    for name in sorted(set(theirs) & set(mine)):
        if name in trial.params:
            if name not in searched:
                differences.append(f"{name} was searched, it is fixed at {mine[name]} now")
        elif theirs[name] != mine[name]:
            old, new = _where_they_differ(theirs[name], mine[name])
            differences.append(f"{name} was {old}, it is {new} now")
    if len(differences) > limit:
        differences[limit:] = [f"{len(differences) - limit} more"]
    for names, wording in [
        (sorted(set(theirs) - set(mine)), "the estimator of now has no parameter"),
        (sorted(set(mine) - set(theirs)), "the trial's estimator had no parameter"),
    ]:
        if names:
            more = f" and {len(names) - limit} more" if len(names) > limit else ""
            differences.append(f"{wording} {', '.join(names[:limit])}{more}")
    return differences


def _where_they_differ(old: str, new: str, before: int = 20, after: int = 40) -> tuple[str, str]:
    """Two settings' texts, shortened to where they differ when they are long.

    Examples
    --------
    >>> _where_they_differ("[EarlyStopping(patience=5)]", "[EarlyStopping(patience=50)]")
    ('[EarlyStopping(patience=5)]', '[EarlyStopping(patience=50)]')
    >>> _where_they_differ("x" * 100 + "a", "x" * 100 + "b")
    ('...xxxxxxxxxxxxxxxxxxxxa', '...xxxxxxxxxxxxxxxxxxxxb')
    """
    if old.startswith("sha1:") or new.startswith("sha1:"):  # one is too long to store
        return "a long value", "another one"
    if len(old) <= before + after and len(new) <= before + after:
        return old, new
    start = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), None)
    start = min(len(old), len(new)) if start is None else start

    def excerpt(text: str) -> str:
        head = "..." if start > before else ""
        tail = "..." if len(text) > start + after else ""
        return head + text[max(0, start - before) : start + after] + tail

    return excerpt(old), excerpt(new)


def check_resumable(study: optuna.Study, distributions: dict, choices: dict, owner: str) -> None:
    """Refuse to add trials to ``study`` from a space its earlier trials do not fit.

    Optuna refuses a changed categorical list only when it asks for a trial, leaving
    that trial running for good, so changed distributions are checked here, before any
    trial. Choices stored by position (estimators, tuples) would silently take another
    meaning if the list were reordered: trials record them (:func:`check_comparable`),
    and the study's record of earlier releases is checked here.

    Parameters
    ----------
    study : optuna.Study
        The study about to be extended.
    distributions : dict
        Parameter name to the Optuna distribution of this search.
    choices : dict
        Parameter name to the fingerprints of its choices, for parameters whose choices
        are stored by position.
    owner : str
        Class name used in error messages.
    """
    for trial in study.get_trials(deepcopy=False):
        for name, old in trial.distributions.items():
            new = distributions.get(name)
            if new is None:
                continue
            try:
                check_distribution_compatibility(old, new)
            except ValueError as error:
                raise ValueError(
                    f"param_distributions[{name!r}] of {owner} does not fit the trials "
                    f"already in study {study.study_name!r} ({error} It was {old}, it is now "
                    f"{new}.) Resume with the same distribution, or pass another study_name."
                ) from None
    stored = study.user_attrs.get(CHOICES_ATTR, {})
    searched = {name for trial in study.get_trials(deepcopy=False) for name in trial.params}
    for name in sorted(searched & set(stored)):
        if name not in choices:
            _refuse_positions(study, name, stored[name], owner, name in distributions)
    for name, values in choices.items():
        if name in stored and stored[name] != values:
            raise ValueError(
                f"param_distributions[{name!r}] of {owner} lists other values, or the same "
                f"in another order, than when study {study.study_name!r} was first searched: "
                f"{stored[name]} then, {values} now. Its trials record these values by "
                "position, so resume with the same list in the same order, or pass another "
                "study_name."
            )


def copy_to_memory(study: optuna.Study) -> optuna.Study:
    """A copy of ``study`` in a fresh in-memory storage, with the same sampler and pruner."""
    memory = InMemoryStorage()
    optuna.copy_study(
        from_study_name=study.study_name, from_storage=study._storage, to_storage=memory
    )
    return optuna.load_study(
        study_name=study.study_name, storage=memory, sampler=study.sampler, pruner=study.pruner
    )


def _scores(value) -> dict[str, float]:
    if isinstance(value, dict):
        return {name: float(v) for name, v in value.items()}
    return {"score": float(value)}


def split_record(outs: list[dict], return_train_score: bool, scoring: str) -> dict:
    """The record of one trial from scikit-learn's per-split results (``_fit_and_score``)."""
    test = [_scores(out["test_scores"]) for out in outs]
    record = {
        "n_splits": len(outs),
        "scoring": scoring,
        "test": {name: [split[name] for split in test] for name in test[0]},
        "fit_time": [float(out["fit_time"]) for out in outs],
        "score_time": [float(out["score_time"]) for out in outs],
        "failed": [out.get("fit_error") is not None for out in outs],
    }
    if return_train_score:
        train = [_scores(out["train_scores"]) for out in outs]
        record["train"] = {name: [split[name] for split in train] for name in train[0]}
    return record


def failed_record(n_splits, metrics, error_score, fit_time, return_train_score, scoring) -> dict:
    """The record of a trial whose fits all failed."""
    scores = {name: [float(error_score)] * n_splits for name in metrics}
    record = {
        "n_splits": n_splits,
        "scoring": scoring,
        "test": scores,
        "fit_time": [float(fit_time)] * n_splits,
        "score_time": [0.0] * n_splits,
        "failed": [True] * n_splits,
    }
    if return_train_score:
        record["train"] = scores
    return record


def interrupted_record(n_splits, metrics, return_train_score, scoring) -> dict:
    """The record of a failed trial that recorded no results: its worker was killed or
    its search interrupted. Scores and times are unknown (NaN).

    A trial holds it from its start until its results are told, so a trial whose worker
    dies keeps it, and its row is shown only to searches with the same splits and scoring.
    """
    record = failed_record(n_splits, metrics, math.nan, math.nan, return_train_score, scoring)
    record["score_time"] = [math.nan] * n_splits
    record["interrupted"] = True
    return record


def _row_outs(record, state, metrics, return_train_score, fill):
    """Per-split entries in the form scikit-learn's ``_format_results`` takes."""
    n_splits = record["n_splits"]
    masked = state == TrialState.PRUNED

    def scores(part, split):
        values = {}
        for name in metrics:
            column = record.get(part, {}).get(name)
            value = fill if column is None else column[split]
            values[name] = math.nan if masked else value
        return values if metrics != ["score"] else values["score"]

    outs = []
    for split in range(n_splits):
        out = {
            "fit_error": None,
            "test_scores": scores("test", split),
            "n_test_samples": 0,
            "fit_time": record["fit_time"][split],
            "score_time": record["score_time"][split],
        }
        if return_train_score:
            out["train_scores"] = scores("train", split)
        outs.append(out)
    return outs


def results_rows(
    study,
    decode,
    n_splits,
    metrics,
    return_train_score,
    own,
    error_score,
    names=None,
    scoring=None,
    stamp=None,
):
    """Parameters, per-split entries and extra columns of every finished trial.

    A trial is included when it carries a record for ``n_splits`` splits, the
    ``metrics`` and the ``scoring`` (a record without a scoring, from an earlier
    release, matches any; trials of this fit, numbers in ``own``, are always included;
    metrics they lack hold ``error_score``), or when it failed without a record and its
    parameters are exactly ``names`` (the search space): such a trial's worker was
    killed, and its scores and times are NaN, as are those of a trial that kept its
    running record. A trial whose record carries another :func:`stamp` than ``stamp``
    (a failed trial of other settings: others are refused before the search) is left
    out. Rows are in trial-number order.

    Returns
    -------
    params, outs, more, only_expected_nan : list, list, dict, bool
        Candidate parameters, per-split entries (candidate-major), the extra
        ``trial_number`` and ``status`` columns, and whether every non-finite score
        belongs to a pruned trial or to a failed trial without a record, or is a train
        score of an earlier trial that recorded none.
    """
    params, outs, numbers, states = [], [], [], []
    only_expected_nan = True
    for trial in sorted(study.get_trials(deepcopy=False, states=_FINISHED), key=_number):
        record = trial_record(trial)
        if record and (
            record.get("refused") or (stamp and stamped_otherwise(trial, record, stamp))
        ):
            continue
        if not record:
            if trial.state != TrialState.FAIL or names is None or set(trial.params) != names:
                continue
            record = interrupted_record(n_splits, metrics, return_train_score, scoring)
        interrupted = bool(record.get("interrupted"))
        if not scored_alike(record, n_splits, scoring):
            continue
        mine = trial.number in own
        if not mine and not set(metrics) <= set(record.get("test", {})):
            continue
        fill = error_score if mine else math.nan
        rows = _row_outs(record, trial.state, metrics, return_train_score, fill)
        # An earlier trial that recorded no train scores has NaN ones here, by design.
        parts = ("test_scores", "train_scores") if "train" in record or mine else ("test_scores",)
        if trial.state != TrialState.PRUNED and not interrupted and not _all_finite(rows, parts):
            only_expected_nan = False
        params.append(decode(trial.params))
        outs.extend(rows)
        numbers.append(trial.number)
        states.append(trial.state.name)
    more = {"trial_number": numbers, "status": np.array(states, dtype=object)}
    return params, outs, more, only_expected_nan


def trial_record(trial) -> dict | None:
    """A trial's cross-validation record, or None if it has none.

    Trials of other tools may use the attribute's name for something else (a list of
    fold scores, say); those count as trials without a record.
    """
    record = trial.user_attrs.get(RECORD_ATTR)
    return record if isinstance(record, dict) and "n_splits" in record else None


def scored_alike(record: dict, n_splits, scoring: str | None) -> bool:
    """Whether a trial's ``record`` holds scores of ``n_splits`` splits with ``scoring``
    (a record without a scoring, from an earlier release, matches any)."""
    return record.get("n_splits") == n_splits and record.get("scoring", scoring) == scoring


def _number(trial) -> int:
    return trial.number


def _all_finite(rows, parts=("test_scores", "train_scores")) -> bool:
    for out in rows:
        for key in parts:
            value = out.get(key, 0.0)
            values = value.values() if isinstance(value, dict) else [value]
            if not all(math.isfinite(v) for v in values):
                return False
    return True


def quiet_format(format_results, only_expected_nan: bool):
    """Call ``format_results``, without scikit-learn's non-finite warning when only
    pruned trials, failed trials without a record and the train scores of trials that
    recorded none (whose scores are NaN by design) are non-finite."""
    if not only_expected_nan:
        return format_results()
    with ignoring({"message": "One or more of the .* scores are non-finite"}):
        return format_results()
