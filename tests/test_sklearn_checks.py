"""scikit-learn's estimator checks on both estimators."""

import pytest
from conftest import FAST_PARAMS
from sklearn.utils.estimator_checks import check_estimator, parametrize_with_checks

from sklearn_resnet import ResNetClassifier, ResNetRegressor, expected_failed_checks

# Enough epochs for the checks' accuracy thresholds on their small data sets.
CHECK_PARAMS = {**FAST_PARAMS, "max_epochs": 30}


@parametrize_with_checks(
    [ResNetClassifier(**CHECK_PARAMS), ResNetRegressor(**CHECK_PARAMS)],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("Estimator", [ResNetClassifier, ResNetRegressor])
def test_check_estimator_on_default_parameters(Estimator):
    estimator = Estimator()
    results = check_estimator(
        estimator, on_fail=None, expected_failed_checks=expected_failed_checks(estimator)
    )
    failed = [r for r in results if r["status"] == "failed"]
    assert failed == [], [(r["check_name"], str(r["exception"])[:300]) for r in failed]
    assert sum(r["status"] == "passed" for r in results) > 50
