"""Killed search workers lose nothing: heartbeats, dead trials marked FAIL, resuming.

A worker process runs an OptunaSearchCV whose estimator completes two trials and then
hangs in the third trial's first fit; the test kills it with SIGKILL, waits until the
storage sees the dead trial's heartbeat as stale, and resumes the study in this
process. SQLite and the journal file are checked here (their workers start together,
so their imports overlap); the PostgreSQL case, on the throw-away server of
``test_search_storage.py``, reuses :func:`kill_and_resume`.
"""

import math
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState
from sklearn.datasets import make_classification
from sklearn.linear_model import RidgeClassifier

from sklearn_resnet import OptunaSearchCV
from sklearn_resnet.search_heartbeat import (
    HEARTBEAT_ATTR,
    Heartbeat,
    HeartbeatJournalStorage,
    ask,
    fail_dead_trials,
)
from sklearn_resnet.search_study import RECORD_ATTR, open_storage, resolve_storage

#: Seconds between heartbeats in these tests (grace period: twice that).
INTERVAL = 1
SPACE = {"alpha": FloatDistribution(1e-3, 1e1, log=True)}
#: Trials the worker completes before it hangs mid-trial.
COMPLETED = 2
HANG_WORKER = f"""
import sys, time
from optuna.distributions import FloatDistribution
from sklearn.datasets import make_classification
from sklearn.linear_model import RidgeClassifier
from sklearn_resnet import OptunaSearchCV

storage, name, marker = sys.argv[1:4]


class HangsMidTrial(RidgeClassifier):
    fits = 0

    def fit(self, X, y, sample_weight=None):
        HangsMidTrial.fits += 1
        if HangsMidTrial.fits > 2 * {COMPLETED}:  # 2-fold CV: trial {COMPLETED} hangs
            open(marker, "w").close()
            time.sleep(600)
        return super().fit(X, y, sample_weight)


X, y = make_classification(n_samples=60, n_features=5, random_state=0)
search = OptunaSearchCV(
    HangsMidTrial(), {{"alpha": FloatDistribution(1e-3, 1e1, log=True)}}, n_trials=10, cv=2,
    storage=storage, study_name=name, load_if_exists=True, heartbeat_interval={INTERVAL},
    random_state=0,
)
search.fit(X, y)
"""


def dataset():
    return make_classification(n_samples=60, n_features=5, random_state=0)


