"""The docstring of :class:`~sklearn_resnet.OptunaSearchCV`, kept apart from the code."""

DOC = """Hyper-parameter search with Optuna, as a scikit-learn ``BaseSearchCV``.

Optuna proposes ``n_jobs`` trials at a time; scikit-learn cross-validates them in
parallel and Optuna is told each trial's mean test score. The result is a regular
scikit-learn search: ``cv_results_`` (parameters, every split, means, standard
deviations, ranks, fit times), ``best_params_``, ``best_estimator_`` refitted on the
whole data, multi-metric scoring, Pipelines (``"net__lr"``), nesting inside
``cross_val_score``, ``clone`` and pickling. The Optuna study is ``study_``.

Parameters
----------
estimator : estimator object
    Any scikit-learn estimator or Pipeline. When it is (or ends in) a
    ``ResNetClassifier``/``ResNetRegressor``, its validation score is reported every
    epoch and unpromising trials are pruned.
param_distributions : dict, default=None
    Parameter name to a list of values (a categorical choice; a tuple, ``range`` or
    one-dimensional array too) or an Optuna
    distribution (``FloatDistribution(1e-4, 1e-1, log=True)``, ``IntDistribution``,
    ``CategoricalDistribution``), used as is. ``None`` takes the estimator's
    ``default_search_space()``, also through a Pipeline's final step (names prefixed).
n_trials : int or None, default=20
    Number of new trials. ``None`` runs until ``timeout``.
timeout : float or None, default=None
    Seconds after which no new trials are started (running ones finish).
cv : int, cross-validation generator or iterable, default=None
    As in ``GridSearchCV`` (5-fold, stratified for
    classifiers). Use the same splits in every worker of a shared study.
scoring : str, callable, list, tuple or dict, default=None
    Score(s) of the test folds, as in ``GridSearchCV``. With several metrics Optuna
    maximises the one ``refit`` names (else the first).
refit : bool, str or callable, default=True
    Refit the best trial's parameters on the whole data (``best_estimator_``).
n_jobs : int, default=None
    Trials evaluated at a time, their folds in parallel joblib workers. ``-1`` uses
    one per CPU (``-k``: all CPUs but ``k - 1``, as in joblib); ``0`` is refused.
sampler : optuna sampler, default=None
    ``None``: ``TPESampler(seed=random_state)``. A sampler is copied at every fit, so
    a fit never changes it and repeated fits start from the same state.
pruner : optuna pruner, default=None
    Judges a trial after every epoch, each fold's validation score against the same
    fold of the other trials (steps are epochs, 1-based; the trial's intermediate
    value is the mean over its folds). ``None``:
    ``MedianPruner(n_startup_trials=5, n_warmup_steps=5)`` when the estimator reports
    epochs, else no pruning; ``NopPruner()`` turns pruning off. Reports need a
    validation set: ``early_stopping=True``, or ``"auto"`` where it holds one out
    (``validation_fraction * n_samples >= 20``, at 0.1 for ``"auto"``, and for an MLP
    classifier at least 6,000 samples); for pruning on less data, set
    ``early_stopping=True``. An MLP
    regressor's ``"auto"`` is ``"refit"`` from 80 rows: the holdout fit reports, and a
    second fit on every row gives the fold's score.
storage : None, str, path or optuna storage, default=None
    Where the study lives. ``None``: in memory. A database URL
    (``"sqlite:///search.db"``, ``"postgresql://user:password@host/db"``) or a file
    path ending in ``.log``/``.jsonl`` (an Optuna ``JournalFileBackend``), or any
    Optuna storage object.
study_name : str, default=None
    Name of the study; ``None`` makes a new unique name at every fit.
load_if_exists : bool, default=False
    With ``study_name``, resume that study when the storage has it: the fit adds
    ``n_trials`` trials and ``cv_results_`` ranks every finished trial of the study
    scored alike. A resume that would tell Optuna another score (another ``scoring``,
    or another metric for ``refit``) is an error, as is a stored study created to
    minimise. Without it, a study of that name already in the storage is an error. Trials left
    ``RUNNING`` by a killed worker are marked ``FAIL`` once their heartbeat is older
    than twice ``heartbeat_interval`` (see Notes).
heartbeat_interval : float or None, default=30.0
    Seconds between the heartbeats that each running trial records in a storage given
    as a database URL or a journal path (Optuna's ``RDBStorage`` heartbeat, or a system
    attribute of the journal). A ``RUNNING`` trial without a heartbeat for twice this
    time belongs to a dead worker: every search on the study marks it ``FAIL`` when it
    starts, before each batch and at its end. ``None`` turns heartbeats off. Storage
    objects are used as they are (``RDBStorage(heartbeat_interval=...)`` sets theirs).
random_state : int, RandomState instance or None, default=None
    Seed of the default ``TPESampler``: the same seed gives the same trial sequence.
    Leave ``None`` when passing a ``sampler``.
verbose : int, default=0
    0: silent (Optuna's log lines are silenced for the fit). 1: a progress bar over
    trials and Optuna's log lines. 2 and more: also scikit-learn's messages per batch
    and per fit (``verbose - 1`` for ``GridSearchCV``).
pre_dispatch : int or str, default="2*n_jobs"
    As in ``GridSearchCV``.
error_score : "raise" or float, default=np.nan
    Score of a failed fit. A trial whose mean score is then NaN, or whose every fit
    failed, is recorded with status ``"FAIL"``; with a number, a trial with some failed
    fits is scored with it standing in for them, as in ``GridSearchCV``. The search goes
    on (only a search whose every trial fails raises).
return_train_score : bool, default=False
    Include training scores in ``cv_results_``.

Attributes
----------
cv_results_ : dict of numpy arrays
    As in ``GridSearchCV``, one entry per finished trial of the study in trial order,
    plus ``trial_number`` and ``status`` (``"COMPLETE"``, ``"PRUNED"``, ``"FAIL"``).
    Pruned trials, and failed trials of killed workers, have NaN scores and rank last.
best_estimator_ : estimator
    The estimator refitted with ``best_params_`` (when ``refit``).
best_score_ : float
    Mean cross-validated score of the best trial.
best_params_ : dict
    Parameters of the best trial.
best_index_ : int
    Row of the best trial in ``cv_results_``.
scorer_ : function or dict
    The scorer(s) used.
n_splits_ : int
    Number of cross-validation splits.
refit_time_ : float
    Seconds spent refitting the best estimator.
multimetric_ : bool
    Whether several metrics were scored.
study_ : optuna.Study
    The study, with every trial (of this fit, earlier fits and other workers).
n_trials_ : int
    Number of trials this fit ran.
trial_numbers_ : list of int
    Numbers of the trials this fit ran, in order.
classes_ : ndarray of shape (n_classes,)
    Class labels (classifiers with ``refit``).
n_features_in_ : int
    Number of features seen during fit (with ``refit``).
feature_names_in_ : ndarray of shape (n_features_in_,)
    Feature names seen during fit, when X has them (with ``refit``).

See Also
--------
sklearn.model_selection.RandomizedSearchCV : Random search over distributions.
ResNetClassifier.default_search_space : The default spaces.

Notes
-----
Each trial records its per-split results in the user attribute ``"cv_results"`` of
its Optuna trial. Several processes (on one machine or many) can run the same search
on one study with ``storage="postgresql://..."``, the same ``study_name`` and
``load_if_exists=True``; every trial runs once and each process's ``cv_results_``
ranks every trial finished when it ends.

A worker killed mid-trial (``SIGKILL``, out of memory, a lost machine) loses nothing
that was finished: run the same search again with ``load_if_exists=True`` at least
``2 * heartbeat_interval`` seconds later (or let another worker go on). It marks the
dead worker's ``RUNNING`` trials ``FAIL``, keeps every completed trial, and adds
``n_trials`` new ones. These failed trials recorded nothing; their rows in
``cv_results_`` have ``status="FAIL"``, NaN scores and times, and rank last.

Pruning: every fit of a trial (one per fold) reports its validation score after
each epoch, and the pruner judges that fold against the same fold of the other
trials (scored on as many splits, with the same scoring) at the same epoch; the
trial's intermediate value at an epoch is the mean over the folds that reached it.
A pruned trial's folds stop after their current epoch. With ``n_jobs > 1`` and no
storage, the workers reach the study through a temporary journal file (deleted
after the fit; ``study_`` is then an in-memory copy).

Examples
--------
>>> from optuna.distributions import FloatDistribution
>>> from sklearn.datasets import load_breast_cancer
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from sklearn_resnet import OptunaSearchCV
>>> X, y = load_breast_cancer(return_X_y=True)
>>> pipe = make_pipeline(StandardScaler(), LogisticRegression())
>>> space = {"logisticregression__C": FloatDistribution(1e-3, 1e2, log=True)}
>>> search = OptunaSearchCV(pipe, space, n_trials=5, random_state=0).fit(X, y)
>>> list(search.cv_results_["status"])
['COMPLETE', 'COMPLETE', 'COMPLETE', 'COMPLETE', 'COMPLETE']

With a ResNet estimator the default space is searched and poor trials are pruned:

>>> from sklearn_resnet import ResNetClassifier
>>> net = ResNetClassifier(max_epochs=30, early_stopping=True)
>>> search = OptunaSearchCV(make_pipeline(StandardScaler(), net), n_trials=20)  # doctest: +SKIP
"""
