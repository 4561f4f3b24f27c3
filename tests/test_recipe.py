"""Each piece of the training recipe does what its documentation says."""

import pickle
import re

import numpy as np
import pytest
import torch
from conftest import FAST_CNN_PARAMS, FAST_PARAMS
from sklearn.datasets import load_digits, make_blobs, make_classification, make_regression
from sklearn.linear_model import Ridge
from skorch.callbacks import Checkpoint

import sklearn_resnet.base as base_module
import sklearn_resnet.data as data_module
import sklearn_resnet.training as training_module
from sklearn_resnet import ResNetClassifier, ResNetRegressor
from sklearn_resnet.backbones import ensemble_members
from sklearn_resnet.data import augment_batch
from sklearn_resnet.defaults import auto_batch_size, resolve_width


# ---- input scaling --------------------------------------------------------------------------
def test_scaling_is_fitted_on_the_training_rows_only(monkeypatch):
    X, y = make_regression(1000, 4, random_state=0)
    X[900:] += 1e4  # the held-out rows are far away
    monkeypatch.setattr(
        base_module,
        "split_indices",
        lambda n, fraction, seed, y=None, **_: (np.arange(900), np.arange(900, n)),
    )
    reg = ResNetRegressor(early_stopping=True, scaling="standard", **FAST_PARAMS).fit(X, y)
    scaler = reg.module_.input_scaler
    np.testing.assert_allclose(scaler.shift.numpy(), X[:900].mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scaler.scale.numpy(), X[:900].std(axis=0), rtol=1e-4)


def test_scaling_is_not_refitted_by_partial_fit_or_predict():
    X, y = make_classification(200, 5, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    state = {k: v.clone() for k, v in clf.module_.input_scaler.state_dict().items()}
    clf.predict(X * 100)
    clf.partial_fit(X * 100, y)
    for key, value in clf.module_.input_scaler.state_dict().items():
        torch.testing.assert_close(value, state[key])


@pytest.mark.parametrize("scaling", ["robust", "quantile", "standard", None])
def test_scaling_makes_training_invariant_to_feature_units(scaling):
    X, y = make_classification(300, 5, random_state=0)
    ref = ResNetClassifier(scaling="standard", **FAST_PARAMS).fit(X, y)
    clf = ResNetClassifier(scaling=scaling, **FAST_PARAMS).fit(X * 1e4 + 3e4, y)
    assert clf.scaling_ == scaling
    agreement = np.mean(clf.predict(X * 1e4 + 3e4) == ref.predict(X))
    # Scaled inputs train as well as pre-standardised ones; raw huge inputs do not.
    assert agreement > 0.9 if scaling else agreement < 0.9


def test_auto_scaling_depends_on_the_backbone():
    X, y = load_digits(return_X_y=True)
    one_epoch = {**FAST_PARAMS, "max_epochs": 1}
    assert ResNetClassifier(**one_epoch).fit(X, y).scaling_ == "robust"
    # Below 1,000 training rows an MLP classifier takes the small-data choice.
    assert ResNetClassifier(**one_epoch).fit(X[:100], y[:100]).scaling_ == "standard"
    cnn = ResNetClassifier(input_shape=(1, 8, 8), **FAST_CNN_PARAMS).fit(X[:100], y[:100])
    assert cnn.scaling_ == "standard"
    assert cnn.module_.input_scaler.shift.shape == (1, 1, 1)


# ---- regression targets ---------------------------------------------------------------------
def test_targets_are_standardised_and_predictions_mapped_back():
    X, y = make_regression(200, 5, noise=1.0, random_state=0)
    reg = ResNetRegressor(**FAST_PARAMS).fit(X, y)
    moved = ResNetRegressor(**FAST_PARAMS).fit(X, 1000 * y + 5e6)
    # The network learns the same standardised targets, so predictions are the
    # same function mapped back to each scale.
    np.testing.assert_allclose(moved.predict(X), 1000 * reg.predict(X) + 5e6, rtol=1e-4)
    np.testing.assert_allclose(moved._y_mean, 1000 * y.mean() + 5e6)


@pytest.mark.parametrize("unit", [1e-6, 1e7])
def test_a_stream_of_single_rows_is_scaled_in_its_own_units(unit):
    # A first partial_fit call on one row has no spread in X or y. Dividing by 1 then
    # left later rows in raw units: a feature near 1e5 was clamped at the scaler's
    # bound, and targets near 1e7 were refused as too far from the mean.
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(5e4, 1.5e5, 60), rng.normal(size=60)])
    y = (X[:, 0] / 1e5 + X[:, 1]) * unit
    reg = ResNetRegressor(**FAST_PARAMS, scaling="robust")
    for i in range(len(X)):
        reg.partial_fit(X[i : i + 1], y[i : i + 1])
    scaler = reg.net_.module_.input_scaler
    np.testing.assert_allclose(scaler.scale.numpy().ravel(), [abs(X[0, 0]), 1.0], rtol=1e-6)
    np.testing.assert_allclose(reg._y_scale, [abs(y[0])])
    assert np.all(np.abs(reg.predict(X) / unit) < 10)


