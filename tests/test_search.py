"""OptunaSearchCV: a scikit-learn search driven by Optuna, with epoch-wise pruning."""

import pickle
import re
import tempfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import sklearn.datasets
from conftest import InterruptAt
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import FitFailedWarning, UnsetMetadataPassedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    GroupShuffleSplit,
    KFold,
    LeaveOneGroupOut,
    ShuffleSplit,
    cross_val_score,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sklearn_resnet import OptunaSearchCV, ResNetClassifier, ResNetRegressor
from sklearn_resnet.backbones import blocks_for_depth
from sklearn_resnet.search_space import default_search_space

#: A tiny network with a validation set (needed for per-epoch reports).
NET = {
    "depth": 4,
    "width": 16,
    "max_epochs": 5,
    "batch_size": 32,
    "early_stopping": True,
    "validation_fraction": 0.25,
    "random_state": 0,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=240, n_features=6, class_sep=2.0, random_state=0)


def _logreg():
    return make_pipeline(StandardScaler(), LogisticRegression())


C_SPACE = {"logisticregression__C": FloatDistribution(1e-3, 1e2, log=True)}


@pytest.mark.parametrize("make_cv", [lambda: KFold(3, shuffle=True), lambda: ShuffleSplit(3)])
def test_a_cv_that_reshuffles_per_call_gives_every_trial_the_same_folds(data, make_cv):
    X, y = data
    space = {"logisticregression__C": CategoricalDistribution([1.0])}
    search = OptunaSearchCV(_logreg(), space, n_trials=4, cv=make_cv(), random_state=0)
    search.fit(X, y)
    for split in range(3):
        scores = search.cv_results_[f"split{split}_test_score"]
        assert np.all(scores == scores[0]), scores
    assert search.n_splits_ == 3


def test_groups_are_routed_to_a_group_splitter_that_draws_new_folds_per_call(data):
    X, y = data
    groups = np.repeat(np.arange(12), 20)
    space = {"C": CategoricalDistribution([1.0])}
    with sklearn.config_context(enable_metadata_routing=True):
        search = OptunaSearchCV(LogisticRegression(), space, n_trials=3, cv=GroupShuffleSplit(3))
        search.fit(X, y, groups=groups)
        with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):
            search.fit(X, y, groups=groups, sample_weight=np.ones(len(y)))  # not requested
    assert search.n_splits_ == 3
    for split in range(3):
        scores = search.cv_results_[f"split{split}_test_score"]
        assert np.all(scores == scores[0]), scores  # one set of folds for every trial


def test_requested_sample_weight_is_routed_to_the_estimator_under_metadata_routing(data):
    X, y = data
    weights = np.where(np.arange(len(y)) % 3 == 0, 5.0, 1.0)
    space = {"C": CategoricalDistribution([0.5])}
    with sklearn.config_context(enable_metadata_routing=True):
        model = LogisticRegression().set_fit_request(sample_weight=True)
        model.set_score_request(sample_weight=False)
        search = OptunaSearchCV(model, space, n_trials=1, cv=3).fit(X, y, sample_weight=weights)
    expected = LogisticRegression(C=0.5).fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(search.best_estimator_.coef_, expected.coef_)


def test_cv_given_as_a_generator_is_split_once_like_a_list(data):
    X, y = data
    space = {"logisticregression__C": CategoricalDistribution([1.0])}
    fitted = [
        OptunaSearchCV(_logreg(), space, n_trials=2, cv=folds, random_state=0).fit(X, y)
        for folds in ((pair for pair in KFold(3).split(X)), list(KFold(3).split(X)))
    ]
    assert [search.n_splits_ for search in fitted] == [3, 3]
    for split in range(3):
        key = f"split{split}_test_score"
        np.testing.assert_array_equal(fitted[0].cv_results_[key], fitted[1].cv_results_[key])


def test_a_search_refused_before_its_first_trial_leaves_no_temporary_files(
    data, tmp_path, monkeypatch
):
    # Pruning in parallel without a storage keeps its study in a temporary journal.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("net", ResNetClassifier(**NET))])
    search = OptunaSearchCV(pipe, {"net__lr": [1e-2]}, n_trials=1, n_jobs=2, cv=LeaveOneGroupOut())
    with pytest.raises(ValueError, match="groups"):
        search.fit(X, y)
    assert list(tmp_path.iterdir()) == []


