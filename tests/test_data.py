import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import FAST_PARAMS
from sklearn.datasets import make_classification

from sklearn_resnet import ResNetClassifier
from sklearn_resnet.backbones import build_backbone
from sklearn_resnet.data import (
    SliceBatches,
    TensorData,
    as_tensor,
    augment_batch,
    batched_inference,
    tensor_data,
)
from sklearn_resnet.sparse_rows import SparseRows


def make_data(n=103, weights=False):
    X = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    y = torch.arange(n)
    w = torch.ones(n) if weights else None
    return TensorData(X, y, w)


def test_each_epoch_visits_every_sample_once_in_a_new_order():
    batches = SliceBatches(
        make_data(), batch_size=10, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    epochs = [torch.cat([yb for _, (yb, _) in batches]) for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(103))
    assert not torch.equal(epochs[0], epochs[1])


def test_shuffling_is_reproducible_with_a_seeded_generator():
    def order(seed):
        batches = SliceBatches(
            make_data(), 16, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        return torch.cat([xb for xb, _ in batches])

    assert torch.equal(order(3), order(3))
    assert not torch.equal(order(3), order(4))


def test_no_training_batch_of_one_sample():
    batches = SliceBatches(
        make_data(21), batch_size=10, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    sizes = [len(xb) for xb, _ in batches]
    assert sizes == [10, 11] and len(batches) == 2


def test_validation_batches_keep_order_and_weights():
    batches = SliceBatches(make_data(25, weights=True), batch_size=10)
    xs, ws = zip(*[(xb, wb) for xb, (_, wb) in batches], strict=True)
    assert torch.equal(torch.cat(xs).ravel(), torch.arange(25, dtype=torch.float32))
    assert all(w is not None for w in ws) and [len(x) for x in xs] == [10, 10, 5]


def test_as_tensor_accepts_read_only_arrays_without_warning():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    array.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = as_tensor(array, torch.float32)
    assert tensor.tolist() == array.tolist()


def test_batched_inference_matches_forward_and_is_batch_size_invariant():
    torch.manual_seed(0)
    module = build_backbone("mlp", (6,), 3, depth=4, width=16).eval()
    X = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    full = batched_inference(module, X, device="cpu", batch_size=64)
    with torch.inference_mode():
        expected = module(torch.from_numpy(X)).double().numpy()
    np.testing.assert_allclose(full, expected, rtol=1e-5, atol=1e-6)
    assert full.dtype == np.float64
    for batch_size in (1, 3, 7, 13):
        parts = batched_inference(module, X, device="cpu", batch_size=batch_size)
        np.testing.assert_array_equal(parts, full)


@pytest.mark.parametrize("in_shape", [(1, 32), (1, 4, 8)])
def test_trained_bottleneck_cnn_predicts_the_same_whatever_the_batch(in_shape):
    # Trained bottleneck blocks' 1x1 convolutions round a sample differently in a
    # batch of 8 than in larger ones unless batches are padded to a multiple of 16.
    from sklearn_resnet import ResNetClassifier

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    t = np.linspace(0, 1, 32)
    X = np.sin(2 * np.pi * np.outer(y + 1, t) + rng.normal(size=(120, 1)))
    X = (X + 0.3 * rng.normal(size=X.shape)).astype(np.float32)
    clf = ResNetClassifier(
        input_shape=in_shape, block="bottleneck", depth=29, width=16, max_epochs=2, random_state=0
    ).fit(X, y)
    full = clf.predict_proba(X)
    for rows in (1, 5, 8, 16, 37):
        np.testing.assert_array_equal(clf.predict_proba(X[:rows]), full[:rows])


def test_batched_inference_reshapes_flat_rows():
    module = build_backbone("cnn", (1, 4, 4), 2, depth=8, width=4).eval()
    X = np.zeros((5, 16), dtype=np.float32)
    out = batched_inference(module, X, device="cpu", batch_size=2, in_shape=(1, 4, 4))
    assert out.shape == (5, 2)


def test_sample_rows_draws_distinct_rows_reproducibly_from_dense_and_sparse_inputs():
    import scipy.sparse as sp

    from sklearn_resnet.sparse_rows import SparseRows

    X = np.arange(60, dtype=np.float32).reshape(20, 3)
    data = TensorData(torch.from_numpy(X), torch.arange(20.0), torch.linspace(0.5, 1.5, 20))
    Xs, ys, ws = data.sample_rows(8, seed=3)
    rows = ys.long()
    assert len(set(rows.tolist())) == 8 and torch.equal(rows, rows.sort().values)
    np.testing.assert_array_equal(Xs.numpy(), X[rows.numpy()])
    assert torch.equal(ws, data.weight[rows])
    assert torch.equal(data.sample_rows(8, seed=3)[1], ys)  # same seed, same rows
    assert not torch.equal(data.sample_rows(8, seed=4)[1], ys)
    assert torch.equal(data.sample_rows(50, seed=0)[1], data.y)  # all rows, in order
    sparse = TensorData(SparseRows(sp.csr_matrix(X)), torch.arange(20.0))
    Xs, ys, ws = sparse.sample_rows(8, seed=3)
    assert ws is None and isinstance(Xs, torch.Tensor)
    np.testing.assert_array_equal(Xs.numpy(), X[ys.long().numpy()])


def test_linear_path_rows_bound_memory_and_work():
    from sklearn_resnet.defaults import linear_path_rows

    for n_features in (1, 13, 64, 300, 1024, 5000):
        rows = linear_path_rows(n_features)
        assert rows >= 1
        assert rows * n_features <= 1 << 24 and rows * n_features**2 <= max(1 << 32, n_features**2)
    assert linear_path_rows(64) == 262_144


def test_outputs_that_turn_infinite_in_their_reduction_are_refused():
    from types import SimpleNamespace

    from sklearn_resnet.inputs import finite_outputs

    estimator = SimpleNamespace(scaling_=None)
    assert finite_outputs(estimator, reduce=lambda v: v * 2)(np.array([1.0])) == 2.0
    with pytest.raises(ValueError, match="produced NaN or infinite outputs"):
        finite_outputs(estimator, reduce=lambda v: v * np.inf)(np.array([10.0]))
    with pytest.raises(ValueError, match="produced NaN or infinite outputs"):
        finite_outputs(estimator)(np.array([np.nan]))


def test_shuffled_batches_keep_each_samples_weight_and_target_with_it():
    n = 103
    data = TensorData(
        torch.arange(n, dtype=torch.float32).reshape(n, 1), torch.arange(n), torch.arange(n) + 1.0
    )
    batches = SliceBatches(data, 10, shuffle=True, generator=torch.Generator().manual_seed(0))
    for xb, (yb, wb) in batches:
        assert torch.equal(xb.ravel().long(), yb)
        assert torch.equal(wb, yb + 1.0)


def test_sparse_training_batches_are_shuffled_like_dense_ones():
    n = 50
    data = TensorData(
        SparseRows(sp.csr_matrix(np.arange(n, dtype=np.float32).reshape(n, 1))), torch.arange(n)
    )
    batches = SliceBatches(data, 10, shuffle=True, generator=torch.Generator().manual_seed(0))
    order = torch.cat([yb for _, (yb, _) in batches])
    assert sorted(order.tolist()) == list(range(n))
    assert not torch.equal(order, torch.arange(n))
    for xb, (yb, _) in batches:
        assert torch.equal(xb.ravel().long(), yb)


def test_flip_mirrors_half_of_the_samples():
    x = torch.arange(8, dtype=torch.float32).view(1, 1, 8).repeat(4000, 1, 1)
    flipped = augment_batch(x, "flip", torch.Generator().manual_seed(0))
    share = torch.all(flipped == x.flip(-1), dim=(1, 2)).float().mean().item()
    assert 0.45 < share < 0.55


def test_sample_weights_become_float32_tensors():
    data = tensor_data(
        np.ones((4, 2)),
        np.arange(4),
        np.array([1.0, 2.0, 3.0, 4.0]),
        classification=True,
        device="cpu",
    )
    assert data.X.dtype == data.weight.dtype == torch.float32 and data.y.dtype == torch.int64


def test_predict_gives_up_when_one_row_runs_out_of_memory(monkeypatch):
    X, y = make_classification(300, 5, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, y)
    calls = []

    def forward_without_memory(x):
        calls.append(len(x))
        if len(calls) > 100:
            raise RuntimeError("still retrying")
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(clf.net_.module_, "forward", forward_without_memory)
    with pytest.raises(torch.OutOfMemoryError):
        clf.predict(X)