# ---- the regressor's linear path ------------------------------------------------------------
def _initial_outputs(monkeypatch, reg, X, y, **fit_kwargs):
    """Fit ``reg`` and return its network's outputs on ``X`` just before training."""
    seen = {}
    original = base_module.run_epochs

    def spy(net, *args, **kwargs):
        with torch.no_grad():
            seen["out"] = net.module_(torch.as_tensor(X, dtype=torch.float32)).numpy()
        return original(net, *args, **kwargs)

    monkeypatch.setattr(base_module, "run_epochs", spy)
    reg.fit(X, y, **fit_kwargs)
    return seen["out"]


@pytest.mark.parametrize("weighted", [False, True])
def test_regressor_starts_from_ridge_on_the_unclipped_scaled_inputs(monkeypatch, weighted):
    rng = np.random.default_rng(0)
    X = rng.standard_t(3, size=(300, 6))  # heavy tails: the clipping would bend them
    y = np.column_stack([X @ rng.normal(size=6), np.sin(X[:, 0])]) * 10 + 3
    weight = rng.uniform(0.2, 3.0, len(X)) if weighted else None
    reg = ResNetRegressor(early_stopping=False, **FAST_PARAMS)
    start = _initial_outputs(monkeypatch, reg, X, y, sample_weight=weight)
    # Robust scaling written out independently: median and interquartile range.
    q25, median, q75 = np.percentile(X, [25, 50, 75], axis=0)
    z = (X - median) / (q75 - q25)
    targets = (y - reg._y_mean) / reg._y_scale
    w = None if weight is None else weight / weight.mean()  # the loss sees mean-one weights
    ridge = Ridge(alpha=1.0).fit(z, targets, sample_weight=w)
    np.testing.assert_allclose(start, ridge.predict(z), rtol=1e-3, atol=1e-4)


def test_regressor_starts_from_the_ridge_of_the_training_rows_only(monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0])
    y[360:] = -5 * X[360:, 0]  # the held-out rows follow another linear relation
    monkeypatch.setattr(
        base_module,
        "split_indices",
        lambda n, fraction, seed, y=None, **_: (np.arange(360), np.arange(360, n)),
    )
    reg = ResNetRegressor(early_stopping=True, scaling="standard", **FAST_PARAMS)
    start = _initial_outputs(monkeypatch, reg, X, y)
    z = (X - X[:360].mean(axis=0)) / X[:360].std(axis=0)
    targets = (y - reg._y_mean) / reg._y_scale
    ridge = Ridge(alpha=1.0).fit(z[:360], targets[:360])
    np.testing.assert_allclose(start.ravel(), ridge.predict(z), rtol=1e-3, atol=1e-4)


