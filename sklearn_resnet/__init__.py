"""Residual neural networks as scikit-learn estimators."""

from .estimators import ResNetClassifier, ResNetRegressor

__all__ = ["ResNetClassifier", "ResNetRegressor", "__version__"]
__version__ = "0.1.0"
