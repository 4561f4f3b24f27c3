"""Speed paths give the same results as the plain ones: few-row prediction,
channels_last layout, host-memory batches."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST_CNN_PARAMS, FAST_PARAMS
from sklearn.datasets import load_digits, make_classification
from skorch.callbacks import ProgressBar

import sklearn_resnet.base as base_module
import sklearn_resnet.inputs as inputs_module
from sklearn_resnet import ResNetClassifier, ResNetRegressor
from sklearn_resnet.device import memory_format
from sklearn_resnet.training import Callback, _reads_batches


@pytest.fixture(scope="module")
def fitted():
    X, y = make_classification(300, 8, random_state=0)
    return ResNetClassifier(**FAST_PARAMS).fit(X, y), X


def test_few_rows_take_the_fast_path_with_identical_results(fitted, monkeypatch):
    clf, X = fitted
    fast = []
    original = inputs_module.small_float32

    def spy(est, X):
        result = original(est, X)
        fast.append(result is not None)
        return result

    monkeypatch.setattr(base_module, "small_float32", spy)
    full = clf.predict_proba(X)  # 300 rows: the general path
    one = np.vstack([clf.predict_proba(X[i : i + 1]) for i in range(5)])
    np.testing.assert_array_equal(one, full[:5])
    # int and bool arrays are numbers too, converted like sklearn converts them
    np.testing.assert_array_equal(
        clf.predict_proba(X[:3].astype(np.int64)), clf.predict_proba(X[:3].astype(int))
    )
    assert fast == [False] + [True] * 7


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (lambda X: np.full((1, 8), np.nan), ValueError, "Input X contains NaN"),
        (lambda X: X[:1, :5], ValueError, "X has 5 features"),
        (lambda X: X[:1].astype(complex), ValueError, "Complex data not supported"),
        (lambda X: np.array([["word"] * 8], dtype=object), ValueError, "could not convert"),
    ],
)
def test_bad_few_row_input_gets_the_usual_errors(fitted, bad, error, message):
    clf, X = fitted
    with pytest.raises(error, match=message):
        clf.predict(bad(X))


def test_feature_names_are_still_checked_for_few_rows():
    X, y = make_classification(200, 4, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcd"))
    reg = ResNetRegressor(**FAST_PARAMS).fit(frame, y.astype(float))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        reg.predict(X[:1])


def test_channels_last_is_chosen_for_images_on_cuda_and_for_wide_enough_cnns_on_cpu():
    assert memory_format("cuda", (3, 32, 32)) is torch.channels_last
    assert memory_format("cuda:1", (3, 32, 32), 4) is torch.channels_last
    assert memory_format("cuda", (1, 40)) is torch.contiguous_format
    assert memory_format("cpu", (3, 32, 32), 16) is torch.channels_last
    assert memory_format("cpu", (3, 32, 32), 8) is torch.channels_last
    for width in (None, 4, 6, 12):
        assert memory_format("cpu", (3, 32, 32), width) is torch.contiguous_format
    # Signals on the CPU too (as height-one images), under the same width rule.
    assert memory_format("cpu", (1, 40), 16) is torch.channels_last
    assert memory_format("cpu", (1, 40), 4) is torch.contiguous_format
    assert memory_format("cpu", (40,), 16) is torch.contiguous_format
    assert memory_format("mps", (3, 32, 32), 16) is torch.contiguous_format


def test_default_image_cnn_trains_in_channels_last_on_cpu_and_narrow_ones_do_not():
    X, y = load_digits(return_X_y=True)

    def inner_conv_weight(est):  # a convolution with several input channels
        convs = [m for m in est.module_.modules() if isinstance(m, torch.nn.Conv2d)]
        return next(c.weight for c in convs if c.in_channels > 1 and c.kernel_size == (3, 3))

    wide = ResNetClassifier(**{**FAST_CNN_PARAMS, "width": 8, "input_shape": (1, 8, 8)})
    weight = inner_conv_weight(wide.fit(X[:100], y[:100]))
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    narrow = ResNetClassifier(**{**FAST_CNN_PARAMS, "input_shape": (1, 8, 8)})  # width 4
    weight = inner_conv_weight(narrow.fit(X[:100], y[:100]))
    assert weight.is_contiguous() and not weight.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_training_and_prediction_match_the_default_layout(monkeypatch):
    X, y = load_digits(return_X_y=True)
    X, y = X[:200], y[:200]
    # Width 8: with fewer channels torch's CPU NHWC kernels give other numbers, which
    # is why the estimator keeps narrow CNNs in the default layout on the CPU.
    params = {**FAST_CNN_PARAMS, "width": 8, "input_shape": (1, 8, 8)}
    monkeypatch.setattr(base_module, "memory_format", lambda *args: torch.contiguous_format)
    plain = ResNetClassifier(**params).fit(X, y)
    monkeypatch.setattr(base_module, "memory_format", lambda *args: torch.channels_last)
    nhwc = ResNetClassifier(**params).fit(X, y)
    conv = nhwc.module_.stem.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and conv.shape[-1] == 3
    np.testing.assert_allclose(nhwc.predict_proba(X), plain.predict_proba(X), atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_host_batches_pinned_and_copied_give_the_same_model(monkeypatch):
    X, y = load_digits(return_X_y=True)
    params = {**FAST_CNN_PARAMS, "input_shape": (1, 8, 8), "device": "cuda", "precision": "32"}
    resident = ResNetClassifier(**params).fit(X, y)
    import sklearn_resnet.data as data_module

    monkeypatch.setattr(data_module, "device_fits", lambda n_bytes, device: False)
    streamed = ResNetClassifier(**params).fit(X, y)
    np.testing.assert_allclose(streamed.predict_proba(X), resident.predict_proba(X), atol=1e-5)


def test_signal_cnn_trains_in_channels_last_on_cpu_like_the_default_layout(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 2 * 24)).astype(np.float32)
    y = (X[:, :24].mean(axis=1) > 0).astype(int)
    params = {**FAST_CNN_PARAMS, "width": 8, "input_shape": (2, 24)}
    nhwc = ResNetClassifier(**params).fit(X, y)
    assert nhwc.module_.signal_channels_last  # chosen by default at width 8
    assert (
        not ResNetClassifier(**FAST_CNN_PARAMS, input_shape=(2, 24))
        .fit(X, y)
        .module_.signal_channels_last
    )
    monkeypatch.setattr(base_module, "memory_format", lambda *args: torch.contiguous_format)
    plain = ResNetClassifier(**params).fit(X, y)
    assert not plain.module_.signal_channels_last
    np.testing.assert_allclose(nhwc.predict_proba(X), plain.predict_proba(X), atol=1e-4)


def test_training_reads_the_batch_losses_once_per_epoch_not_once_per_batch(monkeypatch):
    """skorch reads every batch's loss with ``.item()``, which on a GPU makes the host
    wait for each step before it can queue the next; the net reads an epoch's together."""
    X, y = make_classification(300, 8, random_state=0)
    reads = []
    for name in ("item", "__float__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            reads.append(self)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def reads_of_a_fit(batch_size):
        reads.clear()
        params = {**FAST_PARAMS, "early_stopping": True, "batch_size": batch_size}
        ResNetClassifier(**params).fit(X, y)
        return len(reads)

    assert reads_of_a_fit(8) == reads_of_a_fit(128)


def _batch_losses(clf) -> list:
    return [
        row[key]
        for epoch in clf.history_
        for row in epoch["batches"]
        for key in ("train_loss", "valid_loss")
        if key in row
    ]


def test_batch_losses_are_stored_as_floats_that_average_to_the_epoch_loss():
    X, y = make_classification(300, 8, random_state=0)
    params = {**FAST_PARAMS, "early_stopping": True, "batch_size": 32}
    clf = ResNetClassifier(**params).fit(X, y)
    assert not _reads_batches(clf.net_.callbacks_)  # the losses were read once per epoch
    assert all(type(value) is float for value in _batch_losses(clf))
    last = clf.history_[-1]
    train = [row for row in last["batches"] if "train_loss" in row]
    mean = np.average(
        [r["train_loss"] for r in train], weights=[r["train_batch_size"] for r in train]
    )
    assert last["train_loss"] == pytest.approx(mean, rel=1e-12)


def test_a_callback_acting_on_every_batch_reads_its_loss_as_a_float():
    """As under skorch's own loop: skorch's ProgressBar shows the batch losses."""
    X, y = make_classification(300, 8, random_state=0)
    read = []

    class ReadBatchLoss(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            read.append(net.history[-1, "batches", -1, "train_loss" if training else "valid_loss"])

    params = {**FAST_PARAMS, "early_stopping": True, "batch_size": 32}
    clf = ResNetClassifier(**params, callbacks=[ReadBatchLoss()]).fit(X, y)
    assert read and all(type(value) is float for value in read)
    assert read == _batch_losses(clf)
    assert _reads_batches([("progress_bar", ProgressBar())])
