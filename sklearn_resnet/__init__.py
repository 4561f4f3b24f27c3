"""Residual neural networks as scikit-learn estimators."""

from .estimators import ResNetClassifier, ResNetRegressor, expected_failed_checks

__all__ = ["ResNetClassifier", "ResNetRegressor", "__version__", "expected_failed_checks"]
__version__ = "0.1.0"