def test_full_cv_results_best_attributes_and_refit(data):
    X, y = data
    search = OptunaSearchCV(_logreg(), C_SPACE, n_trials=4, cv=3, random_state=0).fit(X, y)
    results = search.cv_results_
    for key in (
        "params",
        "param_logisticregression__C",
        "split0_test_score",
        "split2_test_score",
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
        "mean_fit_time",
        "std_score_time",
        "trial_number",
        "status",
    ):
        assert len(results[key]) == 4, key
    assert list(results["trial_number"]) == [0, 1, 2, 3] == search.trial_numbers_
    assert list(results["status"]) == ["COMPLETE"] * 4
    splits = np.column_stack([results[f"split{i}_test_score"] for i in range(3)])
    np.testing.assert_allclose(results["mean_test_score"], splits.mean(axis=1))
    assert search.best_index_ == int(np.argmin(results["rank_test_score"]))
    assert search.best_score_ == results["mean_test_score"][search.best_index_]
    assert search.best_params_ == results["params"][search.best_index_]
    assert set(search.best_params_) == set(C_SPACE)
    refit = search.best_estimator_.get_params()["logisticregression__C"]
    assert refit == search.best_params_["logisticregression__C"]
    assert search.score(X, y) == search.best_estimator_.score(X, y)
    # Optuna was told each trial's fold-mean score.
    values = [t.value for t in search.study_.trials]
    np.testing.assert_allclose(values, results["mean_test_score"])
    assert search.n_trials_ == 4 and search.n_splits_ == 3


def test_seeded_runs_give_the_same_trial_sequence(data):
    X, y = data

    def sequence(**kwargs):
        search = OptunaSearchCV(_logreg(), C_SPACE, n_trials=4, cv=2, **kwargs).fit(X, y)
        return [p["logisticregression__C"] for p in search.cv_results_["params"]]

    first = sequence(random_state=3)
    assert sequence(random_state=3) == first
    assert sequence(random_state=4) != first
    sampler = optuna.samplers.RandomSampler(seed=5)
    assert sequence(sampler=sampler) == sequence(sampler=sampler)  # the sampler is copied


def test_multi_metric_scoring_optimises_the_refit_metric(data):
    X, y = data
    search = OptunaSearchCV(
        _logreg(),
        C_SPACE,
        n_trials=3,
        cv=2,
        scoring=["accuracy", "neg_log_loss"],
        refit="neg_log_loss",
        random_state=0,
        return_train_score=True,
    ).fit(X, y)
    results = search.cv_results_
    assert search.multimetric_
    assert {"rank_test_accuracy", "rank_test_neg_log_loss", "mean_train_accuracy"} <= set(results)
    np.testing.assert_allclose(
        [t.value for t in search.study_.trials], results["mean_test_neg_log_loss"]
    )
    assert search.best_score_ == np.max(results["mean_test_neg_log_loss"])


def test_lists_become_categorical_and_any_value_round_trips(data):
    X, y = data
    weights = {0: 1.0, 1: 3.0}
    space = {
        "logisticregression__class_weight": [None, weights],
        "logisticregression__fit_intercept": [True, False],
        "logisticregression__C": [0.1, 10.0],
    }
    search = OptunaSearchCV(_logreg(), space, n_trials=6, cv=2, random_state=0).fit(X, y)
    used = [p["logisticregression__class_weight"] for p in search.cv_results_["params"]]
    assert all(w is None or w == weights for w in used)
    assert any(w == weights for w in used)
    assert search.best_estimator_.get_params()["logisticregression__class_weight"] in (
        None,
        weights,
    )
    dists = search.study_.trials[0].distributions
    assert dists["logisticregression__class_weight"] == CategoricalDistribution([0, 1])
    assert dists["logisticregression__C"] == CategoricalDistribution([0.1, 10.0])


def test_default_spaces_hold_valid_values():
    for backbone, block in [("mlp", "basic"), ("cnn", "basic"), ("cnn", "bottleneck")]:
        space = ResNetClassifier.default_search_space(backbone, block)
        depth = space["depth"]
        for value in range(depth.low, depth.high + 1, depth.step):
            assert blocks_for_depth(backbone, value, block) >= 1
        assert space["lr"].log and space["weight_decay"].log
        assert set(space) >= {"depth", "width", "dropout", "lr", "weight_decay", "batch_size"}
    assert "label_smoothing" not in ResNetRegressor.default_search_space()
    sgd = default_search_space(ResNetRegressor, optimizer="sgd")["lr"]
    assert (sgd.low, sgd.high) == pytest.approx((0.01, 1.0))
    # Adam has no weight decay of its own: the search goes around AdamW's.
    adam = default_search_space(ResNetRegressor, optimizer="adam")["weight_decay"]
    adamw = default_search_space(ResNetRegressor, optimizer="adamw")["weight_decay"]
    assert (adam.low, adam.high, adam.log) == (adamw.low, adamw.high, True)
    with pytest.raises(ValueError, match="backbone must be 'mlp' or 'cnn'"):
        default_search_space(ResNetRegressor, backbone="rnn")