class Worker:
    """A search process that hangs in the middle of a trial once it completed some."""

    def __init__(self, storage, study_name, directory):
        self.storage, self.study_name = storage, study_name
        self.marker = os.path.join(directory, f"{study_name}.hanging")
        self.log_path = os.path.join(directory, f"{study_name}.stderr")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", HANG_WORKER, storage, study_name, self.marker],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )

    def wait_hanging(self, timeout=180):
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.marker):
            if self.process.poll() is not None:
                with open(self.log_path) as log:
                    pytest.fail(f"the worker exited with {self.process.returncode}:\n{log.read()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the worker did not reach its hanging trial in {timeout} s")
            time.sleep(0.05)

    def kill(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def open_study(storage, study_name):
    """The study, through a storage judging heartbeats as the searches of these tests do."""
    opened = open_storage(resolve_storage(storage, heartbeat_interval=INTERVAL), INTERVAL)
    return optuna.load_study(study_name=study_name, storage=opened)


def wait_stale(study, trial, timeout=30):
    """Poll until the storage sees ``trial``'s last heartbeat as older than the grace."""
    deadline = time.monotonic() + timeout
    while trial._trial_id not in study._storage._get_stale_trial_ids(study._study_id):
        assert time.monotonic() < deadline, "the dead trial's heartbeat never went stale"
        time.sleep(0.1)


def snapshot(study):
    return {
        t.number: (t.state, t.value, t.params, t.user_attrs.get(RECORD_ATTR)) for t in study.trials
    }


def kill_and_resume(worker, n_new=2):
    """Kill ``worker`` mid-trial, resume its study here with ``n_new`` trials, and check
    that nothing finished was lost. Returns the resumed search."""
    worker.wait_hanging()
    study = open_study(worker.storage, worker.study_name)
    before = snapshot(study)
    running = [n for n, (state, *_) in before.items() if state == TrialState.RUNNING]
    complete = [n for n, (state, *_) in before.items() if state == TrialState.COMPLETE]
    assert running == [COMPLETED] and complete == list(range(COMPLETED))
    # Alive, the hanging worker keeps beating: nothing is stale yet.
    assert fail_dead_trials(study) == []
    worker.kill()
    assert worker.process.returncode == -signal.SIGKILL
    wait_stale(study, study.trials[COMPLETED])

    X, y = dataset()
    search = OptunaSearchCV(
        RidgeClassifier(),
        SPACE,
        n_trials=n_new,
        cv=2,
        storage=worker.storage,
        study_name=worker.study_name,
        load_if_exists=True,
        heartbeat_interval=INTERVAL,
        random_state=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # resuming is silent
        search.fit(X, y)

    after = snapshot(open_study(worker.storage, worker.study_name))
    n_old = len(before)
    assert sorted(after) == list(range(n_old + n_new))  # no trial lost or duplicated
    for number in complete:
        assert after[number] == before[number]
    state, value, params, record = after[COMPLETED]
    assert (state, value) == (TrialState.FAIL, None)
    # The record it held while running: its splits and scoring, no results.
    assert record["interrupted"] and record["n_splits"] == 2 and record["scoring"] == "default"
    assert all(math.isnan(v) for v in record["test"]["score"] + record["fit_time"])
    assert params == before[COMPLETED][2]
    new = list(range(n_old, n_old + n_new))
    assert search.trial_numbers_ == new and search.n_trials_ == n_new
    assert all(after[n][0] == TrialState.COMPLETE for n in new)

    results = search.cv_results_
    assert list(results["trial_number"]) == list(range(n_old + n_new))
    assert list(results["status"]) == ["COMPLETE"] * COMPLETED + ["FAIL"] + ["COMPLETE"] * n_new
    for number in complete + new:
        assert math.isclose(results["mean_test_score"][number], after[number][1])
    dead = COMPLETED
    assert results["params"][dead] == params
    assert np.isnan(results["mean_test_score"][dead]) and np.isnan(results["mean_fit_time"][dead])
    assert results["rank_test_score"][dead] == n_old + n_new
    return search


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """SQLite and journal-file workers, started together; killed at the end if alive."""
    directory = tmp_path_factory.mktemp("killed")
    started = {
        "sqlite": Worker(f"sqlite:///{directory / 'search.db'}", "sqlite", str(directory)),
        "journal": Worker(str(directory / "search.jsonl"), "journal", str(directory)),
    }
    yield started
    for worker in started.values():
        worker.kill()


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_killed_worker_loses_nothing(workers, kind):
    search = kill_and_resume(workers[kind])
    assert is_heartbeat_enabled(search.study_._storage)


# ---- heartbeats in this process ---------------------------------------------------------------
def _search(storage, **kwargs):
    return OptunaSearchCV(RidgeClassifier(), SPACE, cv=2, storage=storage, **kwargs)


def test_only_trials_with_a_stale_heartbeat_are_failed(tmp_path):
    """Running trials whose heartbeat is recent, or that never beat, are left alone."""
    path = str(tmp_path / "study.jsonl")
    X, y = dataset()
    _search(path, n_trials=1, study_name="s", random_state=0).fit(X, y)
    study = open_study(path, "s")
    dead, fresh, _silent = (ask(study, SPACE) for _ in range(3))
    storage = study._storage
    storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - 1000)
    storage.record_heartbeat(fresh._trial_id)
    # Resume with the default interval: grace 60 s, far from the fresh heartbeat.
    search = _search(path, n_trials=1, study_name="s", load_if_exists=True).fit(X, y)
    states = [t.state for t in open_study(path, "s").trials]
    assert states == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.RUNNING,
        TrialState.RUNNING,
        TrialState.COMPLETE,
    ]
    # Rows: every finished trial, the dead one with NaN scores; running ones are not rows.
    assert list(search.cv_results_["trial_number"]) == [0, 1, 4]
    assert list(search.cv_results_["status"]) == ["COMPLETE", "FAIL", "COMPLETE"]
    assert search.cv_results_["params"][1] == dead.params
    assert np.isnan(search.cv_results_["split0_test_score"][1])
    assert search.trial_numbers_ == [4]
    assert fail_dead_trials(open_study(path, "s")) == []  # nothing more to fail


