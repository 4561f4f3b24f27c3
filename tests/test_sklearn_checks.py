"""scikit-learn's estimator checks on both estimators, with their default parameters.

Each check is its own test, so a failure names the check and parallel workers share
them out evenly.
"""

from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_resnet import ResNetClassifier, ResNetRegressor, expected_failed_checks

#: Checks that fit and predict on data of their own and judge neither a score nor the
#: parameters (sparse formats, the positive-only tag, refitting): a few epochs check that
#: as well as the default 100, in a tenth of the time. Every other check, those of the
#: parameters' handling and of accuracy included, runs on the defaults.
FEW_EPOCH_CHECKS = {
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_positive_only_tag_during_fit",
    "check_fit_idempotent",
    # Equal outputs for equal inputs in other forms, and fitted-state bookkeeping.
    "check_estimators_dtypes",
    "check_dtype_object",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_fit_check_is_fitted",
    "check_estimators_fit_returns_self",
    "check_fit_score_takes_y",
    "check_supervised_y_2d",
    "check_pipeline_consistency",
    "check_estimators_pickle",
    "check_readonly_memmap_input",
    "check_f_contiguous_array_estimator",
    "check_classifier_data_not_an_array",
    "check_regressor_data_not_an_array",
    "check_methods_subset_invariance",
    "check_methods_sample_order_invariance",
    "check_decision_proba_consistency",
    "check_fit2d_1feature",
    "check_fit2d_predict1d",
}


@parametrize_with_checks(
    [ResNetClassifier(), ResNetRegressor()],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    if getattr(check, "func", check).__name__ in FEW_EPOCH_CHECKS:
        estimator = clone(estimator).set_params(max_epochs=5)
    check(estimator)