def test_default_spaces_are_the_ranges_the_search_guide_lists():
    mlp = ResNetClassifier.default_search_space("mlp")
    cnn = ResNetClassifier.default_search_space("cnn")
    adamw = {
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "weight_decay": FloatDistribution(1e-5, 1e-1, log=True),
    }
    shared = {
        "batch_size": CategoricalDistribution([32, 64, 128, 256]),
        "label_smoothing": FloatDistribution(0.0, 0.2),
    }
    assert mlp == pytest.approx(
        {
            "depth": IntDistribution(4, 10, step=2),
            "width": IntDistribution(32, 512, log=True),
            "dropout": FloatDistribution(0.0, 0.5),
            "scaling": CategoricalDistribution(["robust", "quantile", "standard"]),
            **adamw,
            **shared,
        }
    )
    assert cnn == pytest.approx(
        {
            "depth": IntDistribution(8, 32, step=6),
            "width": CategoricalDistribution([8, 16, 32]),
            "dropout": FloatDistribution(0.0, 0.3),
            "augment": CategoricalDistribution(["shift", None]),
            **adamw,
            **shared,
        }
    )
    bottleneck = ResNetClassifier.default_search_space("cnn", "bottleneck")["depth"]
    assert bottleneck == IntDistribution(11, 29, step=9)


def _assert_in_space(params, space, prefix=""):
    assert set(params) == {prefix + name for name in space}
    for name, dist in space.items():
        assert dist._contains(dist.to_internal_repr(params[prefix + name])), name


def test_default_space_is_found_through_a_pipeline(data):
    X, y = data
    net = ResNetClassifier(**{**NET, "max_epochs": 1})
    pipe = Pipeline([("scale", StandardScaler()), ("net", net)])
    search = OptunaSearchCV(pipe, n_trials=2, cv=2, refit=False, random_state=0).fit(X, y)
    for params in search.cv_results_["params"]:
        _assert_in_space(params, ResNetClassifier.default_search_space("mlp"), "net__")
    assert list(search.cv_results_["status"]) == ["COMPLETE", "COMPLETE"]


@pytest.mark.parametrize("sample_shape", [(1, 2, 3), (1, 6)], ids=["images", "signals"])
def test_default_space_follows_the_backbone_of_the_data(data, sample_shape):
    X, y = data
    samples = X.reshape(len(X), *sample_shape)  # backbone="auto" picks the CNN
    net = ResNetClassifier(**{**NET, "max_epochs": 1})
    search = OptunaSearchCV(net, n_trials=1, cv=2, refit=False, random_state=0).fit(samples, y)
    params = search.cv_results_["params"][0]
    _assert_in_space(params, ResNetClassifier.default_search_space("cnn"))
    assert (params["depth"] - 2) % 6 == 0


def test_pruning_stops_an_obviously_bad_region_in_a_pipeline(data):
    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("net", ResNetClassifier(**NET))])
    lr = [1e-2, 80.0]  # 80 diverges: validation accuracy stays at chance level
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FitFailedWarning, no non-finite score warning
        search = OptunaSearchCV(
            pipe, {"net__lr": lr}, n_trials=8, cv=2, pruner=pruner, random_state=0
        ).fit(X, y)
    results = search.cv_results_
    status = np.asarray(results["status"])
    chosen = np.array([p["net__lr"] for p in results["params"]])
    assert (status == "PRUNED").any()
    assert set(chosen[status == "PRUNED"]) == {80.0}
    assert (status[chosen == 1e-2] == "COMPLETE").all()
    assert np.isnan(results["mean_test_score"][status == "PRUNED"]).all()
    assert np.isnan(results["split0_test_score"][status == "PRUNED"]).all()
    assert results["rank_test_score"][status == "PRUNED"].min() > np.sum(status == "COMPLETE") - 1
    assert search.best_params_ == {"net__lr": 1e-2}
    assert all(key == "net__lr" for p in results["params"] for key in p)  # no callbacks leak
    assert search.best_estimator_[-1].callbacks is None
    for trial in search.study_.trials:
        steps = sorted(trial.intermediate_values)
        assert steps[0] == 1  # steps are epochs
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert steps[-1] < NET["max_epochs"]


