"""Locks that keep threads of one process from disturbing each other's models.

- :func:`estimator_lock`: one re-entrant lock per estimator object. ``fit``,
  ``partial_fit``, prediction, pickling, saving and export of the same estimator run
  one at a time: prediction switches the network to evaluation mode, which a fit running in
  another thread would otherwise see in the middle of an epoch (batch normalisation
  statistics updated by prediction batches, dropout switched off), and two fits of one
  object would overwrite each other's attributes.
- :func:`folder_lock`: one lock per folder, so that two saves into one folder in this
  process do not mix their files.

An estimator's lock is taken before a folder's. A training callback that uses another
estimator waits while that one is busy in another thread: two fits whose callbacks use
each other's estimators would wait for each other.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager

__all__ = ["estimator_lock", "folder_lock"]

_REGISTRY_LOCK = threading.Lock()
_ESTIMATOR_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FOLDER_LOCKS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _fresh_locks_after_fork() -> None:
    """A forked child starts with no lock held: the threads that held them stayed behind."""
    global _REGISTRY_LOCK, _ESTIMATOR_LOCKS, _FOLDER_LOCKS
    _REGISTRY_LOCK = threading.Lock()
    _ESTIMATOR_LOCKS = weakref.WeakKeyDictionary()
    _FOLDER_LOCKS = weakref.WeakValueDictionary()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_locks_after_fork)


def estimator_lock(estimator) -> threading.RLock:
    """The re-entrant lock of ``estimator`` (kept outside it: never pickled or cloned).

    Examples
    --------
    >>> from sklearn_resnet import ResNetClassifier
    >>> clf = ResNetClassifier()
    >>> estimator_lock(clf) is estimator_lock(clf)
    True
    """
    with _REGISTRY_LOCK:
        lock = _ESTIMATOR_LOCKS.get(estimator)
        if lock is None:
            lock = _ESTIMATOR_LOCKS[estimator] = threading.RLock()
        return lock


class _FolderLock:
    """A lock object that the weak registry can hold (plain locks take no weak refs)."""

    def __init__(self):
        self.lock = threading.Lock()


@contextmanager
def folder_lock(path):
    """Hold the lock of the folder ``path`` (by its absolute path) inside the block."""
    key = os.path.abspath(os.fspath(path))
    with _REGISTRY_LOCK:
        entry = _FOLDER_LOCKS.get(key)
        if entry is None:
            entry = _FOLDER_LOCKS[key] = _FolderLock()
    with entry.lock:
        yield
