"""Residual neural networks as scikit-learn estimators."""

from .estimators import ResNetClassifier, ResNetRegressor, expected_failed_checks
from .onnx_export import to_onnx
from .persistence import load_model, save_model
from .plotting import plot_history, plot_optimization_history, plot_param_importances
from .search import OptunaSearchCV

__all__ = [
    "OptunaSearchCV",
    "ResNetClassifier",
    "ResNetRegressor",
    "__version__",
    "expected_failed_checks",
    "load_model",
    "plot_history",
    "plot_optimization_history",
    "plot_param_importances",
    "save_model",
    "to_onnx",
]
__version__ = "0.1.0"