def test_pruning_with_parallel_workers_and_no_storage(data):
    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("net", ResNetClassifier(**NET))])
    pruner = optuna.pruners.ThresholdPruner(lower=0.7, n_warmup_steps=2)
    search = OptunaSearchCV(
        pipe,
        {"net__lr": [1e-2, 80.0]},
        n_trials=4,
        cv=2,
        n_jobs=2,
        pruner=pruner,
        random_state=1,
    ).fit(X, y)
    status = np.asarray(search.cv_results_["status"])
    chosen = np.array([p["net__lr"] for p in search.cv_results_["params"]])
    assert set(chosen[status == "PRUNED"]) == {80.0}
    assert (status[chosen == 1e-2] == "COMPLETE").all()
    assert isinstance(search.study_._storage, optuna.storages.InMemoryStorage)


def test_a_search_whose_every_trial_is_pruned_refits_nothing(data):
    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("net", ResNetClassifier(**NET))])
    pruner = optuna.pruners.ThresholdPruner(lower=1.01)  # no score reaches it
    settings = dict(n_trials=2, cv=2, pruner=pruner, random_state=0)
    search = OptunaSearchCV(pipe, {"net__lr": [1e-2]}, **settings)
    with pytest.raises(
        ValueError,
        match=r"None of the 2 trials .* \(2 pruned, 0 failed\).* no best one to refit\. Loosen",
    ):
        search.fit(X, y)
    assert not hasattr(search, "best_estimator_") and not hasattr(search, "study_")
    search.set_params(refit=False)
    with pytest.warns(UserWarning, match="None of the 2 trials"):
        search.fit(X, y)
    assert list(search.cv_results_["status"]) == ["PRUNED", "PRUNED"]
    assert not hasattr(search, "best_estimator_")


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_a_failing_trial_is_recorded_and_the_search_goes_on(data):
    X, y = data
    space = {"logisticregression__C": [1.0, -1.0]}  # C=-1 fails in fit
    with pytest.warns(FitFailedWarning, match="Every fit of trial") as caught:
        search = OptunaSearchCV(_logreg(), space, n_trials=6, cv=2, random_state=0).fit(X, y)
    # Attributed to the line that called fit, not to the search's code.
    assert {w.filename for w in caught if w.category is FitFailedWarning} == {__file__}
    results = search.cv_results_
    bad = np.array([p["logisticregression__C"] == -1.0 for p in results["params"]])
    assert bad.any() and not bad.all() and len(bad) == 6
    assert set(np.asarray(results["status"])[bad]) == {"FAIL"}
    assert np.isnan(results["mean_test_score"][bad]).all()
    assert search.best_params_ == {"logisticregression__C": 1.0}
    # A numeric error_score stands in for failed folds; a trial whose every fold failed
    # still failed: Optuna is not told error_score as its value.
    with pytest.warns(FitFailedWarning):
        scored = OptunaSearchCV(
            _logreg(), space, n_trials=6, cv=2, error_score=0.0, random_state=0
        ).fit(X, y)
    bad = np.array([p["logisticregression__C"] == -1.0 for p in scored.cv_results_["params"]])
    assert set(np.asarray(scored.cv_results_["status"])[bad]) == {"FAIL"}
    assert (scored.cv_results_["mean_test_score"][bad] == 0.0).all()
    failed = [t for t in scored.study_.trials if t.params["logisticregression__C"] == -1.0]
    assert {t.state for t in failed} == {optuna.trial.TrialState.FAIL}
    with pytest.raises(ValueError, match="C"):
        OptunaSearchCV(_logreg(), space, n_trials=6, cv=2, error_score="raise", random_state=0).fit(
            X, y
        )
    assert all(t.state.is_finished() for t in search.study_.trials)
    # The final error names the cause, not only the warnings before it.
    cause = r"All the 2 trials .* the last one: .*InvalidParameterError: The 'C' parameter"
    with pytest.warns(FitFailedWarning), pytest.raises(ValueError, match=cause):
        OptunaSearchCV(_logreg(), {"logisticregression__C": [-1.0]}, n_trials=2, cv=2).fit(X, y)


def test_nested_cross_validation_clone_and_pickle(data):
    X, y = data
    search = OptunaSearchCV(_logreg(), C_SPACE, n_trials=2, cv=2, random_state=0)
    scores = cross_val_score(search, X, y, cv=2)
    assert scores.shape == (2,) and np.all(scores > 0.5)
    twin = clone(search)
    assert twin.get_params()["param_distributions"] == C_SPACE and twin is not search
    search.fit(X, y)
    loaded = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(loaded.predict(X), search.predict(X))
    assert [t.params for t in loaded.study_.trials] == [t.params for t in search.study_.trials]
    assert not hasattr(loaded, "_run")
    assert loaded.trials_dataframe()["state"].tolist() == ["COMPLETE", "COMPLETE"]