class MarkedDeadWhileFitting(RidgeClassifier):
    """Fits while another worker (wrongly) marks every running trial of the study FAIL."""

    def __init__(self, alpha=1.0, path=None):
        super().__init__(alpha=alpha)
        self.path = path

    def fit(self, X, y, sample_weight=None):
        storage = resolve_storage(self.path)
        for study in storage.get_all_studies():
            for trial in storage.get_all_trials(study._study_id, states=(TrialState.RUNNING,)):
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        time.sleep(0.3)  # a few heartbeats of the (now failed) trial
        return super().fit(X, y, sample_weight)


def test_a_trial_failed_by_another_worker_is_logged_not_raised(tmp_path, caplog):
    path = str(tmp_path / "study.jsonl")
    X, y = dataset()
    search = _search(path, n_trials=1, refit=False, heartbeat_interval=0.05)
    search.set_params(estimator=MarkedDeadWhileFitting(path=path))
    no_score = r"None of the 1 trials .* completed \(0 pruned, 1 failed\)"
    with (
        caplog.at_level("WARNING", logger="sklearn_resnet"),
        pytest.warns(UserWarning, match=no_score),
    ):
        search.fit(X, y)
    # One warning, at the end; the heartbeats of the failed trial just stop.
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("Trial 0 was marked FAIL by another")
    assert list(search.cv_results_["status"]) == ["FAIL"]
    assert np.isnan(search.cv_results_["mean_test_score"][0])


class LeavesADeadTrialWhileFitting(RidgeClassifier):
    """Fits while a worker of the same study dies: its trial is left RUNNING with a
    heartbeat long stale (once, in the search's only trial)."""

    def __init__(self, alpha=1.0, path=None):
        super().__init__(alpha=alpha)
        self.path = path

    def fit(self, X, y, sample_weight=None):
        study = open_study(self.path, "s")
        if len(study.trials) == 1:
            dead = ask(study, SPACE)
            study._storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - 1000)
        return super().fit(X, y, sample_weight)


def test_a_worker_that_dies_during_the_last_batch_is_failed_before_the_results(tmp_path):
    path = str(tmp_path / "study.jsonl")
    X, y = dataset()
    search = _search(path, n_trials=1, study_name="s", random_state=0)
    search.set_params(estimator=LeavesADeadTrialWhileFitting(path=path))
    search.fit(X, y)
    assert [t.state for t in search.study_.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert list(search.cv_results_["status"]) == ["COMPLETE", "FAIL"]


def test_heartbeat_thread_beats_until_the_batch_ends(tmp_path):
    storage = HeartbeatJournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")),
        heartbeat_interval=0.1,
    )
    study = optuna.create_study(storage=storage)
    trial = ask(study, None)
    beats = set()
    with Heartbeat(storage, [trial._trial_id]) as heartbeat:
        assert heartbeat.enabled
        deadline = time.monotonic() + 10
        while len(beats) < 3 and time.monotonic() < deadline:
            beats.add(storage.get_trial(trial._trial_id).system_attrs[HEARTBEAT_ATTR])
            time.sleep(0.02)
    assert len(beats) >= 3  # the first beat on entry, then one per interval
    last = storage.get_trial(trial._trial_id).system_attrs[HEARTBEAT_ATTR]
    time.sleep(0.3)
    assert storage.get_trial(trial._trial_id).system_attrs[HEARTBEAT_ATTR] == last


def test_heartbeat_settings_of_the_storages(tmp_path):
    X, y = dataset()
    url = f"sqlite:///{tmp_path / 'search.db'}"
    default = _search(url, n_trials=1).fit(X, y)
    assert default.study_._storage.get_heartbeat_interval() == 30
    off = _search(str(tmp_path / "search.log"), n_trials=1, heartbeat_interval=None).fit(X, y)
    assert not is_heartbeat_enabled(off.study_._storage)
    # Memory studies have no heartbeat; journal storages keep theirs through pickling
    # (parallel fits receive the storage pickled).
    assert not is_heartbeat_enabled(_search(None, n_trials=1).fit(X, y).study_._storage)
    journal = resolve_storage(str(tmp_path / "other.jsonl"), heartbeat_interval=5)
    assert pickle.loads(pickle.dumps(journal)).get_heartbeat_interval() == 5
    with pytest.raises(ValueError, match="'heartbeat_interval' parameter of OptunaSearchCV"):
        _search(url, n_trials=1, heartbeat_interval=0).fit(X, y)