def test_linear_targets_are_fitted_through_outliers_from_the_first_epoch():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 5))
    X[:10] *= 20  # far outliers, squashed by the robust scaling's smooth clipping
    y = X @ np.arange(1.0, 6.0) - 7.0
    reg = ResNetRegressor(**{**FAST_PARAMS, "max_epochs": 1, "lr": 1e-6}).fit(X, y)
    np.testing.assert_allclose(reg.predict(X), y, atol=1e-2 * np.abs(y).max())
    bent = ResNetRegressor(**{**FAST_PARAMS, "max_epochs": 1, "lr": 1e-6}).fit(X, np.sin(y))
    assert bent.score(X, np.sin(y)) < 0.5  # a non-linear target is not free


def test_only_the_mlp_regressor_has_a_linear_path(monkeypatch):
    X, y = make_regression(100, 64, random_state=0)
    assert ResNetRegressor(**FAST_PARAMS).fit(X, y).module_.linear is not None
    classifier = ResNetClassifier(**FAST_PARAMS).fit(X, y > 0)
    assert all(member.linear is None for member in ensemble_members(classifier.module_))
    cnn = ResNetRegressor(input_shape=(1, 8, 8), **FAST_CNN_PARAMS).fit(X, y)
    assert not hasattr(cnn.module_, "linear")
    # Too many inputs for the closed form: the path starts at zero and is trained.
    monkeypatch.setattr(base_module, "LINEAR_PATH_MAX_FEATURES", 10)
    wide = ResNetRegressor(early_stopping=False, **FAST_PARAMS)
    assert np.allclose(_initial_outputs(monkeypatch, wide, X, y), 0.0)
    assert wide.module_.linear.weight.abs().sum() > 0


# ---- classification loss --------------------------------------------------------------------
def test_label_smoothing_changes_the_loss():
    X, y = make_classification(200, 5, n_classes=3, n_informative=3, random_state=0)
    plain = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    smooth = ResNetClassifier(label_smoothing=0.3, **FAST_PARAMS).fit(X, y)
    logits = torch.tensor([[4.0, 0.0, 0.0]])
    target = torch.tensor([0])
    hard = plain.net_.get_loss(logits, (target, None)).item()
    soft = smooth.net_.get_loss(logits, (target, None)).item()
    log_p = torch.log_softmax(logits, dim=1)[0]
    assert hard == pytest.approx(-log_p[0].item(), rel=1e-6)
    expected = -(0.8 * log_p[0] + 0.1 * log_p[1] + 0.1 * log_p[2]).item()
    assert soft == pytest.approx(expected, rel=1e-6)
    # Smoothed targets keep the predicted probabilities away from 0 and 1.
    assert smooth.predict_proba(X).max() < plain.predict_proba(X).max()


def test_class_weights_change_the_loss_and_balanced_weights_on_balanced_data_do_not():
    X, y = make_classification(200, 5, flip_y=0, random_state=0)
    assert np.bincount(y).tolist() == [100, 100]
    plain = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    balanced = ResNetClassifier(class_weight="balanced", **FAST_PARAMS).fit(X, y)
    np.testing.assert_array_equal(balanced.predict_proba(X), plain.predict_proba(X))
    heavy = ResNetClassifier(class_weight={0: 1.0, 1: 10.0}, **FAST_PARAMS).fit(X, y)
    assert heavy.loss_curve_ != plain.loss_curve_
    assert heavy.predict(X).mean() > plain.predict(X).mean()