def test_verbose_zero_is_silent_and_restores_optuna_logging(data, capfd):
    X, y = data
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        OptunaSearchCV(_logreg(), C_SPACE, n_trials=2, cv=2).fit(X, y)
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
        out, err = capfd.readouterr()
        assert out == "" and err == ""
        OptunaSearchCV(_logreg(), C_SPACE, n_trials=2, cv=2, verbose=1).fit(X, y)
        out, err = capfd.readouterr()
        assert out == "" and "OptunaSearchCV: 100%" in err and "2/2" in err
        search = OptunaSearchCV(_logreg(), C_SPACE, n_trials=1, cv=2, verbose=2).fit(X, y)
        assert search.verbose == 2  # lowered for scikit-learn's loop while fitting only
        capfd.readouterr()
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("cv", [3, ShuffleSplit(3, random_state=None)])
def test_fit_leaves_the_cv_parameter_as_it_was_given(data, cv):
    X, y = data
    search = OptunaSearchCV(_logreg(), C_SPACE, n_trials=1, cv=cv).fit(X, y)
    assert search.cv is cv


def test_parallel_trials_run_exactly_n_trials(data):
    X, y = data
    search = OptunaSearchCV(_logreg(), C_SPACE, n_trials=3, cv=2, n_jobs=2).fit(X, y)
    assert search.n_trials_ == 3 and len(search.study_.trials) == 3


def test_the_default_pruner_waits_five_trials_and_five_epochs(data):
    X, y = data
    search = OptunaSearchCV(ResNetClassifier(**NET), {"lr": [1e-2]}, n_trials=1, cv=2)
    pruner = search.fit(X, y).study_.pruner
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (5, 5)


def test_trials_dataframe_takes_multi_index(data):
    pytest.importorskip("pandas")
    import pandas as pd

    X, y = data
    search = OptunaSearchCV(_logreg(), C_SPACE, n_trials=2, cv=2).fit(X, y)
    assert isinstance(search.trials_dataframe(multi_index=True).columns, pd.MultiIndex)
    assert not isinstance(search.trials_dataframe().columns, pd.MultiIndex)


def test_a_failure_report_quotes_the_last_traceback():
    from sklearn_resnet.search_run import _error_line

    report = "\n".join(
        [
            "1 fits failed with the following error:",
            "Traceback (most recent call last):",
            '  File "a.py", line 1, in fit',
            "ValueError: the first",
            "",
            "--------------------------------------------------------------------------------",
            "1 fits failed with the following error:",
            "Traceback (most recent call last):",
            '  File "b.py", line 2, in fit',
            "TypeError: the last",
            "  of two lines",
        ]
    )
    assert _error_line(report) == "TypeError: the last of two lines"


def test_timeout_without_n_trials(data):
    X, y = data
    search = OptunaSearchCV(_logreg(), C_SPACE, n_trials=None, timeout=0.5, cv=2).fit(X, y)
    assert search.n_trials_ >= 1
    assert len(search.cv_results_["params"]) == search.n_trials_


def test_regressor_and_plain_estimators(data):
    X, y = data
    search = OptunaSearchCV(
        Ridge(), {"alpha": FloatDistribution(1e-2, 10.0, log=True)}, n_trials=2, cv=2
    ).fit(X, y.astype(float))
    assert search.best_estimator_.alpha == search.best_params_["alpha"]
    net = ResNetRegressor(**{**NET, "max_epochs": 2})
    space = {"width": IntDistribution(8, 16, log=True)}
    search = OptunaSearchCV(net, space, n_trials=2, cv=2, random_state=0).fit(X, y.astype(float))
    assert search.predict(X).shape == (len(X),)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"param_distributions": {"nope": [1]}}, ValueError, "Invalid parameter 'nope'"),
        ({"param_distributions": {"logisticregression__C": 1.0}}, TypeError, "list of values"),
        ({"param_distributions": {"logisticregression__C": []}}, ValueError, "empty list"),
        ({"param_distributions": None}, ValueError, "no default_search_space"),
        ({"n_trials": None}, ValueError, "n_trials or timeout"),
        ({"n_trials": 0}, ValueError, "'n_trials' parameter"),
        ({"sampler": optuna.samplers.RandomSampler(), "random_state": 0}, ValueError, "seed"),
        ({"pruner": optuna.pruners.MedianPruner()}, ValueError, "reports a validation score"),
        ({"storage": "search.db"}, ValueError, "'storage' parameter"),
        ({"n_jobs": 0}, ValueError, r"'n_jobs' parameter of OptunaSearchCV .* Got 0"),
        ({"timeout": 0}, ValueError, r"'timeout' parameter of OptunaSearchCV .* Got 0"),
    ],
)
def test_invalid_settings_are_rejected_before_any_work(data, kwargs, error, match):
    X, y = data
    params = {"param_distributions": C_SPACE, "n_trials": 2, "cv": 2, **kwargs}
    search = OptunaSearchCV(_logreg(), **params)
    with pytest.raises(error, match=match):
        search.fit(X, y)
    assert not hasattr(search, "study_")


