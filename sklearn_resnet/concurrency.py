"""Locks that keep threads of one process from disturbing each other's models.

- :func:`estimator_lock`: one re-entrant lock per estimator object. ``fit``,
  ``partial_fit``, prediction, saving and export of the same estimator run one at a
  time: prediction switches the network to evaluation mode, which a fit running in
  another thread would otherwise see in the middle of an epoch (batch normalisation
  statistics updated by prediction batches, dropout switched off), and two fits of one
  object would overwrite each other's attributes.
- :data:`TORCH_STATE`: a shared/exclusive lock around PyTorch's process-wide state. The
  ONNX exporter changes that state while it runs (an "exporting" flag that optimizers and
  ``state_dict`` calls in every thread act on, oneDNN switched off), so an export holds
  it exclusively, while fits, predictions, loading and saving share it.
- :func:`folder_lock`: one lock per folder, so that two saves into one folder in this
  process do not mix their files.

Locks are taken in that order (the estimator's, then the torch state, then a folder's),
so they cannot deadlock each other.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager

__all__ = ["TORCH_STATE", "SharedExclusiveLock", "estimator_lock", "folder_lock"]

_REGISTRY_LOCK = threading.Lock()
_ESTIMATOR_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FOLDER_LOCKS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


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


class SharedExclusiveLock:
    """Many holders share it, or one holds it alone; re-entrant in both modes.

    A thread waiting for the exclusive hold keeps new shared holders out, so a steady
    stream of short shared holds (predictions of a server) cannot starve it. A thread
    that holds it exclusively may take it shared too (the exporter's own use of the
    estimator); taking it exclusively while holding it shared would wait for itself,
    and raises instead.

    Examples
    --------
    >>> lock = SharedExclusiveLock()
    >>> with lock.shared(), lock.shared():
    ...     pass
    >>> with lock.exclusive(), lock.shared():
    ...     pass
    """

    def __init__(self):
        self._condition = threading.Condition(threading.Lock())
        self._shared = 0
        self._owner: int | None = None
        self._waiting = 0
        self._local = threading.local()

    @contextmanager
    def shared(self):
        local = self._local
        depth = getattr(local, "shared", 0)
        if depth or self._owner == threading.get_ident():
            local.shared = depth + 1
            try:
                yield
            finally:
                local.shared = depth
            return
        with self._condition:
            while self._owner is not None or self._waiting:
                self._condition.wait()
            self._shared += 1
        local.shared = 1
        try:
            yield
        finally:
            local.shared = 0
            with self._condition:
                self._shared -= 1
                if self._shared == 0:
                    self._condition.notify_all()

    @contextmanager
    def exclusive(self):
        me = threading.get_ident()
        if self._owner == me:
            yield
            return
        if getattr(self._local, "shared", 0):
            raise RuntimeError(
                "An ONNX export cannot start inside a fit, prediction or load of this "
                "package in the same thread (from a training callback, say)."
            )
        with self._condition:
            self._waiting += 1
            try:
                while self._owner is not None or self._shared:
                    self._condition.wait()
            except BaseException:  # interrupted while waiting: let shared holders in
                self._waiting -= 1
                self._condition.notify_all()
                raise
            self._waiting -= 1
            self._owner = me
        try:
            yield
        finally:
            with self._condition:
                self._owner = None
                self._condition.notify_all()


#: PyTorch's process-wide state: exclusive for ONNX exports, shared for everything else.
TORCH_STATE = SharedExclusiveLock()
