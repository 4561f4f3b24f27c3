"""Our estimators inside scikit-learn's meta-estimators, searches and tools."""

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import FAST_PARAMS
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    BaggingClassifier,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
)
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    cross_validate,
    learning_curve,
    validation_curve,
)
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from sklearn_resnet import ResNetClassifier, ResNetRegressor


@pytest.fixture(scope="module")
def clf_data():
    return make_classification(160, 6, n_informative=4, random_state=0)


@pytest.fixture(scope="module")
def reg_data():
    return make_regression(160, 6, noise=1.0, random_state=0)


def clf(**params):
    return ResNetClassifier(**{**FAST_PARAMS, **params})


def reg(**params):
    return ResNetRegressor(**{**FAST_PARAMS, **params})


def test_pipeline_with_column_transformer_on_a_pandas_frame():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 200),
            "income": rng.lognormal(10, 1, 200),
            "city": rng.choice(["Paris", "Oslo", "Lima"], 200),
        }
    )
    target = np.where(frame["city"] == "Oslo", "north", "south")
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(sparse_output=False), ["city"]),
        ]
    ).set_output(transform="pandas")
    model = make_pipeline(pre, clf(max_epochs=20)).fit(frame, target)
    assert model.score(frame, target) > 0.9
    assert model[-1].feature_names_in_.tolist()[:2] == ["num__age", "num__income"]


def test_cnn_after_a_transformer_through_input_shape():
    X, y = make_classification(120, 16, random_state=0)
    model = make_pipeline(
        StandardScaler(), ResNetClassifier(input_shape=(1, 4, 4), depth=8, width=4, max_epochs=2)
    )
    assert model.fit(X, y).predict(X).shape == (120,)


@pytest.mark.parametrize("Search", [GridSearchCV, RandomizedSearchCV])
def test_searches_with_two_jobs(clf_data, Search):
    X, y = clf_data
    model = make_pipeline(StandardScaler(), clf())
    if Search is GridSearchCV:
        search = Search(model, {"resnetclassifier__depth": [4, 6]}, cv=2, n_jobs=2)
    else:
        space = {"resnetclassifier__lr": loguniform(1e-4, 1e-2)}
        search = Search(model, space, n_iter=2, cv=2, n_jobs=2, random_state=0)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    check_is_fitted(search.best_estimator_)
    assert search.predict(X).shape == (160,)


def test_cross_validate_with_several_metrics(clf_data):
    X, y = clf_data
    result = cross_validate(clf(), X, y, cv=3, scoring=["accuracy", "roc_auc", "neg_log_loss"])
    assert {"test_accuracy", "test_roc_auc", "test_neg_log_loss"} <= set(result)
    assert np.all(np.isfinite(result["test_neg_log_loss"]))


def test_calibration_stacking_voting_bagging(clf_data):
    X, y = clf_data
    calibrated = CalibratedClassifierCV(clf(), cv=2).fit(X, y)
    assert calibrated.predict_proba(X).shape == (160, 2)
    # Thirty epochs: five of the small-data choice's full batches train too little.
    resnet = clf(max_epochs=30)
    stack = StackingClassifier([("resnet", resnet), ("lr", LogisticRegression())], cv=2)
    assert stack.fit(X, y).score(X, y) > 0.7
    voting = VotingClassifier([("a", clf()), ("b", clf(random_state=1))], voting="soft")
    assert voting.fit(X, y).predict_proba(X).shape == (160, 2)
    bagging = BaggingClassifier(clf(), n_estimators=2, random_state=0).fit(X, y)
    assert bagging.predict(X).shape == (160,)


def test_regression_meta_estimators(reg_data):
    X, y = reg_data
    Y = np.column_stack([y, -y])
    multi = MultiOutputRegressor(reg()).fit(X, Y)
    assert multi.predict(X).shape == (160, 2)
    transformed = TransformedTargetRegressor(reg(), func=np.arcsinh, inverse_func=np.sinh)
    assert transformed.fit(X, y).predict(X).shape == (160,)
    stack = StackingRegressor([("resnet", reg()), ("ridge", Ridge())], cv=2)
    assert stack.fit(X, y).predict(X).shape == (160,)


def test_inspection_and_curves(clf_data):
    X, y = clf_data
    model = clf().fit(X, y)
    importances = permutation_importance(model, X, y, n_repeats=2, random_state=0)
    assert importances.importances_mean.shape == (6,)
    _, train, test = learning_curve(clf(), X, y, train_sizes=[0.5, 1.0], cv=2)
    assert train.shape == test.shape == (2, 2)
    train, test = validation_curve(clf(), X, y, param_name="depth", param_range=[4, 6], cv=2)
    assert train.shape == (2, 2)


@pytest.mark.parametrize("make", [clf, reg])
def test_clone_joblib_and_html_repr(make, clf_data, reg_data, tmp_path):
    X, y = clf_data if make is clf else reg_data
    estimator = make()
    unfitted = clone(estimator)
    assert unfitted.get_params() == estimator.get_params()
    estimator.fit(X, y)
    refit = clone(estimator)
    assert not hasattr(refit, "net_")
    np.testing.assert_array_equal(refit.fit(X, y).predict(X), estimator.predict(X))
    path = tmp_path / "model.joblib"
    joblib.dump(estimator, path)
    np.testing.assert_array_equal(joblib.load(path).predict(X), estimator.predict(X))
    html = estimator._repr_html_()
    assert type(estimator).__name__ in html and "depth" in html
