"""Training on a CUDA GPU: every precision, loading GPU-fitted models on a CPU-only
machine, the channels_last layout, compilation (with CUDA graphs too), the pinned
host-memory path, and no host synchronisation per training batch.

Skipped where torch sees no CUDA GPU.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from conftest import FAST_PARAMS
from sklearn.datasets import make_classification

import sklearn_resnet.base as base_module
import sklearn_resnet.data as data_module
from sklearn_resnet import ResNetClassifier
from sklearn_resnet.data import SliceBatches

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PRECISIONS = ["32", "bf16", "16"]
#: Largest difference of a predicted probability between a GPU model (predicting in
#: its training precision) and the same weights on the CPU in fp32. cuDNN runs fp32
#: convolutions in TF32 by default (a 10-bit mantissa, like fp16); bf16 keeps 8 bits.
PROBA_ATOL = {"32": 2e-3, "16": 1e-2, "bf16": 5e-2}
#: Share of samples whose predicted class may differ between the two: only near-ties
#: can flip, and a plain fp32 MLP (no TF32 matrix products by default) has none.
MAX_FLIPS = {"32": 0.01, "16": 0.02, "bf16": 0.03}

MLP_PARAMS = {**FAST_PARAMS, "max_epochs": 2, "device": "cuda"}
CNN_PARAMS = {
    "depth": 8,
    "width": 8,
    "input_shape": (3, 16, 16),
    "max_epochs": 2,
    "random_state": 0,
    "device": "cuda",
}


def mlp_data():
    return make_classification(300, 8, n_informative=5, n_classes=3, random_state=0)


def image_data(n=300):
    """Flat rows of 3x16x16 images; the class brightens one colour channel."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 3, 16, 16)).astype(np.float32)
    X[np.arange(n), y] += 1.0
    return X.reshape(n, -1), y


MODELS = {"mlp": (MLP_PARAMS, mlp_data), "cnn": (CNN_PARAMS, image_data)}


def load_without_cuda(payload: bytes, monkeypatch):
    """Unpickle as a machine without CUDA would, failing on any warning."""
    with monkeypatch.context() as patch:
        patch.setattr(base_module, "is_available", lambda device: not device.startswith("cuda"))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return pickle.loads(payload)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_fit_on_cuda_then_load_on_the_gpu_and_on_a_cpu_only_machine(model, precision, monkeypatch):
    params, data = MODELS[model]
    X, y = data()
    clf = ResNetClassifier(**params, precision=precision).fit(X, y)
    assert clf.device_ == "cuda" and clf.precision_ == precision
    assert all(p.is_cuda and p.dtype == torch.float32 for p in clf.module_.parameters())
    assert np.all(np.isfinite(clf.loss_curve_))
    scaler = clf.net_.grad_scaler_
    if precision == "16":  # fp16 gradients underflow without loss scaling
        assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    else:
        assert scaler is None
    if model == "cnn":
        assert clf.module_.stem.weight.is_contiguous(memory_format=torch.channels_last)
    proba, pred = clf.predict_proba(X), clf.predict(X)
    assert np.all(np.isfinite(proba))
    payload = pickle.dumps(clf)

    on_gpu = pickle.loads(payload)
    assert on_gpu.device_ == "cuda" and on_gpu.precision_ == precision
    assert next(on_gpu.module_.parameters()).is_cuda
    np.testing.assert_allclose(on_gpu.predict_proba(X), proba, rtol=0, atol=1e-6)

    on_cpu = load_without_cuda(payload, monkeypatch)
    assert on_cpu.device_ == "cpu" and on_cpu.precision_ == "32"
    assert all(p.device.type == "cpu" for p in on_cpu.module_.parameters())
    if model == "cnn":  # the CPU's layout for this width (channels_last from width 8)
        layout = base_module.memory_format("cpu", on_cpu.input_shape_, on_cpu.width_)
        assert on_cpu.module_.stages[0][0].conv1.weight.is_contiguous(memory_format=layout)
    np.testing.assert_allclose(on_cpu.predict_proba(X), proba, rtol=0, atol=PROBA_ATOL[precision])
    assert np.mean(on_cpu.predict(X) != pred) <= MAX_FLIPS[precision]
    if model == "mlp" and precision == "32":
        np.testing.assert_array_equal(on_cpu.predict(X), pred)


@pytest.mark.parametrize("precision", ["32", "16"])
def test_a_model_loaded_back_on_the_gpu_trains_on(precision):
    X, y = mlp_data()
    clf = ResNetClassifier(**MLP_PARAMS, precision=precision).fit(X, y)
    loaded = pickle.loads(pickle.dumps(clf))
    # The fused AdamW keeps its moments and step counts on the parameters' device;
    # checked before training, as its kernel would read counts left in host memory.
    state = loaded.net_.optimizer_.state.values()
    devices = {t.device.type for s in state for t in s.values() if torch.is_tensor(t)}
    assert devices == {"cuda"}
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == clf.n_iter_ + 1 and np.isfinite(loaded.loss_curve_[-1])
    assert next(loaded.module_.parameters()).is_cuda