def test_in_memory_storage_object_cannot_serve_parallel_pruning(data):
    search = OptunaSearchCV(
        ResNetClassifier(**NET),
        {"lr": [1e-2]},
        storage=optuna.storages.InMemoryStorage(),
        n_jobs=2,
        n_trials=1,
    )
    with pytest.raises(ValueError, match="in-memory optuna storage object"):
        search.fit(*data)


# ---- the user guide page ----------------------------------------------------------------------
PAGE = Path(__file__).resolve().parent.parent / "docs" / "search.md"
PYTHON_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.DOTALL | re.MULTILINE)


def _capped_fit(monkeypatch, cls, **caps):
    """Make ``cls.fit`` run with these parameters lowered to at most ``caps``."""
    original = cls.fit

    def fit(self, X, y=None, **params):
        saved = self.get_params(deep=False)
        self.set_params(**{key: min(cap, saved[key] or cap) for key, cap in caps.items()})
        try:
            return original(self, X, y, **params)
        finally:
            self.set_params(**{key: saved[key] for key in caps})

    monkeypatch.setattr(cls, "fit", fit)


def test_search_page_code_runs(tmp_path, monkeypatch):
    """docs/search.md's Python blocks run in order, on 200 digits, two trials of 2 folds per
    search (the importances plot needs two) and one-epoch fits: the code is checked for
    running, not for accuracy."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    load_digits = sklearn.datasets.load_digits
    monkeypatch.setattr(
        sklearn.datasets, "load_digits", lambda **kw: tuple(a[:200] for a in load_digits(**kw))
    )
    _capped_fit(monkeypatch, ResNetClassifier, max_epochs=1, width=8)
    _capped_fit(monkeypatch, OptunaSearchCV, n_trials=2, cv=2)
    monkeypatch.setenv("SEARCH_STORAGE", f"sqlite:///{tmp_path / 'shared.db'}")
    monkeypatch.chdir(tmp_path)
    blocks = [textwrap.dedent(code) for _, code in PYTHON_BLOCK.findall(PAGE.read_text("utf-8"))]
    assert len(blocks) == 5
    namespace = {"__name__": "__docs__"}
    for index, code in enumerate(blocks, 1):
        exec(compile(code, f"search.md[python block {index}]", "exec"), namespace)
    plt.close("all")
    assert len(namespace["search"].cv_results_["params"]) == 2
    assert len(list(tmp_path.glob("best-*.joblib"))) == 1


def test_searching_over_the_final_step_itself(data):
    X, y = data
    steps = [LogisticRegression(), ResNetClassifier(**{**NET, "max_epochs": 2})]
    pipe = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    search = OptunaSearchCV(pipe, {"model": steps}, n_trials=3, cv=2, random_state=0).fit(X, y)
    assert list(search.cv_results_["status"]) == ["COMPLETE"] * 3
    used = [type(p["model"]).__name__ for p in search.cv_results_["params"]]
    assert used == ["ResNetClassifier", "LogisticRegression", "ResNetClassifier"]
    assert all(p["model"] in steps for p in search.cv_results_["params"])
    assert type(search.best_estimator_[-1]) is type(search.best_params_["model"])


# ---- like GridSearchCV ------------------------------------------------------------------------


def test_ctrl_c_during_a_networks_fit_ends_the_search(data):
    X, y = data
    net = ResNetClassifier(**{**NET, "callbacks": [InterruptAt(2)]})
    storage = optuna.storages.InMemoryStorage()
    search = OptunaSearchCV(net, {"lr": [1e-3, 1e-2]}, n_trials=3, cv=2, storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "interrupted, keeping epoch 1" warning either
        with pytest.raises(KeyboardInterrupt):
            search.fit(X, y)
    # The cut-short fit is not scored: its trial failed and no other trial started.
    [trial] = optuna.load_study(study_name=None, storage=storage).trials
    assert trial.state == TrialState.FAIL
    assert not hasattr(search, "study_") and not hasattr(search, "cv_results_")
    # Outside a search the same fit keeps its finished epoch, as documented.
    with pytest.warns(UserWarning, match="interrupted after 1 finished epoch"):
        assert clone(net).fit(X, y).n_iter_ == 1


class _FailsOnAllRows(LogisticRegression):
    """Fits the cross-validation folds, fails on every row (the final refit)."""

    def fit(self, X, y, sample_weight=None):
        if len(X) > 150:
            raise KeyboardInterrupt if self.C == 0.5 else ValueError("refit failed")
        return super().fit(X, y, sample_weight)


@pytest.mark.parametrize("failure", [ValueError, KeyboardInterrupt])
def test_a_failed_refit_keeps_the_previous_search_or_leaves_it_unfitted(data, failure):
    X, y = data
    C = 0.5 if failure is KeyboardInterrupt else 1.0
    search = OptunaSearchCV(_FailsOnAllRows(C=C), {"tol": [1e-4, 1e-3]}, n_trials=2, cv=2)
    with pytest.raises(failure):
        search.fit(X, y)
    assert not [name for name in vars(search) if name.endswith("_")]
    search.set_params(estimator=LogisticRegression()).fit(X, y)
    before = dict(vars(search))
    search.set_params(estimator=_FailsOnAllRows(C=C), n_trials=3)
    with pytest.raises(failure):
        search.fit(X, y)
    fitted = {name: value for name, value in vars(search).items() if name.endswith("_")}
    assert fitted.keys() == {name for name in before if name.endswith("_")}
    assert all(fitted[name] is before[name] for name in fitted)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("kind", ["grid", "brute-force"])
def test_samplers_that_end_the_study_end_the_search(data, kind):
    X, y = data
    values = [0.01, 1.0]
    sampler = (
        optuna.samplers.GridSampler({"logisticregression__C": values}, seed=0)
        if kind == "grid"
        else optuna.samplers.BruteForceSampler(seed=0)
    )
    space = {"logisticregression__C": values}
    search = OptunaSearchCV(_logreg(), space, n_trials=10, cv=2, sampler=sampler).fit(X, y)
    # Each value once, then the search stops, as Study.optimize does with these samplers.
    assert search.n_trials_ == 2
    assert sorted(p["logisticregression__C"] for p in search.cv_results_["params"]) == values
    assert list(search.cv_results_["status"]) == ["COMPLETE", "COMPLETE"]
    grid = GridSearchCV(_logreg(), space, cv=2).fit(X, y)
    assert search.best_params_ == grid.best_params_


class _FailsWithRow(LogisticRegression):
    """Fails to fit whenever its training part holds the row ``marker`` (any row: "any")."""

    def __init__(self, C=1.0, marker=None):
        super().__init__(C=C)
        self.marker = marker

    def fit(self, X, y, sample_weight=None):
        if isinstance(self.marker, str) or np.any(np.all(X == self.marker, axis=1)):
            raise ValueError("Real cause\n[[1 2]\n [3 4]]")
        return super().fit(X, y, sample_weight)


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_a_numeric_error_score_stands_in_for_failed_folds_as_in_gridsearchcv(data):
    X, y = data
    estimator = _FailsWithRow(marker=X[0])
    space = {"C": [0.1, 1.0]}
    cv = KFold(3, shuffle=True, random_state=1)  # two of three folds train on row 0
    settings = {"cv": cv, "error_score": 0.0, "refit": False}
    with pytest.warns(FitFailedWarning):
        grid = GridSearchCV(estimator, space, **settings).fit(X, y)
        search = OptunaSearchCV(estimator, space, n_trials=4, random_state=0, **settings)
        search.fit(X, y)
    assert set(search.cv_results_["status"]) == {"COMPLETE"}
    results = search.cv_results_
    for params, score in zip(results["params"], results["mean_test_score"], strict=True):
        assert score == grid.cv_results_["mean_test_score"][space["C"].index(params["C"])]
    assert search.best_score_ == grid.best_score_  # (the two values may tie)
    # With the default NaN, no trial has a score; the error quotes the whole cause.
    with pytest.warns(FitFailedWarning):
        with pytest.raises(ValueError, match=r"last error: ValueError: Real cause \[\[1 2\] \["):
            OptunaSearchCV(estimator, space, n_trials=2, cv=cv).fit(X, y)
    # So does the error when every fit failed.
    with pytest.warns(FitFailedWarning):
        with pytest.raises(ValueError, match=r"the last one: ValueError: Real cause \[\[1 2\]"):
            OptunaSearchCV(_FailsWithRow(marker="any"), space, n_trials=2, cv=2).fit(X, y)


def test_the_default_space_of_a_pipeline_follows_the_dimensions_of_x():
    X, y = sklearn.datasets.load_digits(return_X_y=True)
    X, y = X[:120].reshape(-1, 1, 8, 8) / 16, y[:120]
    net = ResNetClassifier(max_epochs=1, batch_size=32, random_state=0, device="cpu")
    pipe = make_pipeline(FunctionTransformer(), net)
    search = OptunaSearchCV(pipe, n_trials=2, cv=2, random_state=0).fit(X, y)
    assert list(search.cv_results_["status"]) == ["COMPLETE", "COMPLETE"]
    cnn = default_search_space(ResNetClassifier, "cnn")
    for params in search.cv_results_["params"]:
        _assert_in_space(params, cnn, prefix="resnetclassifier__")


def test_ranges_and_arrays_of_values_are_choices_as_in_gridsearchcv(data):
    X, y = data
    space = {
        "logisticregression__C": np.logspace(-2, 0, 3),
        "logisticregression__max_iter": range(50, 52),
    }
    search = OptunaSearchCV(_logreg(), space, n_trials=3, cv=2, random_state=0).fit(X, y)
    for params in search.cv_results_["params"]:
        assert params["logisticregression__C"] in list(space["logisticregression__C"])
        assert params["logisticregression__max_iter"] in (50, 51)
    with pytest.raises(TypeError, match="one-dimensional array"):
        OptunaSearchCV(_logreg(), {"logisticregression__C": np.ones((2, 2))}, cv=2).fit(X, y)


def test_a_study_name_must_not_be_empty(data):
    with pytest.raises(ValueError, match="study_name of OptunaSearchCV is an empty string"):
        OptunaSearchCV(_logreg(), C_SPACE, n_trials=1, cv=2, study_name="").fit(*data)


def test_a_journal_file_is_not_created_by_a_search_refused_before_it_starts(data, tmp_path):
    path = tmp_path / "search.log"
    scoring = ["accuracy", "f1"]  # several metrics need refit to name one
    search = OptunaSearchCV(_logreg(), C_SPACE, n_trials=1, cv=2, scoring=scoring, storage=path)
    with pytest.raises(ValueError, match="refit"):
        search.fit(*data)
    assert not path.exists()


def test_pruning_a_search_over_the_training_step_itself_is_refused_clearly(data):
    nets = [ResNetClassifier(**NET), ResNetClassifier(**{**NET, "lr": 1e-2})]
    pipe = Pipeline([("scale", StandardScaler()), ("model", nets[0])])
    search = OptunaSearchCV(pipe, {"model": nets}, pruner=optuna.pruners.MedianPruner())
    with pytest.raises(ValueError, match="replaces the step 'model' that trains"):
        search.fit(*data)


def test_estimator_settings_tell_apart_what_changes_scores_and_only_that():
    from skorch.callbacks import EarlyStopping

    from sklearn_resnet.search_space import estimator_settings

    def settings(**params):
        return estimator_settings(ResNetClassifier(**params))

    assert settings(lr=np.float64(0.01)) == settings(lr=0.01)
    assert settings(verbose=1, device="cpu", compile=True) == settings()
    assert settings(max_epochs=5) != settings(max_epochs=6)
    patience = [settings(callbacks=[EarlyStopping(patience=p)]) for p in (3, 3, 5)]
    assert patience[0] == patience[1] != patience[2]


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_a_search_whose_every_score_is_nan_names_the_scoring(data):
    X, y = data

    def broken_scorer(estimator, X, y):
        raise RuntimeError("scorer broke")

    space = {"C": FloatDistribution(0.1, 1.0)}
    search = OptunaSearchCV(LogisticRegression(), space, scoring=broken_scorer, n_trials=2, cv=2)
    with (
        pytest.warns(UserWarning, match="scorer broke"),
        pytest.raises(ValueError, match="every score of scoring=broken_scorer was NaN"),
    ):
        search.fit(X, y)
    # Without a failed trial of its own (its trials pruned, the failures another
    # worker's), the search does not blame its scorer.
    from sklearn_resnet.search_run import SearchRun

    run = SearchRun(search, X)
    with pytest.raises(ValueError) as caught:
        run._none_completed(np.array(["PRUNED", "FAIL"]), failed=False)
    assert "(1 pruned, 1 failed)" in str(caught.value) and "scorer" not in str(caught.value)
