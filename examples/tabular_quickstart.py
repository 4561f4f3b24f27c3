"""Quickstart: residual MLPs on tabular data.

This example shows the everyday workflow with sklearn-resnet:

* a :class:`~sklearn_resnet.ResNetClassifier` inside a scikit-learn ``Pipeline``
  with a ``StandardScaler``, trained on the breast cancer data set;
* test accuracy and class probabilities from ``predict_proba``;
* the fitted attributes that describe the training run: ``n_iter_``,
  ``best_epoch_`` and ``loss_curve_``;
* a :class:`~sklearn_resnet.ResNetRegressor` on the diabetes data set, scored
  with R² next to a ridge regression baseline.

Both data sets ship with scikit-learn, so the script needs no network access.
"""

from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import ResNetClassifier, ResNetRegressor

RANDOM_STATE = 0


def classification():
    """Binary classification of breast tumours (569 samples, 30 features)."""
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=RANDOM_STATE
    )

    # The estimator scales its inputs itself (robust scaling fitted on the training
    # rows), so the StandardScaler is optional; inside a pipeline it too is fitted on
    # the training split only. A small residual MLP (one
    # residual block, depth = 2 * 1 + 2 = 4) suits a data set of a few hundred rows.
    # Early stopping holds out 20 % of the training data, stops once the validation
    # loss has not improved for 5 epochs and restores the weights of the best epoch.
    clf = ResNetClassifier(
        depth=4,
        width=64,
        max_epochs=30,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=5,
        random_state=RANDOM_STATE,
    )
    model = make_pipeline(StandardScaler(), clf)
    model.fit(X_train, y_train)

    accuracy = accuracy_score(y_test, model.predict(X_test))
    print(f"Breast cancer test accuracy: {accuracy:.3f}")

    # predict_proba returns one column per class, in the order of classes_.
    proba = model.predict_proba(X_test[:3])
    print(f"Classes: {clf.classes_.tolist()}")
    print("Probabilities of the first three test samples:")
    for row in proba:
        print("  " + "  ".join(f"{p:.3f}" for p in row))

    # The fitted estimator is the last step of the pipeline.
    fitted = model[-1]
    print(f"Epochs trained (n_iter_): {fitted.n_iter_}")
    print(f"Weights restored from epoch (best_epoch_): {fitted.best_epoch_}")
    print(f"Validation accuracy at that epoch: {fitted.best_validation_score_:.3f}")
    first, last = fitted.loss_curve_[0], fitted.loss_curve_[-1]
    print(f"Training loss (loss_curve_): {first:.4f} at epoch 1 -> {last:.4f} at the end")


def regression():
    """Regression of disease progression (442 samples, 10 features)."""
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=RANDOM_STATE
    )

    # Targets are standardised internally and predictions mapped back to the
    # original scale. On a small, noisy data set a narrow network with some dropout
    # and few epochs overfits less than the defaults. With 331 training rows,
    # early_stopping="auto" holds out a fifth (67 rows: validation_fraction="auto") to
    # find the epoch of least validation loss, then trains the model it keeps on all 331
    # rows for that many epochs (early_stopping="refit"), so fewer than max_epochs may run.
    reg = ResNetRegressor(
        depth=4,
        width=16,
        dropout=0.1,
        max_epochs=20,
        random_state=RANDOM_STATE,
    )
    model = make_pipeline(StandardScaler(), reg)
    model.fit(X_train, y_train)
    r2 = r2_score(y_test, model.predict(X_test))

    # A linear model is a strong baseline on data like this (here the two are level);
    # always compare.
    baseline = make_pipeline(StandardScaler(), Ridge()).fit(X_train, y_train)
    r2_ridge = r2_score(y_test, baseline.predict(X_test))

    print(f"Diabetes test R²: ResNetRegressor {r2:.3f}, Ridge baseline {r2_ridge:.3f}")
    print(f"Epochs trained: {model[-1].n_iter_}")


def main():
    classification()
    print()
    regression()


if __name__ == "__main__":
    main()