def test_balanced_class_weights_count_samples_by_their_weight():
    X, y = make_classification(120, 5, weights=[0.25], flip_y=0, random_state=0)
    params = {**FAST_PARAMS, "early_stopping": False, "class_weight": "balanced"}
    # Zero-weight samples do not count, exactly as if they were not there.
    weight = np.ones(len(y))
    weight[np.flatnonzero(y == 1)[:40]] = 0
    kept = weight > 0
    dropped = ResNetClassifier(**params).fit(X, y, sample_weight=weight)
    absent = ResNetClassifier(**params).fit(X[kept], y[kept])
    np.testing.assert_array_equal(dropped.predict_proba(X), absent.predict_proba(X))
    # A sample of weight 2 counts twice, as in LogisticRegression.
    doubled = np.where(y == 0, 2.0, 1.0)
    weighted = ResNetClassifier(**params).fit(X, y, sample_weight=doubled)
    counts = np.bincount(y, weights=doubled)
    per_class = counts.sum() / (2 * counts)
    explicit = ResNetClassifier(**{**params, "class_weight": dict(enumerate(per_class))})
    explicit.fit(X, y, sample_weight=doubled)
    np.testing.assert_array_equal(weighted.predict_proba(X), explicit.predict_proba(X))


def test_balanced_class_weights_take_extreme_but_finite_sample_weights():
    X, y = make_classification(60, 4, random_state=0)
    for heavy in (1e308, 1e-300):
        weight = np.where(np.arange(60) < 2, heavy, 1.0)
        clf = ResNetClassifier(**FAST_PARAMS, class_weight="balanced").fit(X, y, weight)
        assert np.isfinite(clf.loss_curve_).all()


def test_balanced_class_weights_do_not_depend_on_the_scale_of_the_sample_weights():
    # Summing two weights of 1e308 overflowed: that class got weight 0 and was dropped.
    from sklearn_resnet.estimators import _balanced_class_weights

    encoded = np.array([0, 0, 0, 1, 1, 1])
    weight = np.array([1e308, 1e308, 1.0, 1.0, 1.0, 1.0])
    huge = _balanced_class_weights(2, encoded, weight)
    tiny = _balanced_class_weights(2, encoded, weight * 1e-300)
    assert np.all(huge > 0)
    np.testing.assert_allclose(huge, tiny, rtol=1e-12)
    # Totals beyond float64's range of ratios would leave a class weighing 0.
    for beyond in ([1.0, 1.0, 1.0, 5e-324, 0.0, 0.0], [1e-300, 0, 0, 1e300, 1e300, 1e300]):
        with pytest.raises(ValueError, match="one class would weigh nothing"):
            _balanced_class_weights(2, encoded, np.array(beyond))


def test_sample_weight_times_class_weight_keeps_products_that_fit():
    # Each factor extreme, the products equal: rescaling each first lost them to underflow.
    from sklearn_resnet.inputs import sample_weights

    weight, extra = np.array([1e300, 1e-24]), np.array([1e-24, 1e300])
    assert sample_weights(weight, np.zeros((2, 1)), extra) is None
    # Nor does a product that underflows vanish: its ratio to the largest fits.
    tiny = sample_weights(np.full(2, 1e-200), np.zeros((2, 1)), np.array([1e-200, 1e-100]))
    np.testing.assert_allclose(tiny, [1e-100, 1.0])


def test_partial_fit_keeps_the_weights_of_separate_calls_relative_to_each_other():
    # A stream of one-class chunks: per-call normalisation would erase their weights.
    X, y = make_classification(400, 6, random_state=0)
    chunks = [(X[y == c][:100], y[y == c][:100]) for c in (0, 1)] * 2

    def stream(class_weight=None, per_class=None):
        clf = ResNetClassifier(**FAST_PARAMS, class_weight=class_weight)
        for Xc, yc in chunks:
            weight = None if per_class is None else np.full(len(yc), per_class[int(yc[0])])
            clf.partial_fit(Xc, yc, classes=[0, 1], sample_weight=weight)
        return clf.predict_proba(X)

    plain = stream()
    heavy = stream(class_weight={1: 100.0})
    assert not np.array_equal(heavy, plain)
    assert heavy[:, 1].mean() > plain[:, 1].mean()
    # The same weights given per sample are the same training; weights of 1 are none.
    np.testing.assert_array_equal(stream(per_class={0: 1.0, 1: 100.0}), heavy)
    np.testing.assert_array_equal(stream(per_class={0: 1.0, 1: 1.0}), plain)