def test_auto_device_and_precision_pick_cuda_and_bf16_where_supported():
    X, y = mlp_data()
    clf = ResNetClassifier(**{**MLP_PARAMS, "device": "auto", "precision": "auto"}).fit(X, y)
    assert clf.device_ == "cuda"
    assert clf.precision_ == ("bf16" if torch.cuda.get_device_capability() >= (8, 0) else "32")
    assert next(clf.module_.parameters()).is_cuda


def test_an_explicit_device_index_is_kept_through_pickling():
    X, y = image_data()
    clf = ResNetClassifier(**{**CNN_PARAMS, "device": "cuda:0", "precision": "32"}).fit(X, y)
    assert clf.device_ == "cuda:0"
    loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.device_ == "cuda:0"
    weight = loaded.module_.stem.weight
    assert weight.device == torch.device("cuda:0")
    assert weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=0, atol=1e-6)


def test_compile_on_cuda_trains_and_pickles():
    X, y = mlp_data()
    # Equal batches and no validation: one graph for training, one for prediction.
    params = {**MLP_PARAMS, "compile": True, "precision": "32", "early_stopping": False}
    clf = ResNetClassifier(**params, batch_size=100).fit(X, y)
    assert type(clf.net_.module_).__name__ == "OptimizedModule"
    assert type(clf.module_).__name__ == "ResidualMLP"
    assert np.all(np.isfinite(clf.loss_curve_)) and clf.n_iter_ == 2
    proba = clf.predict_proba(X)
    loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.device_ == "cuda" and next(loaded.module_.parameters()).is_cuda
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_data_too_large_for_the_gpu_is_batched_from_pinned_host_memory(model, monkeypatch):
    params, data = MODELS[model]
    params = {**params, "precision": "32"}
    X, y = data()
    # Deterministic cuDNN kernels, so that the two fits may only differ by their data path.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    resident = ResNetClassifier(**params).fit(X, y)
    host_data = []
    host_batches = SliceBatches._host_batches

    def spy(self):
        host_data.append(self.dataset.X.device.type)
        return host_batches(self)

    monkeypatch.setattr(SliceBatches, "_host_batches", spy)
    monkeypatch.setattr(data_module, "device_fits", lambda n_bytes, device: False)
    streamed = ResNetClassifier(**params).fit(X, y)
    assert host_data and set(host_data) == {"cpu"}
    assert next(streamed.module_.parameters()).is_cuda
    np.testing.assert_allclose(streamed.predict_proba(X), resident.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_reduce_overhead_compile_trains_with_cuda_graphs_like_eager_and_pickles(model):
    params, data = MODELS[model]
    X, y = data()
    params = {**params, "precision": "bf16", "early_stopping": False, "batch_size": 100}
    eager = ResNetClassifier(**params).fit(X, y)
    graphed = ResNetClassifier(**params, compile="reduce-overhead").fit(X, y)
    assert type(graphed.net_.module_).__name__ == "OptimizedModule"
    assert graphed.n_iter_ == 2
    # The same initial weights and batches: only the kernels' rounding differs.
    np.testing.assert_allclose(graphed.loss_curve_, eager.loss_curve_, rtol=0.02)
    proba = graphed.predict_proba(X)
    np.testing.assert_allclose(proba, eager.predict_proba(X), rtol=0, atol=0.05)
    loaded = pickle.loads(pickle.dumps(graphed))
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_reduce_overhead_compile_validates_and_predicts_through_the_plain_network(model):
    """A validation pass reads the network's outputs after each batch; prediction runs
    the uncompiled network, whose batches come in many sizes."""
    params, data = MODELS[model]
    X, y = data()
    params = {**params, "early_stopping": True, "batch_size": 50}
    clf = ResNetClassifier(**params, compile="reduce-overhead").fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ == 2
    assert np.all(np.isfinite(clf.validation_scores_))
    for rows in (X, X[:7], X[:33]):  # batches of 304, 16 and 48 rows
        assert np.all(np.isfinite(clf.predict_proba(rows)))


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_training_does_not_wait_for_the_gpu_at_every_batch(model, early_stopping):
    """Count the operations that synchronise the host with the GPU (torch's sync debug
    mode warns at each): as many with 30 batches per epoch as with 3, validation too."""
    params, data = MODELS[model]
    X, y = data()
    params = {**params, "precision": "bf16", "early_stopping": early_stopping}

    def synchronisations(batch_size):
        clf = ResNetClassifier(**params, batch_size=batch_size)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                clf.fit(X, y)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        # One warning per synchronising call (and, once per process, a notice that the
        # debug mode is a prototype, which is not one).
        return [str(w.message) for w in caught if "called a synchronizing" in str(w.message)]

    few, many = synchronisations(100), synchronisations(10)
    assert len(many) == len(few), many
