"""ONNX export: onnxruntime gives the estimator's own outputs, for any batch size."""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import FAST_CNN_PARAMS, FAST_PARAMS
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.preprocessing import StandardScaler

from sklearn_resnet import ResNetClassifier, ResNetRegressor, onnx_export, to_onnx
from sklearn_resnet.onnx_export import _InferenceGraph

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

ATOL = 1e-4
PARAMS = {**FAST_PARAMS, "max_epochs": 3}


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # parallel test workers share the cores
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session, X):
    return session.run(None, {"input": np.asarray(X, dtype=np.float32)})[0]


def _metadata(path):
    return {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}


def _check_batches(session, estimator, X, method):
    """Equal outputs for one row, an odd batch and the whole set: the batch is dynamic."""
    for rows in (1, 7, len(X)):
        got, expected = _run(session, X[:rows]), getattr(estimator, method)(X[:rows])
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def test_mlp_classifier_exports_probabilities(tmp_path):
    X, y = make_classification(200, 8, n_informative=5, n_classes=3, random_state=0)
    labels = np.array(["ant", "bee", "cow"])[y]
    clf = ResNetClassifier(**PARAMS).fit(X, labels)
    path = to_onnx(clf, tmp_path / "clf.onnx")
    session = _session(path)
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    assert session.get_inputs()[0].shape[1] == 8
    _check_batches(session, clf, X, "predict_proba")
    metadata = _metadata(path)
    classes = np.array(json.loads(metadata["classes"]))
    np.testing.assert_array_equal(classes[_run(session, X).argmax(axis=1)], clf.predict(X))
    assert metadata["output"] == "probabilities"
    assert metadata["estimator"] == "ResNetClassifier"


def test_cnn_2d_classifier_on_flat_rows(tmp_path):
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    clf = ResNetClassifier(**FAST_CNN_PARAMS, input_shape=(1, 8, 8)).fit(X, y)
    session = _session(to_onnx(clf, tmp_path / "cnn.onnx"))
    _check_batches(session, clf, X, "predict_proba")
    np.testing.assert_array_equal(_run(session, X).argmax(axis=1), clf.predict(X))
    assert json.loads(_metadata(tmp_path / "cnn.onnx")["input_shape"]) == [1, 8, 8]


@pytest.mark.parametrize("width", [4, 8])  # width 8 runs as height-one images on the CPU
def test_cnn_1d_multi_output_regressor(tmp_path, width):
    X, y = make_regression(200, 16, n_targets=2, noise=0.5, random_state=0)
    params = {**FAST_CNN_PARAMS, "width": width}
    reg = ResNetRegressor(**params, input_shape=(2, 8)).fit(X, y / 10)
    assert reg.backbone_ == "cnn" and reg.module_.signal_channels_last == (width == 8)
    session = _session(to_onnx(reg, tmp_path / "reg.onnx"))
    assert [o.name for o in session.get_outputs()] == ["predictions"]
    _check_batches(session, reg, X, "predict")


