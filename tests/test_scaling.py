"""The input scaler that lives inside the network."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from sklearn_resnet.backbones import InputScaler, build_backbone


def _apply(scaler, X):
    with torch.no_grad():
        return scaler(torch.as_tensor(X, dtype=torch.float32)).numpy()


def test_standard_scaling_matches_mean_and_std():
    rng = np.random.default_rng(0)
    X = rng.normal(5, 3, size=(400, 3)).astype(np.float32)
    X[:, 2] = 7.0  # a constant column is centred, not divided by zero
    Z = _apply(InputScaler((3,), "standard").fit(X), X)
    np.testing.assert_allclose(Z[:, :2].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Z[:, :2].std(axis=0), 1, atol=1e-4)
    np.testing.assert_array_equal(Z[:, 2], 0)


@pytest.mark.parametrize("sparse", [False, True])
def test_standard_scaling_densifies_a_bounded_number_of_values_at_a_time(monkeypatch, sparse):
    import scipy.sparse as sp

    from sklearn_resnet.backbones import scaling

    rng = np.random.default_rng(0)
    X = rng.normal(2, 3, size=(250, 40)).astype(np.float32)
    X[rng.random(X.shape) < 0.7] = 0.0
    monkeypatch.setattr(scaling, "_BLOCK_VALUES", 400)  # 10 rows of 40 features
    densified = []
    original = InputScaler._values_per_stat

    def spy(self, X_chunk):
        values = original(self, X_chunk)
        densified.append(values.size)
        return values

    monkeypatch.setattr(InputScaler, "_values_per_stat", spy)
    scaler = InputScaler((40,), "standard").fit(sp.csr_matrix(X) if sparse else X)
    assert max(densified) == 400 and len(densified) == 2 * 25
    np.testing.assert_allclose(scaler.shift.numpy().ravel(), X.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaler.scale.numpy().ravel(), X.std(axis=0), rtol=1e-5)


def test_robust_scaling_centres_on_the_median_and_clips_outliers_smoothly():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1001, 2)).astype(np.float32)
    X[0] = [1e6, -1e6]
    scaler = InputScaler((2,), "robust").fit(X)
    np.testing.assert_allclose(scaler.shift.numpy(), np.median(X, axis=0), atol=1e-6)
    iqr = np.subtract(*np.quantile(X, [0.75, 0.25], axis=0))
    np.testing.assert_allclose(scaler.scale.numpy(), iqr, rtol=1e-5)
    Z = _apply(scaler, X)
    assert np.all(np.abs(Z) <= 3.0)  # the outlier lands at the clipping bound
    assert Z[0, 0] > 2.99 and Z[0, 1] < -2.99
    # Near the centre the map is almost linear.
    z = (X[1:, 0] - np.median(X[:, 0])) / iqr[0]
    small = np.abs(z) < 0.3
    np.testing.assert_allclose(Z[1:, 0][small], z[small], atol=0.01)


def test_quantile_scaling_maps_each_feature_onto_a_normal():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.lognormal(size=2000), rng.uniform(-50, 50, size=2000)])
    Z = _apply(InputScaler((2,), "quantile").fit(X), X)
    for column in Z.T:
        # Ranks are kept and the values follow a standard normal.
        assert abs(column.mean()) < 0.05 and abs(column.std() - 1) < 0.05
    np.testing.assert_array_equal(np.argsort(Z[:, 0]), np.argsort(X[:, 0]))
    # A value between two training quantiles maps to the normal quantile of its rank.
    median = np.median(X[:, 0])
    assert abs(_apply(InputScaler((2,), "quantile").fit(X), [[median, 0.0]])[0, 0]) < 0.01
    assert norm.cdf(Z[:, 1].max()) > 0.999


def test_channels_are_scaled_with_statistics_over_all_positions():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2, 5, 5)).astype(np.float32) * np.array([1.0, 10.0])[:, None, None]
    X += np.array([3.0, -4.0])[:, None, None]
    scaler = InputScaler((2, 5, 5), "standard").fit(X)
    assert scaler.shift.shape == (2, 1, 1)
    Z = _apply(scaler, X)
    np.testing.assert_allclose(Z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_fit_uses_only_the_given_rows():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    X[8:] = 1e6
    scaler = InputScaler((2,), "standard").fit(X, np.arange(8))
    np.testing.assert_allclose(scaler.shift.numpy(), X[:8].mean(axis=0))


@pytest.mark.parametrize("method", ["standard", "robust", "quantile"])
def test_scaler_state_loads_into_a_freshly_built_network(method):
    X = np.random.default_rng(0).normal(size=(50, 1, 12)).astype(np.float32)
    net = build_backbone("cnn", (1, 12), 3, depth=8, width=4, scaling=method)
    net.input_scaler.fit(X)
    fresh = build_backbone("cnn", (1, 12), 3, depth=8, width=4, scaling=method)
    fresh.load_state_dict(net.state_dict())
    net.eval(), fresh.eval()
    x = torch.as_tensor(X[:5])
    torch.testing.assert_close(fresh(x), net(x))


@pytest.mark.parametrize("method", ["robust", "quantile"])
def test_a_column_spread_beyond_float32s_range_scales_to_finite_values(method):
    # Every value is finite in float32, but the spread (6e38) is not.
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=60), np.where(rng.random(60) < 0.6, -3e38, 3e38)].astype(np.float32)
    z = InputScaler((2,), method).fit(X)(torch.as_tensor(X))
    assert torch.isfinite(z).all()
    # The two values of the column stay apart, in their order.
    low, high = z[X[:, 1] < 0, 1], z[X[:, 1] > 0, 1]
    assert low.max() < high.min()


def test_a_denormal_column_does_not_divide_by_zero():
    # Its standard deviation (6e-46) is positive in float64 but zero in float32.
    X = np.c_[np.linspace(-1, 1, 8), np.r_[0.0, [1.4e-45] * 7]].astype(np.float32)
    scaler = InputScaler((2,), "standard").fit(X)
    assert torch.isfinite(scaler(torch.as_tensor(X))).all()
    assert scaler.scale.min() > 0


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="Unknown scaling 'minmax'"):
        InputScaler((3,), "minmax")


def test_standardised_values_are_clamped_at_ten_thousand():
    scaler = InputScaler((1,), "standard").fit(np.array([[0.0], [2.0]], dtype=np.float32))
    np.testing.assert_array_equal(_apply(scaler, [[1e30], [-1e30]]), [[1e4], [-1e4]])


@pytest.mark.parametrize("method", ["standard", "robust"])
def test_a_constant_column_is_scaled_by_its_own_size(method):
    # Without a spread to divide by, a column near 1e5 keeps values of its order near 1
    # (dividing by 1 would clamp them at 1e4).
    scaler = InputScaler((1,), method).fit(np.full((2, 1), 1e5, dtype=np.float32))
    with torch.no_grad():
        z = scaler(torch.tensor([[2e5]]), clip=False)
    np.testing.assert_allclose(z.numpy(), [[1.0]], rtol=1e-6)


def test_the_quantile_transform_maps_tied_values_to_the_middle_of_their_range():
    X = np.repeat([[0.0], [1.0]], 5, axis=0).astype(np.float32)
    z = _apply(InputScaler((1,), "quantile").fit(X), [[0.0], [1.0]])[:, 0]
    assert z[0] == pytest.approx(-z[1], abs=1e-3) and 0 < z[1] < 1


@pytest.mark.parametrize("method", ["robust", "quantile"])
def test_per_column_statistics_computed_in_blocks_of_columns_cover_every_column(
    monkeypatch, method
):
    from sklearn_resnet.backbones import scaling

    X = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32) * [1, 2, 3, 4, 5]
    whole = InputScaler((5,), method).fit(X)
    monkeypatch.setattr(scaling, "_BLOCK_VALUES", 8)  # two columns of four rows at a time
    blocked = InputScaler((5,), method).fit(X)
    for name, buffer in whole.state_dict().items():
        torch.testing.assert_close(blocked.state_dict()[name], buffer)
    if method == "robust":
        np.testing.assert_allclose(blocked.shift.numpy().ravel(), np.median(X, axis=0))