# ---- augmentation -----------------------------------------------------------------------------
def test_shift_moves_samples_with_zero_fill_and_flip_mirrors_them():
    x = torch.arange(1, 9, dtype=torch.float32).view(1, 1, 8).repeat(64, 1, 1)
    generator = torch.Generator().manual_seed(0)
    shifted = augment_batch(x, "shift", generator)
    for row in shifted[:, 0]:
        kept = row[row != 0]
        # A contiguous run of the original values, moved by at most 8 // 8 = 1.
        assert len(kept) >= 7
        assert torch.equal(kept, torch.arange(kept[0], kept[0] + len(kept)))
    assert len({tuple(r.tolist()) for r in shifted[:, 0]}) == 3
    flipped = augment_batch(x, "flip", generator)
    mirrored = torch.all(flipped == x.flip(-1), dim=(1, 2))
    assert torch.all(mirrored | torch.all(flipped == x, dim=(1, 2)))
    assert 10 < int(mirrored.sum()) < 54
    images = torch.randn(16, 3, 16, 16)
    assert augment_batch(images, "shift+flip", generator).shape == images.shape


def test_shift_leaves_axes_shorter_than_eight_alone():
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(64, 2, 1, 16)  # signals given as height-one images
    shifted = augment_batch(rows, "shift", generator)
    assert not torch.any(torch.all(shifted == 0, dim=(1, 2, 3)))  # no sample blanked
    assert torch.any(shifted != rows)  # the long axis still moves, by at most 16 // 8
    small = torch.randn(32, 1, 4, 7)
    assert torch.equal(augment_batch(small, "shift", generator), small)


def test_augmentation_only_touches_training_batches(monkeypatch):
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    seen = []
    original = data_module.augment_batch

    def spy(x, kind, generator):
        seen.append(len(x))
        return original(x, kind, generator)

    monkeypatch.setattr(data_module, "augment_batch", spy)
    params = {**FAST_CNN_PARAMS, "max_epochs": 2, "batch_size": 50}
    clf = ResNetClassifier(
        input_shape=(1, 8, 8), augment="shift", early_stopping=True, validation_fraction=0.5
    )
    clf.set_params(**params).fit(X, y)
    assert sum(seen) == 2 * 150  # two epochs of the 150 training rows, never validation
    seen.clear()
    first = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict_proba(X), first)
    assert seen == []


def test_augment_needs_the_cnn_backbone():
    X, y = make_classification(100, 5, random_state=0)
    clf = ResNetClassifier(augment="shift", **FAST_PARAMS)
    with pytest.raises(ValueError, match=r"augment='shift'.*needs the CNN backbone"):
        clf.fit(X, y)
    assert not hasattr(clf, "net_")
    with pytest.raises(ValueError, match=r"augment='flip' flips signals and images; it needs"):
        clf.set_params(augment="flip").fit(X, y)


def test_augmentation_is_reproducible():
    X, y = load_digits(return_X_y=True)
    params = {**FAST_CNN_PARAMS, "input_shape": (1, 8, 8), "augment": "shift+flip"}
    a = ResNetClassifier(**params).fit(X[:200], y[:200]).predict_proba(X[:50])
    b = ResNetClassifier(**params).fit(X[:200], y[:200]).predict_proba(X[:50])
    np.testing.assert_array_equal(a, b)


# ---- optimizer kernels --------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_optimizers_are_fused_on_the_cpu(optimizer):
    X, y = make_classification(60, 4, random_state=0)
    params = {**FAST_PARAMS, "max_epochs": 1, "optimizer": optimizer}
    assert ResNetClassifier(**params).fit(X, y).net_.optimizer_.defaults["fused"] is True


