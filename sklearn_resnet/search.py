"""Hyper-parameter search with Optuna as a true scikit-learn search: :class:`OptunaSearchCV`.

The search is a :class:`~sklearn.model_selection.BaseSearchCV`: its ``_run_search``
asks Optuna for ``n_jobs`` trials at a time, evaluates them with scikit-learn's own
cross-validation machinery and tells Optuna each trial's fold-mean score. Spaces live
in :mod:`sklearn_resnet.search_space`, epoch-wise pruning in
:mod:`sklearn_resnet.pruning`, storage and trial records in
:mod:`sklearn_resnet.search_study`, the loop of one fit in :mod:`sklearn_resnet.search_run`.
"""

from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from . import _search_docs
from .search_heartbeat import DEFAULT_HEARTBEAT_INTERVAL
from .search_run import SearchRun
from .stopping import interrupts_propagate

__all__ = ["OptunaSearchCV"]

_TRIALS_DATAFRAME_ATTRS = (
    "number",
    "value",
    "datetime_start",
    "datetime_complete",
    "duration",
    "params",
    "user_attrs",
    "state",
)


class OptunaSearchCV(BaseSearchCV):
    __doc__ = _search_docs.DOC

    _parameter_constraints: dict = {
        **BaseSearchCV._parameter_constraints,
        "param_distributions": [dict, None],
        "n_trials": [Interval(Integral, 1, None, closed="left"), None],
        "timeout": [Interval(Real, 0, None, closed="neither"), None],
        "sampler": [BaseSampler, None],
        "pruner": [BasePruner, None],
        "storage": [str, os.PathLike, BaseStorage, None],
        "study_name": [str, None],
        "load_if_exists": ["boolean"],
        "heartbeat_interval": [Interval(Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        # joblib's counts: k workers, or -k for all CPUs but k - 1; 0 means nothing.
        "n_jobs": [
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
    }

    def __init__(
        self,
        estimator,
        param_distributions=None,
        *,
        n_trials=20,
        timeout=None,
        cv=None,
        scoring=None,
        refit=True,
        n_jobs=None,
        sampler=None,
        pruner=None,
        storage=None,
        study_name=None,
        load_if_exists=False,
        heartbeat_interval=DEFAULT_HEARTBEAT_INTERVAL,
        random_state=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
    ):
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_distributions = param_distributions
        self.n_trials = n_trials
        self.timeout = timeout
        self.sampler = sampler
        self.pruner = pruner
        self.storage = storage
        self.study_name = study_name
        self.load_if_exists = load_if_exists
        self.heartbeat_interval = heartbeat_interval
        self.random_state = random_state

    def fit(self, X, y=None, **params):
        """Run the search: ``n_trials`` trials, each cross-validated, then refit the best.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            Targets.
        **params : dict
            Passed to the estimator's ``fit``, the scorer and the CV splitter, as in
            ``GridSearchCV``.

        Returns
        -------
        self : object
            The fitted search.
        """
        self._validate_params()
        before = dict(vars(self))
        run = SearchRun(self, X)
        self._run = run
        try:
            # Ctrl-C ends the search: no cut-short fit is scored as a finished trial.
            with run.active(), interrupts_propagate():
                run.draw_splits(X, y, params)
                # scikit-learn's fit splits with the folds drawn once (a generator
                # given as cv is used up by now).
                self.cv = run.cv
                super().fit(X, y, **params)
        except BaseException:
            # A failed or interrupted search (in a trial or in the final refit) keeps
            # its previous results, or stays unfitted: never new attributes beside old.
            vars(self).clear()
            vars(self).update(before)
            raise
        self.cv = before["cv"]
        del self._run
        return self

    def _run_search(self, evaluate_candidates):
        self._run.run(evaluate_candidates)

    def _format_results(self, candidate_params, n_splits, out, more_results=None):
        run = getattr(self, "_run", None)
        if run is None or run.batch is None:
            return super()._format_results(candidate_params, n_splits, out, more_results)
        # One batch of trials was just evaluated: keep its per-split results. The
        # search's cv_results_ are built from every trial's record once it is done.
        size = len(run.batch) * n_splits
        tail = out[len(out) - size :]
        run.batch_outs = [tail[i : i + n_splits] for i in range(0, size, n_splits)]
        return {}

    def trials_dataframe(self, attrs=_TRIALS_DATAFRAME_ATTRS, multi_index=False):
        """The study's trials as a pandas DataFrame (pandas required).

        Parameters
        ----------
        attrs : tuple of str, default=("number", "value", ..., "user_attrs", "state")
            Trial attributes to include, as in Optuna's ``Study.trials_dataframe``;
            the default leaves out the system attributes used for pruning.
        multi_index : bool, default=False
            Use a column MultiIndex.

        Returns
        -------
        frame : pandas.DataFrame
            One row per trial of the study (resumed and other workers' trials included).
        """
        check_is_fitted(self, "study_")
        return self.study_.trials_dataframe(attrs=attrs, multi_index=multi_index)