@pytest.mark.parametrize(
    "backbone, precision, bound",
    [("mlp", "16", 1e-4), ("mlp", "bf16", 1e-4), ("cnn", "16", 1e-3), ("cnn", "bf16", 1e-2)],
)
def test_a_reduced_precision_regressor_exports_within_the_documented_gap(
    tmp_path, backbone, precision, bound
):
    """persistence.md: the float32 graph and ``predict`` under autocast differ by about
    1e-5 / 3e-5 of the spread (MLP, float16 / bfloat16) and a few 1e-4 / 1e-3 (CNN)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((37, 3)), rng.standard_normal(37) * 10 + 100
    params = {"depth": 4 if backbone == "mlp" else 8, "width": 6, "max_epochs": 2}
    reg = ResNetRegressor(
        backbone=backbone, precision=precision, device="cpu", random_state=0, **params
    ).fit(X, y)
    gap = np.abs(_run(_session(to_onnx(reg, tmp_path / "reg.onnx")), X) - reg.predict(X)).max()
    assert gap / y.std() < bound


def test_single_output_regressor_graph_returns_one_dimension():
    # The graph that to_onnx exports, run in torch: exporting takes seconds, and the
    # multi-output test above already checks the exported de-standardisation.
    X, y = make_regression(100, 5, noise=0.5, random_state=1)
    reg = ResNetRegressor(**PARAMS).fit(X, y * 50 + 3)
    with torch.inference_mode():
        out = _InferenceGraph(reg).eval()(torch.as_tensor(X, dtype=torch.float32)).numpy()
    assert out.shape == (100,) and out.dtype == np.float64
    np.testing.assert_allclose(out, reg.predict(X), rtol=0, atol=ATOL)


@pytest.fixture(scope="module")
def small_classifier():
    X, y = make_classification(60, 4, random_state=0)
    return ResNetClassifier(**{**PARAMS, "max_epochs": 1}).fit(X, y)


def test_missing_onnx_gives_an_install_hint(small_classifier, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"\['onnx'\].*sklearn-resnet\[onnx\]"):
        to_onnx(small_classifier, tmp_path / "clf.onnx")
    assert not (tmp_path / "clf.onnx").exists()


def test_an_opset_the_network_cannot_have_is_refused_quietly(small_classifier, tmp_path, capfd):
    with pytest.raises(ValueError, match=r"cannot write opset_version=13: .* opset 17 or later"):
        to_onnx(small_classifier, tmp_path / "old.onnx", opset_version=13)
    assert not (tmp_path / "old.onnx").exists()
    assert "Traceback" not in capfd.readouterr().err  # the converter's log stays quiet
    path = to_onnx(small_classifier, tmp_path / "new.onnx", opset_version=18)
    assert {o.domain: o.version for o in onnx.load(str(path)).opset_import}[""] == 18


@pytest.mark.parametrize(
    ("opset", "message"),
    [
        ("18", r"opset_version must be an int or None; got '18' \(str\)"),
        (18.0, r"must be an int or None; got 18.0 \(float\)"),
        (True, r"must be an int or None; got True \(bool\)"),
        (0, r"opset_version=0 is not an ONNX opset: the installed onnx .* knows opsets 1 to"),
        ("newest + 1", r"is not an ONNX opset"),
    ],
)
def test_an_opset_version_that_is_no_opset_is_refused_before_export(
    small_classifier, tmp_path, monkeypatch, opset, message
):
    if opset == "newest + 1":
        opset = onnx.defs.onnx_opset_version() + 1
    monkeypatch.setattr(onnx_export, "_export", None)  # never reached
    with pytest.raises(ValueError, match=message):
        to_onnx(small_classifier, tmp_path / "model.onnx", opset_version=opset)
    assert not (tmp_path / "model.onnx").exists()


def test_an_opset_version_of_a_numpy_int_is_taken(small_classifier, tmp_path):
    path = to_onnx(small_classifier, tmp_path / "model.onnx", opset_version=np.int64(18))
    assert {o.domain: o.version for o in onnx.load(str(path)).opset_import}[""] == 18


def test_a_cnn_below_opset_18_is_refused_with_the_cnn_reason(tmp_path):
    X, y = load_digits(return_X_y=True)
    cnn = ResNetClassifier(**FAST_CNN_PARAMS, input_shape=(1, 8, 8)).fit(X[:120], y[:120])
    with pytest.raises(ValueError, match=r"opset_version=17: .*\(a CNN needs opset 18 or later"):
        to_onnx(cnn, tmp_path / "cnn17.onnx", opset_version=17)
    assert not (tmp_path / "cnn17.onnx").exists()


def test_quantile_scaling_is_refused_before_export(tmp_path):
    X, y = make_classification(60, 4, random_state=0)
    clf = ResNetClassifier(**{**PARAMS, "max_epochs": 1}, scaling="quantile").fit(X, y)
    with pytest.raises(ValueError, match="scaling='quantile'"):
        to_onnx(clf, tmp_path / "clf.onnx")


def test_labels_json_cannot_hold_are_refused_before_export(tmp_path):
    X, y = make_classification(60, 4, random_state=0)
    days = np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[D]")[y]
    clf = ResNetClassifier(**{**PARAMS, "max_epochs": 1}).fit(X, days)
    with pytest.raises(ValueError, match=r"labels of dtype datetime64\[D\] cannot be written"):
        to_onnx(clf, tmp_path / "clf.onnx")
    assert not (tmp_path / "clf.onnx").exists()


@pytest.mark.parametrize("target", ["folder", "missing/clf.onnx"])
def test_an_unwritable_path_is_refused_before_export(
    small_classifier, tmp_path, monkeypatch, target
):
    def no_export(*args, **kwargs):
        raise AssertionError("the export ran before the path was checked")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    (tmp_path / "folder").mkdir()
    problem = "it is a directory" if target == "folder" else "its folder does not exist"
    with pytest.raises(ValueError, match=f"to_onnx cannot write .*: {problem}"):
        to_onnx(small_classifier, tmp_path / target)


def test_other_objects_are_refused(tmp_path):
    with pytest.raises(TypeError, match="got StandardScaler"):
        to_onnx(StandardScaler(), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="not fitted"):
        to_onnx(ResNetRegressor(), tmp_path / "x.onnx")