@pytest.mark.parametrize(
    "optimizer, device, precision, fused",
    [
        ("sgd", "cpu", "32", True),
        ("sgd", "cuda:1", "bf16", True),
        ("adamw", "cuda", "16", True),
        ("adam", "cuda", "16", True),
        # fp16's scaler skips steps, and fused SGD then steps with uninitialised momentum.
        ("sgd", "cuda", "16", False),
        ("sgd", "cuda:1", "16", False),
        ("sgd", "cpu", "16", False),
        ("adamw", "mps", "32", False),
    ],
)
def test_which_optimizers_run_fused(optimizer, device, precision, fused):
    assert training_module.use_fused_optimizer(optimizer, device, precision) is fused


def test_fp16_trains_with_a_gradient_scaler_on_the_cpu_and_says_when_values_overflow():
    X, y = make_classification(64, 4, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, precision="16").fit(X, y)
    assert isinstance(clf.net_.grad_scaler_, torch.amp.GradScaler)
    assert clf.net_.grad_scaler_.is_enabled() and np.all(np.isfinite(clf.loss_curve_))
    assert ResNetClassifier(**FAST_PARAMS, precision="bf16").fit(X, y).net_.grad_scaler_ is None
    # A column of incomes overflows float16 without scaling; the error says so.
    X[:, 0] = 1e5 + 1e4 * X[:, 0]
    unscaled = ResNetClassifier(**FAST_PARAMS, precision="16", scaling=None, batch_size=16)
    with pytest.raises(ValueError, match=r"float16's range \(±65,504\)"):
        unscaled.fit(X, y)
    with pytest.raises(ValueError, match="diverged") as caught:
        unscaled.set_params(precision="32", lr=1e4).fit(X, y)
    assert "float16" not in str(caught.value)


def test_gradient_callbacks_see_unscaled_gradients_under_the_fp16_scaler(monkeypatch):
    """float16 on CUDA multiplies the loss by a large scale before the backward pass; a
    callback on the gradients (skorch's GradientNormClipping, say) must see them in the
    loss's units. The CUDA scaler is stood in for by a CPU one with the same scale."""
    from skorch.callbacks import Callback

    class GradientNorms(Callback):
        def __init__(self):
            self.norms = []

        def on_grad_computed(self, net, named_parameters, **kwargs):
            grads = [p.grad.norm() for _, p in named_parameters if p.grad is not None]
            self.norms.append(float(torch.stack(grads).norm()))

    X, y = make_classification(64, 4, random_state=0)

    def first_norm(scaled: bool) -> float:
        monkeypatch.setattr(training_module, "_uses_grad_scaler", lambda *args: scaled)
        real = torch.amp.GradScaler
        monkeypatch.setattr(torch.amp, "GradScaler", lambda device: real("cpu", 2.0**16))
        params = {**FAST_PARAMS, "max_epochs": 1, "precision": "16", "random_state": 0}
        clf = ResNetClassifier(**params, callbacks=[GradientNorms()]).fit(X, y)
        (recorder,) = [cb for _, cb in clf.net_.callbacks_ if isinstance(cb, GradientNorms)]
        return recorder.norms[0]

    assert first_norm(scaled=True) == pytest.approx(first_norm(scaled=False), rel=1e-2)


# ---- sizes that depend on the data ----------------------------------------------------------
@pytest.mark.parametrize(
    "n_train, batch_size",
    [
        *[(10, 16), (127, 16), (128, 16), (255, 16), (256, 32), (511, 32), (512, 64)],
        *[(2047, 128), (2048, 256), (4000, 256), (10**6, 256)],
    ],
)
def test_auto_batch_size_is_an_eighth_rounded_down_to_a_power_of_two_within_16_and_256(
    n_train, batch_size
):
    assert auto_batch_size(n_train) == batch_size


@pytest.mark.parametrize(
    "n_train, task, width",
    [
        (999, "classification", 64),
        (999, "regression", 256),  # the regressor keeps its width
        (1000, "classification", 256),
        (1000, "regression", 256),
    ],
)
def test_the_mlp_is_narrower_below_a_thousand_training_rows(n_train, task, width):
    assert resolve_width(None, "mlp", n_train, task) == width
    assert resolve_width(None, "cnn", n_train, task) == 16
    assert resolve_width(48, "mlp", n_train, task) == 48


