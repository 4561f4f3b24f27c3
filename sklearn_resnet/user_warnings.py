"""Warnings as users see them: this package's own raised at the user's line, those of the
libraries it calls kept out of user output, safely across threads.

``warnings.catch_warnings`` saves the process-wide filter list on entry and puts it back
on exit, and a logger's level is process-wide too. Two such blocks overlapping in
different threads restore each other's state in the wrong order and can leave a filter
or a level in place for good. Every block of this package that changes them therefore
holds one lock, so that these blocks never restore each other's state in the wrong
order. Code outside this package that changes them in another thread at the same moment
(scikit-learn's search loop saves and restores the filters around every fit) is not held
by the lock.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import joblib
import sklearn

__all__ = ["ignoring", "warn"]

_LOCK = threading.RLock()
#: Frames in these folders are not the user's: this package, and the scikit-learn and
#: joblib code between a user's ``search.fit(...)`` and the estimator's ``fit``.
_LIBRARY_FOLDERS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (__file__, sklearn.__file__, joblib.__file__)
)


def warn(message: str, category: type[Warning]) -> None:
    """:func:`warnings.warn` attributed to the first caller outside this package.

    The warning names the user's line (``model.fit(X, y)``, ``search.fit(X, y)``), so
    that the ``default`` action's once-per-line rule counts the user's lines; filter
    these warnings by category or message, since a filter by module sees the user's
    module. scikit-learn's and joblib's frames in between (``_fit_context``, a search's
    loop) are skipped too.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn("a notice", UserWarning)
    >>> caught[0].filename  # this example's, not this module's
    '<doctest sklearn_resnet.user_warnings.warn[1]>'
    """
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_LIBRARY_FOLDERS):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@contextmanager
def ignoring(
    *filters: dict, loggers: Sequence[str] = (), level: int = logging.CRITICAL
) -> Iterator[None]:
    """Run the block ignoring the warnings that ``filters`` describe, with ``loggers`` at ``level``.

    Parameters
    ----------
    *filters : dict
        Keyword arguments of :func:`warnings.filterwarnings` (``category``, ``message``,
        ``module``), one dict per kind of warning to ignore.
    loggers : sequence of str, default=()
        Names of loggers raised to ``level`` inside the block.
    level : int, default=logging.CRITICAL
        Their level inside the block; each gets its own level back afterwards.

    Examples
    --------
    >>> import warnings
    >>> before = list(warnings.filters)
    >>> with ignoring({"category": UserWarning}):
    ...     warnings.warn("not shown", UserWarning)
    >>> warnings.filters == before
    True
    """
    with _LOCK:
        saved = [(logger, logger.level) for logger in map(logging.getLogger, loggers)]
        for logger, _ in saved:
            logger.setLevel(level)
        try:
            with warnings.catch_warnings():
                for spec in filters:
                    warnings.filterwarnings("ignore", **spec)
                yield
        finally:
            for logger, previous in saved:
                logger.setLevel(previous)
