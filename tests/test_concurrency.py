"""Threads of one process sharing estimators: what one thread does never corrupts another's."""

import os
import pickle
import threading
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from sklearn_resnet import ResNetClassifier, load_model, save_model
from sklearn_resnet.concurrency import estimator_lock, folder_lock

#: A CNN, whose batch normalisation would learn from prediction batches in train mode.
CNN = {
    "depth": 8,
    "width": 8,
    "input_shape": (1, 8, 8),
    "batch_size": 16,
    "early_stopping": False,
    "random_state": 0,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def rows():
    X, y = make_classification(240, 64, n_informative=10, random_state=0)
    return X.astype(np.float32), y


def _in_thread(target):
    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_predicting_while_the_same_model_trains_leaves_the_training_alone(rows):
    X, y = rows
    alone = ResNetClassifier(**CNN).partial_fit(X, y, classes=[0, 1])
    served = ResNetClassifier(**CNN).partial_fit(X, y, classes=[0, 1])
    stop, answers = threading.Event(), []

    def serve():  # requests on other data while the model learns
        while not stop.is_set():
            answers.append(served.predict(X[:32] * 10 + 5))

    server = _in_thread(serve)
    try:
        for _ in range(3):
            served.partial_fit(X, y)
            alone.partial_fit(X, y)
    finally:
        stop.set()
        server.join()
    assert answers  # the server did answer in between
    np.testing.assert_array_equal(served.predict_proba(X), alone.predict_proba(X))


def test_two_fits_of_one_estimator_in_two_threads_run_one_after_the_other(rows):
    X, y = rows
    params = {**CNN, "max_epochs": 2}
    estimator = ResNetClassifier(**params).fit(X, y)
    broken = X.copy()
    broken[0, 0] = np.nan
    labels = np.where(y == 1, "dog", "cat")
    errors = []

    def refused_fits():
        for _ in range(5):
            try:
                estimator.fit(broken, y)
            except ValueError:
                errors.append(1)

    failing = _in_thread(refused_fits)
    estimator.fit(X, labels)  # succeeds, whatever the other thread's failures do
    failing.join()
    assert len(errors) == 5
    assert list(estimator.classes_) == ["cat", "dog"]
    expected = ResNetClassifier(**params).fit(X, labels).predict_proba(X)
    np.testing.assert_array_equal(estimator.predict_proba(X), expected)


def test_two_threads_saving_into_one_folder_leave_a_model_that_loads(rows, tmp_path):
    X, y = rows
    params = {**CNN, "max_epochs": 1}
    first = ResNetClassifier(**params).fit(X, y)
    second = ResNetClassifier(**{**params, "random_state": 1}).fit(X, y)
    folder = tmp_path / "model"

    errors = []

    def save_often(model):
        for _ in range(30):
            try:
                save_model(model, folder)
            except Exception as error:  # every failure is a finding here
                errors.append(error)

    threads = [_in_thread(lambda m=m: save_often(m)) for m in (first, second)]
    for thread in threads:
        thread.join()
    assert errors == []
    loaded = load_model(folder).predict_proba(X)
    assert any(np.array_equal(loaded, m.predict_proba(X)) for m in (first, second))
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_pickling_while_the_same_model_trains_gives_a_whole_model(rows):
    X, y = rows
    params = {**CNN, "max_epochs": 2}
    estimator = ResNetClassifier(**params).fit(X, y)
    estimator.set_params(max_epochs=6)
    training = _in_thread(lambda: estimator.fit(X, y))
    lengths = set()
    while training.is_alive():
        lengths.add(len(pickle.loads(pickle.dumps(estimator)).history_))
    training.join()
    assert lengths <= {2, 6}  # before or after the fit, never part-way through it


def _blocks(lock_in_thread, timeout=0.3):
    """Whether taking a lock in another thread waits (up to ``timeout`` seconds)."""
    taken = threading.Event()

    def take():
        with lock_in_thread():
            taken.set()

    thread = _in_thread(take)
    blocked = not taken.wait(timeout)
    return blocked, thread


def test_one_folder_named_two_ways_has_one_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with folder_lock("model"):
        same, waiting = _blocks(lambda: folder_lock(tmp_path / "model"))
        other, free = _blocks(lambda: folder_lock(tmp_path / "other"))
        assert same and not other
    waiting.join(5)
    free.join(5)
    assert not waiting.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_can_take_the_locks_that_a_parent_thread_held(tmp_path):
    estimator = ResNetClassifier()
    held, release = threading.Event(), threading.Event()

    def hold():
        with estimator_lock(estimator), folder_lock(tmp_path):
            held.set()
            release.wait(30)

    holder = _in_thread(hold)
    assert held.wait(10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
            pid = os.fork()
        if pid == 0:  # the child: the holding thread does not exist here
            code = 1
            try:
                taken = estimator_lock(estimator).acquire(timeout=5)
                folder_blocked, _ = _blocks(lambda: folder_lock(tmp_path), timeout=5)
                code = 0 if taken and not folder_blocked else 1
            finally:
                os._exit(code)  # never back into the parent's test run
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join()
    assert os.waitstatus_to_exitcode(status) == 0
