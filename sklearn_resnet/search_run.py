"""One ``fit`` of :class:`~sklearn_resnet.OptunaSearchCV`: its settings, checked before any
work, and the ask / cross-validate / tell loop that scikit-learn's ``_run_search`` drives.

On a storage with heartbeats, the trials of a batch beat while they are cross-validated,
and trials of dead workers are marked ``FAIL`` at the start, before each batch and before
``cv_results_`` is built (:mod:`sklearn_resnet.search_heartbeat`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import re
import shutil
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from optuna.exceptions import UpdateFinishedTrialError
from optuna.pruners import BasePruner, MedianPruner, NopPruner, WilcoxonPruner
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import TrialState
from sklearn.base import is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._split import _CVIterableWrapper, _yields_constant_splits
from sklearn.utils import check_random_state, indexable
from sklearn.utils.metadata_routing import get_routing_for_object
from sklearn.utils.validation import _check_method_params

from .base import _BaseResNet
from .pruning import PRUNED_ATTR, EpochReporter, StudyHandle, live_study
from .search_heartbeat import Heartbeat, ask, fail_dead_trials
from .search_space import SearchSpace, estimator_settings, final_step
from .search_study import (
    RECORD_ATTR,
    check_comparable,
    check_resumable,
    copy_to_memory,
    create_study,
    data_digest,
    failed_record,
    folds_digest,
    in_memory,
    interrupted_record,
    journal_storage,
    quiet_format,
    quiet_optuna,
    resolve_storage,
    results_rows,
    scoring_key,
    split_record,
    stamp,
    tell,
)
from .user_warnings import warn

__all__ = ["DEFAULT_PRUNER", "SearchRun"]

logger = logging.getLogger("sklearn_resnet")

#: ``pruner=None`` on an estimator that reports every epoch: judge a fold from the 5th
#: epoch on, once 5 trials have completed.
DEFAULT_PRUNER = {"n_startup_trials": 5, "n_warmup_steps": 5}


class _FoldsDrawnOnce(_CVIterableWrapper):
    """The folds of a splitter that draws new ones per call, drawn once.

    It asks for the split metadata (``groups``) that its splitter asks for, so that
    scikit-learn's fit routes them as it would to that splitter.
    """

    def __init__(self, splitter, folds):
        super().__init__(folds)
        self.splitter = splitter

    def get_metadata_routing(self):
        return get_routing_for_object(self.splitter)


class SearchRun:
    """Everything one ``fit`` of the search needs, checked before any work.

    Parameters
    ----------
    search : OptunaSearchCV
        The search being fitted (its parameters are read, and its fitted attributes
        ``study_``, ``n_trials_`` and ``trial_numbers_`` set, here).
    X : array-like
        The training data, whose dimensions choose the default space's backbone.
    """

    def __init__(self, search, X):
        self.search = search
        self.owner = type(search).__name__
        self.verbose = search.verbose
        self.metric_names = None
        self.scoring = scoring_key(search.scoring)
        # The cause of the last batch of trials whose every fit failed.
        self.last_error = "unknown"
        self.prefix, final = final_step(search.estimator)
        self.space = SearchSpace(
            self._param_distributions(final, X),
            set(search.estimator.get_params(deep=True)),
            self.owner,
        )
        # The final step reports epochs, unless the search replaces that step itself.
        steps = self.prefix.split("__")[:-1]
        replaced = {"__".join(steps[: k + 1]) for k in range(len(steps))}
        self.replaced = sorted(replaced & set(self.space.distributions))
        self.reports = isinstance(final, _BaseResNet) and not self.replaced
        self.base_callbacks = final.get_params().get("callbacks") if self.reports else None
        # What every trial records so that trials scored otherwise are told apart; set
        # with the folds (draw_splits).
        self.stamp = None
        # Whether this fit's first trials carry its stamp and were checked again.
        self.claimed = False
        self.sampler = self._sampler()
        self.pruner = self._pruner()
        self.prunes = self.reports and not isinstance(self.pruner, NopPruner)
        if search.study_name == "":
            raise ValueError(
                f"study_name of {self.owner} is an empty string; pass a name, or None for a "
                "generated one."
            )
        if search.n_trials is None and search.timeout is None:
            raise ValueError(
                f"{self.owner} needs n_trials or timeout to know when to stop; both are None."
            )
        # The folds of every trial and their number (``draw_splits``).
        self.cv, self.n_splits = None, None
        self.heartbeat_interval = search.heartbeat_interval
        # A journal path is only checked here: the file is created when the search starts.
        self.storage = resolve_storage(
            search.storage, self.owner, self.heartbeat_interval, open_journal=False
        )
        parallel = effective_n_jobs(search.n_jobs) != 1
        if self.prunes and parallel and search.storage is not None and in_memory(self.storage):
            raise ValueError(
                f"An in-memory optuna storage object cannot be shared with the worker "
                f"processes of {self.owner}(n_jobs={search.n_jobs}) that report for pruning. "
                f"Pass storage=None, a database URL or a journal file path instead."
            )
        # Without a storage, parallel pruning goes through a temporary journal file.
        self.tmpdir = None
        if self.prunes and parallel and self.storage is None:
            self.tmpdir = tempfile.mkdtemp(prefix="sklearn-resnet-search-")
            self.storage = journal_storage(os.path.join(self.tmpdir, "study.log"))
        self.batch = None
        self.batch_outs = None
        # Set when the sampler has nothing left to try (GridSampler's last grid point).
        self.sampler_done = False

    def _param_distributions(self, final, X):
        search = self.search
        if search.param_distributions is not None:
            return search.param_distributions
        if not hasattr(final, "default_search_space"):
            raise ValueError(
                f"param_distributions=None uses the estimator's default search space, but "
                f"{type(final).__name__} has no default_search_space(); pass "
                f"param_distributions to {self.owner}."
            )
        if not isinstance(final, _BaseResNet):
            space = final.default_search_space()
        else:
            backbone = final.backbone
            if backbone == "auto":
                # As the estimator decides at fit time; in a Pipeline, from X as given to the
                # search (steps that change the number of dimensions need backbone set).
                ndim = getattr(X, "ndim", None) or np.ndim(X)
                cnn = final.input_shape is not None or ndim >= 3
                backbone = "cnn" if cnn else "mlp"
            space = final.default_search_space(backbone, final.block, final.optimizer)
        return {self.prefix + name: dist for name, dist in space.items()}

    def _sampler(self) -> BaseSampler:
        search = self.search
        if search.sampler is not None:
            if search.random_state is not None:
                raise ValueError(
                    f"random_state of {self.owner} seeds the default TPESampler; with a "
                    f"sampler, seed the sampler instead (e.g. TPESampler(seed=0)) and leave "
                    f"random_state=None."
                )
            return copy.deepcopy(search.sampler)
        seed = search.random_state
        if seed is not None and not isinstance(seed, Integral):
            seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))
        self.seed = seed
        return TPESampler(seed=seed)

    def _continue_sampling(self, study) -> None:
        """Give a seeded default sampler a stream of its own for a study that has trials.

        Seeded as on the first run, TPE's random start would draw the points it drew
        then again: continuing a study with the same ``random_state`` repeated its
        trials. The stream follows from the seed and the number of trials already there,
        so a continued search is as repeatable as the first.
        """
        n_trials = len(study.get_trials(deepcopy=False))
        if self.search.sampler is not None or self.seed is None or n_trials == 0:
            return
        state = np.random.SeedSequence([int(self.seed), n_trials]).generate_state(1)
        self.sampler = study.sampler = TPESampler(seed=int(state[0]))

    def _pruner(self) -> BasePruner:
        pruner = self.search.pruner
        final = final_step(self.search.estimator)[1]
        if pruner is None:
            return MedianPruner(**DEFAULT_PRUNER) if self.reports else NopPruner()
        if isinstance(pruner, NopPruner):
            return copy.deepcopy(pruner)  # turns pruning off, whatever the estimator
        if not self.reports:
            if self.replaced:
                raise ValueError(
                    f"pruner={type(pruner).__name__}() cannot prune when {self.owner} "
                    f"replaces the step {self.replaced[-1]!r} that trains: its candidates "
                    "are not reached by the per-epoch reports. Leave pruner=None, or search "
                    "each candidate's own parameters in a separate search."
                )
            raise ValueError(
                f"pruner={type(pruner).__name__}() needs an estimator that reports a "
                f"validation score every epoch (ResNetClassifier, ResNetRegressor, or a "
                f"Pipeline ending in one); {type(final).__name__} does not. Leave pruner=None."
            )
        searched = f"{self.prefix}early_stopping" in self.space.distributions
        never = isinstance(final.early_stopping, (bool, np.bool_)) and not final.early_stopping
        if never and not searched:
            raise ValueError(
                f"pruner={type(pruner).__name__}() cannot prune: "
                f"{type(final).__name__}(early_stopping=False) holds out no validation set, so "
                "its fits report no score per epoch. Set early_stopping=True (or 'auto', which "
                "holds one out on enough rows), or leave pruner=None."
            )
        wrapped = pruner
        while wrapped is not None and not isinstance(wrapped, WilcoxonPruner):
            wrapped = getattr(wrapped, "_wrapped_pruner", None)  # PatientPruner's
        if wrapped is not None:
            raise ValueError(
                "pruner=WilcoxonPruner() tests a trial's steps as independent evaluations "
                "(the instances of one objective), but the search reports a learning curve, "
                "one validation score per epoch, whose steps are not independent. Use "
                "MedianPruner, PercentilePruner, SuccessiveHalvingPruner or HyperbandPruner."
            )
        return copy.deepcopy(pruner)

    def draw_splits(self, X, y, params: dict) -> None:
        """Fix the folds that every trial is scored on, before the first trial.

        Each batch of trials is one call of scikit-learn's ``evaluate_candidates``,
        which splits again, so a splitter that draws new folds per call
        (``ShuffleSplit()``, ``KFold(shuffle=True)`` without an integer seed) would
        score each batch on other folds. Such a splitter's folds are drawn once here,
        as ``GridSearchCV`` draws them once for all its candidates; the search hands
        ``cv`` to scikit-learn's ``fit`` in place of its own parameter.
        """
        search = self.search
        X, y = indexable(X, y)
        routed = search._get_routed_params_for_fit(_check_method_params(X, params=params))
        split_params = routed.splitter.split
        cv = check_cv(search.cv, y, classifier=is_classifier(search.estimator))
        if not _yields_constant_splits(cv):
            cv = _FoldsDrawnOnce(cv, cv.split(X, y, **split_params))
        self.cv, self.n_splits = cv, cv.get_n_splits(X, y, **split_params)
        stored = search.storage is not None  # a study in memory is never seen again
        self.stamp = stamp(
            search.scoring,
            search.refit,
            estimator_settings(search.estimator),
            self.space.distributions,
            self.space.fingerprints(),
            self.n_splits,
            data=data_digest(X, y, params) if stored else None,
            folds=folds_digest(cv.split(X, y, **split_params)) if stored else None,
        )

    @contextmanager
    def active(self):
        """Quiet Optuna at verbose=0 and map verbose to scikit-learn's levels (≥2: fits)."""
        search = self.search
        search.verbose = max(0, self.verbose - 1)
        try:
            with quiet_optuna(self.verbose == 0):
                yield
        finally:
            search.verbose = self.verbose
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    # ---- the search loop ----------------------------------------------------------------
    def run(self, evaluate_candidates) -> None:
        search = self.search
        self.storage = resolve_storage(self.storage, self.owner, self.heartbeat_interval)
        study = create_study(
            self.storage,
            search.study_name,
            search.load_if_exists,
            self.sampler,
            self.pruner,
            self.owner,
            self.heartbeat_interval,
        )
        # Studies of earlier releases recorded the positions' plain texts.
        plain = self.space.fingerprints(plain=True)
        check_resumable(study, self.space.distributions, plain, self.owner)
        fail_dead_trials(study)  # a dead worker's trial would count as one running now
        check_comparable(study, self.stamp, self.owner)
        self._continue_sampling(study)
        token = uuid.uuid4().hex
        shared = None if in_memory(self.storage) else self.storage
        handle = StudyHandle(token, study.study_name, shared, self.pruner)
        width = effective_n_jobs(search.n_jobs)
        start = time.monotonic()
        numbers, results = [], None
        with ExitStack() as stack:
            stack.enter_context(live_study(token, study))
            bar = stack.enter_context(self._progress())
            while self._wants_more(len(numbers), start):
                fail_dead_trials(study)
                size = (
                    width if search.n_trials is None else min(width, search.n_trials - len(numbers))
                )
                trials = [ask(study, self.space.distributions) for _ in range(size)]
                numbers.extend(t.number for t in trials)
                outcome = self._evaluate(evaluate_candidates, study, trials, handle)
                if outcome is not None:
                    results = outcome
                if bar is not None:
                    bar.update(len(trials))
                    if any(t.state == TrialState.COMPLETE for t in study.get_trials(False)):
                        bar.set_postfix(best=f"{study.best_value:.4g}", refresh=False)
        if results is None:
            raise ValueError(
                f"All the {len(numbers)} trials of {self.owner} failed: every fit raised an "
                f"error, the last one: {_sentence(self.last_error)} See the "
                "warnings above for the others; set error_score='raise' to raise the first one."
            )
        fail_dead_trials(study)
        if self.tmpdir is not None:
            study = copy_to_memory(study)
        formatted = self._format(study, set(numbers))
        if not np.any(formatted["status"] == TrialState.COMPLETE.name):
            mine = formatted["status"][np.isin(formatted["trial_number"], numbers)]
            self._none_completed(formatted["status"], failed=TrialState.FAIL.name in mine)
        search.study_ = study
        search.n_trials_ = len(numbers)
        search.trial_numbers_ = numbers
        results.clear()
        results.update(formatted)

    def _none_completed(self, status: np.ndarray, failed: bool) -> None:
        """Refuse to refit when no trial completed (pruned, or failed in another worker).

        ``failed``: whether a trial of this fit failed.
        """
        pruned = int(np.sum(status == TrialState.PRUNED.name))
        message = (
            f"None of the {len(status)} trials of {self.owner} completed ({pruned} pruned, "
            f"{len(status) - pruned} failed), so no setting has a cross-validated score"
        )
        if self.last_error != "unknown":
            message += f" (the last error: {self.last_error})"
        elif failed:
            # This fit's fits raised nothing, so its scores themselves were not finite.
            scoring = self.search.scoring
            named = getattr(scoring, "__name__", None) if callable(scoring) else None
            message += (
                f" (this fit's trials trained, but every score of scoring="
                f"{named or repr(scoring)} was NaN or infinite: a scorer that raised warned "
                "with its error; set error_score='raise' to raise it)"
            )
        advice = (
            " Loosen the pruner (a lower threshold, more n_warmup_steps, or "
            "pruner=optuna.pruners.NopPruner())."
            if pruned
            else ""
        )
        if self.search.refit:
            raise ValueError(
                f"{message} and there is no best one to refit.{advice} With refit=False the "
                "search keeps cv_results_ and study_ instead."
            )
        warn(f"{message}.{advice}", UserWarning)

    def _wants_more(self, done: int, start: float) -> bool:
        search = self.search
        if self.sampler_done:
            return False
        if search.n_trials is not None and done >= search.n_trials:
            return False
        return search.timeout is None or time.monotonic() - start < search.timeout

    def _progress(self):
        if self.verbose < 1:
            return _nothing()
        from tqdm.auto import tqdm

        return tqdm(total=self.search.n_trials, desc=self.owner, unit="trial")

    def _evaluate(self, evaluate_candidates, study, trials, handle):
        """Cross-validate one batch of trials and tell Optuna; return the results dict."""
        search = self.search
        candidates = []
        for trial in trials:
            params = self.space.decode(trial.params)
            if self.prunes:
                key = self.prefix + "callbacks"
                callbacks = list(params.get(key, self.base_callbacks) or [])
                params = {**params, key: [*callbacks, EpochReporter(handle, trial._trial_id)]}
            candidates.append(params)
        self.batch, self.batch_outs = trials, None
        started = time.monotonic()
        try:
            stub = interrupted_record(
                self.n_splits, self._metrics(), search.return_train_score, self.scoring
            )
            for trial in trials:
                trial.set_user_attr(RECORD_ATTR, {**stub, **self.stamp})
            if not self.claimed:
                self._claim(study, trials, stub)
            with Heartbeat(study._storage, [trial._trial_id for trial in trials]):
                results = evaluate_candidates(candidates)
            outs = self.batch_outs
        except ValueError as exc:
            if search.error_score == "raise" or "fits failed" not in str(exc):
                self._fail(study, trials)
                raise
            results, outs = None, None
            seconds = (time.monotonic() - started) / (len(trials) * self.n_splits)
            self.last_error = _error_line(str(exc))
            self._warn_failed(trials, exc)
        except BaseException:
            self._fail(study, trials)
            raise
        finally:
            self.batch = None
        for i, trial in enumerate(trials):
            if outs is not None:
                record = split_record(outs[i], search.return_train_score, self.scoring)
                self.metric_names = self.metric_names or list(record["test"])
                errors = [out["fit_error"] for out in outs[i] if out.get("fit_error")]
                if errors:
                    self.last_error = _error_line(errors[-1])
            else:
                record = failed_record(
                    self.n_splits,
                    self._metrics(),
                    search.error_score,
                    seconds,
                    search.return_train_score,
                    self.scoring,
                )
            self._tell(study, trial, {**record, **self.stamp})
        return results

    def _claim(self, study, trials, stub) -> None:
        """Check the study again now that this fit's first trials carry its stamp.

        A worker that started together with one of other settings passed the first
        check too; whichever of the two checks last sees the other's trials. The trials
        of a refused fit end as FAIL, which no later check counts; they are marked so
        that no row shows them, and a grid sampler does not count their grid points as
        visited.
        """
        try:
            check_comparable(study, self.stamp, self.owner, own={t.number for t in trials})
        except ValueError:
            for trial in trials:
                trial.set_user_attr(RECORD_ATTR, {**stub, **self.stamp, "refused": True})
                # GridSampler counts a finished trial's grid point as visited when its
                # recorded space is the grid's: an empty one is none.
                attrs = study._storage.get_trial_system_attrs(trial._trial_id)
                if "grid_id" in attrs:
                    study._storage.set_trial_system_attr(trial._trial_id, "search_space", {})
            raise
        self.claimed = True

    def _tell(self, study, trial, record) -> None:
        try:
            trial.set_user_attr(RECORD_ATTR, record)
        except UpdateFinishedTrialError:
            # Another worker saw no heartbeat from this process for too long.
            logger.warning(
                "Trial %d was marked FAIL by another worker (its heartbeat was late); its "
                "results are lost.",
                trial.number,
            )
            return
        attrs = study._storage.get_trial(trial._trial_id).system_attrs
        if PRUNED_ATTR in attrs:
            self._tell_study(study, trial, state=TrialState.PRUNED)
            return
        scores = record["test"].get(self._objective(record), [math.nan])
        value = math.fsum(scores) / len(scores)
        # As in GridSearchCV, a numeric error_score stands in for the folds that failed;
        # a trial with no fold that fitted has no score of its own.
        if all(record["failed"]) or not math.isfinite(value):
            self._tell_study(study, trial, state=TrialState.FAIL)
        else:
            self._tell_study(study, trial, values=value)

    def _tell_study(self, study, trial, **kwargs) -> None:
        if tell(study, trial, **kwargs):
            self.sampler_done = True

    def _fail(self, study, trials) -> None:
        for trial in trials:
            self._tell_study(study, trial, state=TrialState.FAIL, skip_if_finished=True)

    def _warn_failed(self, trials, exc) -> None:
        numbers = ", ".join(str(t.number) for t in trials)
        warn(
            f"Every fit of trial(s) {numbers} failed; recorded with "
            f"error_score={self.search.error_score!r}.{exc}",
            FitFailedWarning,
        )

    def _metrics(self) -> list[str]:
        """Names of the scores: "score" for one metric, else the scorer names."""
        if self.metric_names is not None:
            return self.metric_names
        scoring = self.search.scoring
        if isinstance(scoring, dict):
            return list(scoring)
        if isinstance(scoring, (list, tuple, set)):
            return list(scoring)
        return ["score"]

    def _objective(self, record) -> str:
        """The metric Optuna optimises: ``refit``'s when it names one, else the first."""
        names = list(record["test"])
        refit = self.search.refit
        return refit if isinstance(refit, str) and refit in names else names[0]

    def _format(self, study, own) -> dict:
        search = self.search
        params, outs, more, only_expected_nan = results_rows(
            study,
            self.space.decode,
            self.n_splits,
            self._metrics(),
            search.return_train_score,
            own,
            search.error_score,
            names=set(self.space.distributions),
            scoring=self.scoring,
            stamp=self.stamp,
        )
        return quiet_format(
            lambda: BaseSearchCV._format_results(search, params, self.n_splits, outs, more),
            only_expected_nan,
        )


#: At most this many characters of an error message are quoted.
_ERROR_CHARS = 500


def _error_line(details: str) -> str:
    """The exception (``ValueError: ...``) of the last traceback in a fit-failure report.

    ``details`` is scikit-learn's report (blocks of "N fits failed with the following
    error:" and a traceback) or one fit's traceback. The exception's message may span
    several lines; they are joined into one.
    """
    lines = details.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if not starts:
        text = " ".join(line.strip() for line in lines if line.strip())
    else:
        rest = lines[starts[-1] + 1 :]
        # The frames are indented; the exception is the first line that is not.
        first = next((i for i, line in enumerate(rest) if line and not line[0].isspace()), None)
        message = []
        for line in rest[first:] if first is not None else []:
            if line.startswith("-----") or re.match(r"\d+ fits? failed with", line):
                break
            message.append(line.strip())
        text = " ".join(line for line in message if line)
    text = text or "unknown"
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", "…")) else text + "."


@contextmanager
def _nothing():
    yield None
