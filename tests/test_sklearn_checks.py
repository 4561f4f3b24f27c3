"""scikit-learn's estimator checks on both estimators, with their default parameters.

Each check is its own test, so a failure names the check and parallel workers share
them out evenly.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_resnet import ResNetClassifier, ResNetRegressor, expected_failed_checks


@parametrize_with_checks(
    [ResNetClassifier(), ResNetRegressor()],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