def test_width_and_batch_size_follow_the_rows_left_after_the_validation_split():
    X, y = make_classification(1111, 4, random_state=0)  # 999 training rows, 112 held out
    clf = ResNetClassifier(max_epochs=1, early_stopping=True, random_state=0).fit(X, y)
    assert (clf.width_, clf.net_.batch_size, clf.n_members_) == (64, 256, 8)
    X, y = make_classification(1112, 4, random_state=0)  # 1,000 training rows
    clf = ResNetClassifier(max_epochs=1, early_stopping=True, random_state=0).fit(X, y)
    assert (clf.width_, clf.net_.batch_size, clf.n_members_) == (256, 64, 1)


def test_valid_score_best_marks_only_strict_improvements():
    X, y = make_blobs(400, 4, centers=2, cluster_std=0.5, random_state=0)  # separable
    clf = ResNetClassifier(
        **{**FAST_PARAMS, "max_epochs": 8}, early_stopping=True, n_iter_no_change=20
    ).fit(X, y)
    scores = clf.history_[:, "valid_score"]
    best = clf.history_[:, "valid_score_best"]
    assert len(set(scores)) < len(scores)  # ties happen (accuracy 1.0 again and again)
    for i, (score, flag) in enumerate(zip(scores, best, strict=True)):
        assert flag == (i == 0 or score > max(scores[:i]))


def test_verbose_table_prints_the_epoch_that_early_stopping_ends_on(capsys):
    X, y = make_classification(400, 6, flip_y=0.3, random_state=0)
    clf = ResNetClassifier(
        **{**FAST_PARAMS, "max_epochs": 60, "verbose": 2},
        lr=3e-3,
        early_stopping=True,
        n_iter_no_change=2,
    )
    clf.fit(X, y)
    assert clf.n_iter_ < 60  # stopped early
    rows = [line for line in capsys.readouterr().out.splitlines() if re.match(r"^\s*\d+\s", line)]
    assert len(rows) == clf.n_iter_


def test_early_stopping_needs_a_relative_improvement_of_a_hundredth_of_a_percent():
    X, y = make_classification(300, 4, random_state=0)
    clf = ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 1}, early_stopping=True).fit(X, y)
    stopper = dict(clf.net_.callbacks_)["early_stopping"]
    assert stopper.threshold == 1e-4 and stopper.threshold_mode == "rel"


def test_without_a_validation_set_the_model_keeps_the_last_epoch_not_the_lowest_loss():
    X, y = make_classification(200, 6, flip_y=0.3, random_state=0)
    clf = ResNetClassifier(
        **{**FAST_PARAMS, "max_epochs": 8},
        lr=0.03,
        lr_schedule="constant",
        early_stopping=False,
        batch_size=16,
    ).fit(X, y)
    losses = clf.history_[:, "train_loss"]
    assert int(np.argmin(losses)) + 1 != clf.n_iter_  # the setting this test needs
    assert clf.best_epoch_ == clf.n_iter_ == clf.history_[-1]["weights_epoch"]


def test_a_fitted_model_holds_no_reference_to_its_validation_rows():
    X, y = make_classification(4000, 50, random_state=0)
    clf = ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 1}, early_stopping=True).fit(X, y)
    assert clf.net_.train_split is None
    assert len(pickle.dumps(clf)) < 400 * 50 * 4  # smaller than the validation rows alone


def test_a_checkpoint_that_loads_the_best_epoch_is_refused(tmp_path):
    X, y = make_classification(300, 4, random_state=0)
    clf = ResNetClassifier(
        **FAST_PARAMS,
        early_stopping=True,
        callbacks=[Checkpoint(dirname=str(tmp_path), load_best=True)],
    )
    with pytest.raises(ValueError, match="load_best=True"):
        clf.fit(X, y)
    assert not hasattr(clf, "net_")
