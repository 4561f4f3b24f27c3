"""The safe model format: round trips, and clear errors for every kind of bad file."""

import importlib.util
import json
import pickle
import re
import shutil
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST_CNN_PARAMS, FAST_PARAMS
from numpy.random import RandomState
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import EpochScoring

from sklearn_resnet import ResNetClassifier, ResNetRegressor, load_model, save_model
from sklearn_resnet.persistence import (
    CONFIG_FILE,
    FITTED_ATTRIBUTES,
    FORMAT_VERSION,
    REBUILT_ATTRIBUTES,
    WEIGHTS_FILE,
)

PARAMS = {**FAST_PARAMS, "max_epochs": 3}


# ---- fitted models, one per case ----------------------------------------------------------
def _classifier_int():
    X, y = make_classification(200, 6, n_informative=4, n_classes=3, random_state=0)
    return ResNetClassifier(**PARAMS, class_weight={0: 1.0, 1: 2.0, 2: 0.5}).fit(X, y), X


def _classifier_strings_pandas():
    X, y = make_classification(200, 4, n_informative=2, random_state=1)
    frame = pd.DataFrame(X, columns=["age", "height", "weight", "score"])
    labels = np.array(["no", "yes"])[y]
    clf = ResNetClassifier(**PARAMS, early_stopping=True, validation_fraction=0.25)
    return clf.fit(frame, labels), frame


def _regressor_multi_output():
    X, y = make_regression(200, 5, n_targets=3, noise=0.5, random_state=0)
    return ResNetRegressor(**PARAMS).fit(X, y * 100 + 7), X


def _regressor_single_output():
    X, y = make_regression(200, 5, noise=0.5, random_state=2)
    return ResNetRegressor(**PARAMS, early_stopping=True).fit(X, y), X


def _cnn_with_input_shape():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    return ResNetClassifier(**FAST_CNN_PARAMS, input_shape=(1, 8, 8)).fit(X, y), X


CASES = {
    "classifier_int_labels": _classifier_int,
    "classifier_string_labels_pandas": _classifier_strings_pandas,
    "regressor_multi_output": _regressor_multi_output,
    "regressor_single_output": _regressor_single_output,
    "cnn_input_shape": _cnn_with_input_shape,
}


class _Fitted(dict):
    """Cases fitted on first use, once per test process: ``fitted[name] -> (estimator, X)``."""

    def __missing__(self, name):
        self[name] = CASES[name]()
        return self[name]


@pytest.fixture(scope="module")
def fitted():
    return _Fitted()


@pytest.fixture(scope="module")
def saved_dir(fitted, tmp_path_factory):
    """The string-label pandas classifier saved once, for the tests that damage a copy."""
    return save_model(fitted["classifier_string_labels_pandas"][0], tmp_path_factory.mktemp("m"))


@pytest.fixture
def saved(saved_dir, tmp_path):
    """A fresh copy of the saved model that a test may damage."""
    return shutil.copytree(saved_dir, tmp_path / "model")


def _edit_config(path, change):
    config = json.loads((path / CONFIG_FILE).read_text())
    change(config)
    (path / CONFIG_FILE).write_text(json.dumps(config))


# ---- round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_gives_identical_predictions(case, fitted, tmp_path):
    est, X = fitted[case]
    loaded = load_model(save_model(est, tmp_path / "model"))
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    if hasattr(est, "classes_"):
        assert loaded.classes_.dtype == est.classes_.dtype
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    assert loaded.score(X, est.predict(X)) == est.score(X, est.predict(X))


def test_regressor_outputs_keep_their_shape(fitted, tmp_path):
    multi, X = fitted["regressor_multi_output"]
    single, X1 = fitted["regressor_single_output"]
    assert load_model(save_model(multi, tmp_path / "multi")).predict(X).shape == (200, 3)
    assert load_model(save_model(single, tmp_path / "single")).predict(X1).shape == (200,)


def test_cnn_keeps_its_architecture(fitted, tmp_path):
    cnn, X = fitted["cnn_input_shape"]
    loaded = load_model(save_model(cnn, tmp_path / "model"))
    assert loaded.backbone_ == "cnn" and loaded.input_shape_ == (1, 8, 8)
    assert loaded.get_params()["input_shape"] == (1, 8, 8)
    images = X.reshape(-1, 1, 8, 8)
    np.testing.assert_array_equal(loaded.predict_proba(images), cnn.predict_proba(images))


def test_pandas_feature_names_survive(fitted, tmp_path):
    clf, frame = fitted["classifier_string_labels_pandas"]
    loaded = load_model(save_model(clf, tmp_path / "model"))
    assert loaded.feature_names_in_.tolist() == ["age", "height", "weight", "score"]
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(frame.rename(columns={"age": "years"}))


def test_history_and_derived_attributes_survive(fitted, tmp_path):
    clf, _ = fitted["classifier_string_labels_pandas"]
    loaded = load_model(save_model(clf, tmp_path / "model"))
    without_batches = [{k: v for k, v in row.items() if k != "batches"} for row in clf.history_]
    assert [{k: v for k, v in row.items() if k != "batches"} for row in loaded.history_] == (
        without_batches
    )
    assert loaded.n_iter_ == clf.n_iter_ == 3
    assert loaded.best_epoch_ == clf.best_epoch_
    assert loaded.loss_curve_ == clf.loss_curve_
    assert loaded.validation_scores_ == clf.validation_scores_ is not None
    assert loaded.early_stopping_ is True


def test_labels_and_keys_that_start_with_two_underscores_come_back_exactly(tmp_path):
    X, y = make_classification(60, 4, random_state=0)
    labels = np.array(["__x", "b"])[y]  # like the format's own tags, "__tuple__" say
    clf = ResNetClassifier(**PARAMS, class_weight={"__x": 1.0, "b": 2.0}).fit(X, labels)
    loaded = load_model(save_model(clf, tmp_path / "model"))
    assert loaded.class_weight == {"__x": 1.0, "b": 2.0}
    assert loaded.classes_.tolist() == ["__x", "b"]
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_class_weight_dict_with_int_keys_comes_back_exactly(fitted, tmp_path):
    clf, _ = fitted["classifier_int_labels"]
    loaded = load_model(save_model(clf, tmp_path / "model"))
    assert loaded.class_weight == {0: 1.0, 1: 2.0, 2: 0.5}
    assert all(type(key) is int for key in loaded.class_weight)


def test_loaded_model_clones_pickles_and_trains_on(fitted, tmp_path):
    reg, X = fitted["regressor_multi_output"]
    loaded = load_model(save_model(reg, tmp_path / "model"))
    assert clone(loaded).get_params() == reg.get_params()
    for restored in (pickle.loads(pickle.dumps(loaded)), _joblib_round_trip(loaded, tmp_path)):
        np.testing.assert_array_equal(restored.predict(X), reg.predict(X))
    before = loaded.predict(X)
    loaded.partial_fit(X, reg.predict(X))
    assert loaded.n_iter_ == reg.n_iter_ + 1
    assert not np.array_equal(loaded.predict(X), before)
    np.testing.assert_array_equal(reg.predict(X), before)  # the original is untouched


def _joblib_round_trip(estimator, tmp_path):
    joblib.dump(estimator, tmp_path / "model.joblib")
    return joblib.load(tmp_path / "model.joblib")


def test_loaded_classifier_trains_on_with_partial_fit(fitted, tmp_path):
    clf, X = fitted["classifier_int_labels"]
    loaded = load_model(save_model(clf, tmp_path / "model"))
    loaded.partial_fit(X, clf.predict(X))
    assert loaded.n_iter_ == clf.n_iter_ + 1
    assert set(loaded.predict(X)) <= set(clf.classes_)


def test_loaded_model_trains_on_with_the_batch_size_it_was_fitted_with(tmp_path):
    X, y = make_regression(1200, 4, random_state=0)
    reg = ResNetRegressor(**{**FAST_PARAMS, "max_epochs": 1}).fit(X, y)
    # "auto" on the 960 training rows of the refit's holdout fit (a fifth held out).
    assert reg.net_.batch_size == 64
    loaded = load_model(save_model(reg, tmp_path / "model"))
    assert loaded.net_.batch_size == 64
    steps = []
    loaded.net_.optimizer_.register_step_post_hook(lambda *args: steps.append(1))
    loaded.partial_fit(X, y)
    assert len(steps) == -(-len(X) // 64)


def test_a_multi_output_regressor_saved_as_one_dimensional_is_refused(fitted, tmp_path):
    reg, _ = fitted["regressor_multi_output"]
    path = save_model(reg, tmp_path / "model")
    _edit_config(path, lambda config: config["fitted"].update(_y_ndim=1))
    with pytest.raises(ValueError, match="_y_ndim is 1, which does not fit n_outputs_"):
        load_model(path)


def test_mlp_fitted_on_samples_keeps_their_shape(tmp_path):
    X, y = make_classification(120, 6, random_state=0)
    samples = X.reshape(120, 2, 3)
    mlp = ResNetClassifier(**PARAMS, backbone="mlp").fit(samples, y)
    path = save_model(mlp, tmp_path / "model")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(samples), mlp.predict(X))
    with pytest.raises(ValueError, match=r"fitted on samples shaped \(2, 3\)"):
        loaded.predict(samples.reshape(120, 3, 2))
    _edit_config(path, lambda config: config["fitted"].update(_sample_shape=[4, 2]))
    with pytest.raises(ValueError, match=r"_sample_shape \(4, 2\) is not an MLP's shape"):
        load_model(path)
    # The 'input_shape' parameter set after the fit is for the next fit.
    shaped = ResNetClassifier(**PARAMS, backbone="mlp", input_shape=(2, 3)).fit(X, y)
    loaded = load_model(save_model(shaped.set_params(input_shape=(3, 2)), tmp_path / "shaped"))
    assert loaded.input_shape == (3, 2)
    np.testing.assert_array_equal(loaded.predict(samples), shaped.predict(X))
    with pytest.raises(ValueError, match=r"fitted on samples shaped \(2, 3\)"):
        loaded.predict(samples.reshape(120, 3, 2))


def test_mlp_saved_before_sample_shapes_were_recorded_takes_any_shape_of_its_values(tmp_path):
    X, y = make_classification(120, 6, random_state=0)
    mlp = ResNetClassifier(**PARAMS, backbone="mlp", n_members=1).fit(X.reshape(120, 2, 3), y)
    path = save_model(mlp, tmp_path / "model")

    def version_2(config):  # as version 2 wrote it: no sample shape, block or dropout
        config["format_version"] = 2
        config["params"].pop("n_members", None), config["fitted"].pop("n_members_", None)
        del config["fitted"]["_sample_shape"]
        del config["training"]["block"], config["training"]["dropout"]

    _edit_config(path, version_2)
    loaded = load_model(path)
    for shape in [(2, 3), (3, 2), (6,)]:
        np.testing.assert_array_equal(loaded.predict(X.reshape(120, *shape)), mlp.predict(X))


def test_every_fitted_attribute_is_saved_or_rebuilt(fitted):
    """A new fitted attribute must be added to FITTED_ATTRIBUTES (or REBUILT_ATTRIBUTES)."""
    known = {name for name, _, _ in FITTED_ATTRIBUTES} | set(REBUILT_ATTRIBUTES)
    for case in ("classifier_string_labels_pandas", "regressor_multi_output"):
        est, _ = fitted[case]
        attributes = set(vars(est)) - set(est.get_params(deep=False))
        assert attributes <= known, f"not saved: {sorted(attributes - known)}"


def test_directory_holds_plain_json_and_safetensors(saved):
    assert sorted(p.name for p in saved.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["format"] == "sklearn-resnet"
    # An ensemble (n_members="auto" on 200 rows): version 7.
    assert config["format_version"] == 7 and FORMAT_VERSION == 7
    assert config["params"]["n_members"] == "auto" and config["fitted"]["n_members_"] == 8
    assert config["estimator"] == "ResNetClassifier"
    assert config["fitted"]["classes_"] == {"dtype": "<U3", "values": ["no", "yes"]}


@pytest.mark.parametrize(
    "params, version",
    [
        ({"validation_fraction": 0.1}, 4),
        ({"validation_fraction": 0.3, "early_stopping": True}, 4),
        ({"validation_fraction": 0.1, "early_stopping": "refit"}, 5),
        ({"validation_fraction": "auto", "early_stopping": False}, 6),
        ({"early_stopping": "refit"}, 6),
    ],
)
def test_a_model_is_saved_in_the_lowest_format_version_that_holds_it(params, version, tmp_path):
    # Over 1,000 training rows: one network, as earlier formats hold.
    X, y = make_classification(1500, 6, random_state=0)
    clf = ResNetClassifier(**PARAMS, **params).fit(X, y)
    config = json.loads((save_model(clf, tmp_path / "model") / CONFIG_FILE).read_text())
    assert config["format_version"] == version
    # Stored where the rest cannot tell it (version 6), else derived on loading.
    assert ("validation_fraction_" in config["fitted"]) is (version == 6)
    loaded = load_model(tmp_path / "model")
    assert loaded.validation_fraction == params.get("validation_fraction", "auto")
    assert loaded.validation_fraction_ == clf.validation_fraction_
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("value", ["0.2", True, 0, 1.0, [0.2]])
def test_a_stored_validation_fraction_that_is_no_fraction_is_refused(value, tmp_path):
    X, y = make_classification(120, 6, random_state=0)
    clf = ResNetClassifier(**PARAMS, early_stopping="refit").fit(X, y)
    path = save_model(clf, tmp_path / "model")
    config = json.loads((path / CONFIG_FILE).read_text())
    config["fitted"]["validation_fraction_"] = value
    (path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"'validation_fraction_' is not a number between 0 and 1"):
        load_model(path)


def test_a_validation_fraction_the_parameters_cannot_tell_is_stored(tmp_path):
    X, y = make_classification(1500, 6, random_state=0)  # one network, as in version 6
    clf = ResNetClassifier(**PARAMS, early_stopping="refit", validation_fraction=0.1).fit(X, y)
    clf.partial_fit(X, y)  # keeps selection_history_, holds nothing out
    assert clf.validation_fraction_ is None and hasattr(clf, "selection_history_")
    config = json.loads((save_model(clf, tmp_path / "a") / CONFIG_FILE).read_text())
    assert config["format_version"] == 6 and config["fitted"]["validation_fraction_"] is None
    assert load_model(tmp_path / "a").validation_fraction_ is None
    fitted = ResNetClassifier(**PARAMS, early_stopping=True, validation_fraction=0.3).fit(X, y)
    fitted.set_params(validation_fraction=0.2)  # for the next fit; this one held out 0.3
    assert load_model(save_model(fitted, tmp_path / "b")).validation_fraction_ == 0.3
    # One unpickled from a release without the attribute is saved as that release would.
    fitted.set_params(validation_fraction=0.3)
    del fitted.validation_fraction_
    config = json.loads((save_model(fitted, tmp_path / "c") / CONFIG_FILE).read_text())
    assert config["format_version"] == 4
    assert load_model(tmp_path / "c").validation_fraction_ == 0.3


def test_saving_twice_into_one_directory_replaces_the_model(fitted, tmp_path):
    reg, X = fitted["regressor_multi_output"]
    clf, _ = fitted["classifier_int_labels"]
    save_model(clf, tmp_path / "model")
    loaded = load_model(save_model(reg, tmp_path / "model"))
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]


def test_model_saved_on_an_unavailable_device_loads_on_the_cpu(saved, fitted):
    clf, frame = fitted["classifier_string_labels_pandas"]

    def on_a_gpu(config):
        config["params"].update(device="cuda:97", precision="auto")
        config["fitted"].update(device_="cuda:97", precision_="bf16")

    _edit_config(saved, on_a_gpu)
    loaded = load_model(saved)
    assert (loaded.device_, loaded.precision_) == ("cpu", "32")
    assert (loaded.device, loaded.precision) == ("cuda:97", "auto")
    np.testing.assert_array_equal(loaded.predict_proba(frame), clf.predict_proba(frame))
    # Saved again here, it loads again: the CPU fallback agrees with the parameters.
    again = load_model(save_model(loaded, saved.parent / "again"))
    np.testing.assert_array_equal(again.predict_proba(frame), clf.predict_proba(frame))


def test_loading_leaves_global_random_state_alone(saved):
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    load_model(saved)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)


# ---- refusing to save -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("param", "value", "type_name"),
    [("callbacks", [EpochScoring("r2")], "EpochScoring"), ("random_state", RandomState(0), "")],
)
def test_save_refuses_parameters_it_cannot_store(param, value, type_name, fitted, tmp_path):
    clf = pickle.loads(pickle.dumps(fitted["classifier_int_labels"][0]))
    clf.set_params(**{param: value})
    with pytest.raises(
        ValueError, match=f"parameter '{param}' holds an object of type {type_name}"
    ):
        save_model(clf, tmp_path / "model")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["2020-01-01", "2021-06-30"], dtype="datetime64[D]"),
        np.array([1, 2], dtype="timedelta64[h]"),
    ],
    ids=["dates", "durations"],
)
def test_save_refuses_labels_it_cannot_store_by_name(labels, tmp_path):
    X, y = make_classification(60, 4, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS).fit(X, labels[y])
    with pytest.raises(ValueError, match="classes_ holds labels of type"):
        save_model(clf, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_an_empty_callbacks_list_is_saved_and_loaded(fitted, tmp_path):
    est, X = fitted["classifier_int_labels"]
    clf = pickle.loads(pickle.dumps(est))
    clf.set_params(callbacks=[])
    loaded = load_model(save_model(clf, tmp_path / "model"))
    assert loaded.callbacks == []
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_save_refuses_other_objects_and_paths(fitted, tmp_path):
    clf = fitted["classifier_int_labels"][0]
    pipeline = make_pipeline(StandardScaler(), clf)
    with pytest.raises(TypeError, match="ResNetClassifier or ResNetRegressor; got Pipeline"):
        save_model(pipeline, tmp_path / "p")
    # A subclass would load as its base class, without its own code: joblib keeps it.
    subclass = type("MyClassifier", (ResNetClassifier,), {})
    mine = subclass(**{**PARAMS, "max_epochs": 1}).fit(*make_classification(40, 4, random_state=0))
    with pytest.raises(TypeError, match="got MyClassifier"):
        save_model(mine, tmp_path / "mine")
    assert not (tmp_path / "mine").exists()
    with pytest.raises(NotFittedError):
        save_model(ResNetClassifier(), tmp_path / "unfitted")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="writes a directory"):
        save_model(clf, tmp_path / "file")
    with pytest.raises(ValueError, match=r"cannot write to .*file/model"):
        save_model(clf, tmp_path / "file" / "model")  # below a file: no folder can be made
    (tmp_path / "taken" / "model.safetensors").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"cannot write model\.safetensors .* a directory"):
        save_model(clf, tmp_path / "taken")


def test_a_save_that_fails_leaves_the_saved_model_as_it_was(fitted, tmp_path, monkeypatch):
    first, X = fitted["classifier_int_labels"]
    folder = save_model(first, tmp_path / "model")
    before = {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")}
    other = clone(first).set_params(random_state=1).fit(X, first.predict(X))
    real = Path.write_bytes

    def fail_on_the_config(self, data):
        if self.name.startswith("config.json"):
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", fail_on_the_config)
    with pytest.raises(ValueError, match=r"cannot write to .*No space left on device"):
        save_model(other, folder)
    monkeypatch.undo()
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert sorted(path.name for path in folder.iterdir()) == sorted(before)  # no .partial
    np.testing.assert_array_equal(load_model(folder).predict_proba(X), first.predict_proba(X))


# ---- refusing to load -----------------------------------------------------------------------
CONFIG_EDITS = {
    "newer_version": (lambda c: c.update(format_version=FORMAT_VERSION + 1), "newer sklearn"),
    "bad_version": (lambda c: c.update(format_version="1"), "invalid format_version"),
    "foreign_json": (lambda c: c.update(format="keras"), "not an sklearn-resnet model"),
    "missing_key": (lambda c: c.pop("history"), r"missing keys \['history'\]"),
    "unknown_key": (lambda c: c.update(extra=1), r"unknown keys \['extra'\]"),
    "unknown_estimator": (lambda c: c.update(estimator="os.system"), "names the estimator"),
    "missing_param": (lambda c: c["params"].pop("depth"), r"'params' has missing keys \['depth'"),
    "unknown_param": (lambda c: c["params"].update(evil=1), r"'params' has unknown keys \['evil"),
    "invalid_param": (lambda c: c["params"].update(block="wide"), "invalid parameters.*block"),
    "callbacks": (
        lambda c: c["params"].update(callbacks=["EpochScoring"]),
        "'callbacks' parameter must be null or empty",
    ),
    "unknown_tag": (lambda c: c["params"].update(depth={"__code__": 1}), "unknown tagged value"),
    "missing_fitted": (lambda c: c["fitted"].pop("classes_"), r"missing keys \['classes_'\]"),
    "wrong_task_fitted": (lambda c: c["fitted"].update(_y_ndim=1), r"unknown keys \['_y_ndim'\]"),
    "bad_fitted_type": (lambda c: c["fitted"].update(n_outputs_="2"), "'n_outputs_' is not"),
    "unsorted_classes": (
        lambda c: c["fitted"]["classes_"].update(values=["yes", "no"]),
        "sorted and unique",
    ),
    "bad_label_dtype": (lambda c: c["fitted"]["classes_"].update(dtype="V8"), "'classes_'"),
    "shape_mismatch": (lambda c: c["fitted"].update(width_=16), "(do not fit the network|width_)"),
    "empty_history": (lambda c: c.update(history=[]), "non-empty list"),
    "bad_history_row": (lambda c: c["history"].append({"epoch": "x"}), "history entry 4"),
    "bad_batch_size": (lambda c: c["training"].update(batch_size=0), "batch_size"),
    "wrong_digest": (lambda c: c.update(weights_sha256="0" * 64), "SHA-256"),
}


@pytest.mark.parametrize("edit", list(CONFIG_EDITS))
def test_tampered_config_is_refused(edit, saved):
    change, message = CONFIG_EDITS[edit]
    _edit_config(saved, change)
    with pytest.raises(ValueError, match=message):
        load_model(saved)


def _truncate(data):
    return data[: len(data) // 2]


def _flip_last_byte(data):
    return data[:-1] + bytes([data[-1] ^ 0xFF])


FILE_DAMAGE = {
    "config_empty": (CONFIG_FILE, lambda d: b"", "config.json is empty"),
    "config_truncated": (CONFIG_FILE, _truncate, "not valid JSON"),
    "config_garbage": (CONFIG_FILE, lambda d: b"\xff\xfe\x00garbage", "not valid JSON"),
    "config_nan": (CONFIG_FILE, lambda d: b'{"format": NaN}', "non-standard JSON value NaN"),
    "config_list": (CONFIG_FILE, lambda d: b"[1, 2]", "not an sklearn-resnet model"),
    "weights_empty": (WEIGHTS_FILE, lambda d: b"", "model.safetensors is empty"),
    "weights_truncated": (WEIGHTS_FILE, _truncate, "not a valid safetensors file"),
    "weights_header": (WEIGHTS_FILE, lambda d: b"\xff" * 8 + d[8:], "not a valid safetensors"),
    "weights_flipped": (WEIGHTS_FILE, _flip_last_byte, "SHA-256"),
}


@pytest.mark.parametrize("damage", list(FILE_DAMAGE))
def test_damaged_file_is_refused(damage, saved):
    name, change, message = FILE_DAMAGE[damage]
    (saved / name).write_bytes(change((saved / name).read_bytes()))
    with pytest.raises(ValueError, match=message):
        load_model(saved)


@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE])
def test_missing_file_is_refused(name, saved):
    (saved / name).unlink()
    with pytest.raises(ValueError, match=f"{name} is missing"):
        load_model(saved)


def test_missing_directory_or_a_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="the path is missing"):
        load_model(tmp_path / "nowhere")
    joblib.dump({"a": 1}, tmp_path / "model.joblib")
    with pytest.raises(ValueError, match="the path is a file"):
        load_model(tmp_path / "model.joblib")


class _CreatesFile:
    """Unpickling this runs ``open(target, "w")``: proof that code ran."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickle_payload_works_when_unpickled(tmp_path):
    """The payload of the next test really is harmful: plain unpickling creates its file."""
    marker = tmp_path / "created"
    pickle.loads(pickle.dumps(_CreatesFile(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE])
def test_pickle_in_place_of_a_file_is_never_unpickled(name, saved, tmp_path):
    marker = tmp_path / "pwned"
    (saved / name).write_bytes(pickle.dumps(_CreatesFile(marker)))
    with pytest.raises(ValueError, match=f"{name} is not .* looks like a pickle"):
        load_model(saved)
    assert not marker.exists()


def test_joblib_file_in_place_of_the_weights_is_never_unpickled(saved, tmp_path):
    marker = tmp_path / "pwned"
    joblib.dump(_CreatesFile(marker), saved / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="looks like a pickle"):
        load_model(saved)
    assert not marker.exists()


# ---- the user guide page ----------------------------------------------------------------------
PAGE = Path(__file__).resolve().parent.parent / "docs" / "persistence.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_persistence_page_code_runs(tmp_path, monkeypatch, capsys):
    """docs/persistence.md's Python blocks run in order, as written."""
    # Blocks that need an optional extra run when it is installed: {word in block: module}.
    extras = {"onnxruntime": "onnxruntime", "plot_history": "matplotlib"}
    missing = [word for word, module in extras.items() if not importlib.util.find_spec(module)]
    if "plot_history" not in missing:
        import matplotlib

        matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    blocks = PYTHON_BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) == 4
    namespace = {"__name__": "__docs__"}
    for index, code in enumerate(blocks, 1):
        if any(word in code for word in missing):
            continue
        exec(compile(code, f"persistence.md[python block {index}]", "exec"), namespace)
    assert (tmp_path / "breast_cancer_model" / CONFIG_FILE).is_file()
    n_iter, best_epoch, classes = capsys.readouterr().out.split(" ", 2)
    assert 1 <= int(best_epoch) <= int(n_iter) <= 20 and classes.strip() == "[0 1]"


def test_saved_image_cnn_in_channels_last_loads_with_identical_predictions(tmp_path):
    # Width 8: the estimator trains and predicts image CNNs in channels_last on the CPU,
    # and the loaded model must use the same layout to give the same numbers.
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    params = {"depth": 8, "width": 8, "max_epochs": 1, "random_state": 0, "device": "cpu"}
    est = ResNetClassifier(input_shape=(1, 8, 8), **params).fit(X[:300], y[:300])
    loaded = load_model(save_model(est, tmp_path / "cnn"))
    np.testing.assert_array_equal(loaded.predict_proba(X[:200]), est.predict_proba(X[:200]))
    # Signals as well: they run as height-one images in that layout.
    signal = ResNetClassifier(input_shape=(4, 16), **params).fit(X[:300], y[:300])
    assert signal.module_.signal_channels_last
    for copy in (
        load_model(save_model(signal, tmp_path / "signal")),
        pickle.loads(pickle.dumps(signal)),
    ):
        assert copy.module_.signal_channels_last
        np.testing.assert_array_equal(copy.predict_proba(X[:200]), signal.predict_proba(X[:200]))


def test_a_model_whose_parameters_changed_after_fitting_saves_and_loads(fitted, tmp_path):
    """set_params after a fit changes the next fit, not the fitted network: it still saves."""
    clf, X = fitted["classifier_int_labels"]
    changed = pickle.loads(pickle.dumps(clf))
    changed.set_params(depth=10, width=8, early_stopping=False, precision="bf16")
    loaded = load_model(save_model(changed, tmp_path / "model"))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert (loaded.depth, loaded.width) == (10, 8)


def test_labels_too_wide_to_load_are_refused_when_saving():
    from sklearn_resnet._json_codec import encode_fitted

    with pytest.raises(ValueError, match="more than the 64 MiB the safe format reads back"):
        encode_fitted("labels", np.array(["x" * 1000] * 20_000), "classes_")


#: Parameters changed after a fit, per backbone: each is for the next fit only.
CHANGED_AFTER_FIT = [
    ("mlp", {"scaling": "standard"}),
    ("mlp", {"scaling": None}),
    ("mlp", {"backbone": "cnn", "input_shape": (2, 4)}),
    ("mlp", {"augment": "shift"}),
    ("mlp", {"block": "bottleneck"}),
    ("mlp", {"dropout": 0.3}),
    ("mlp", {"class_weight": {5: 1.0}}),
    ("cnn", {"block": "preact", "depth": 11}),
    ("cnn", {"block": "bottleneck"}),
    ("cnn", {"scaling": "robust", "augment": None, "dropout": 0.2}),
    ("cnn", {"backbone": "mlp", "input_shape": None}),
]


def _outcome(call):
    """What a call gives: its error's type and message, or None."""
    try:
        call()
    except ValueError as error:
        return type(error), str(error)
    return None


@pytest.mark.parametrize(("backbone", "changes"), CHANGED_AFTER_FIT)
def test_parameters_changed_after_a_fit_save_and_load_as_they_are(backbone, changes, tmp_path):
    X, y = make_classification(80, 8, n_informative=4, random_state=0)
    params = PARAMS if backbone == "mlp" else {**FAST_CNN_PARAMS, "input_shape": (1, 8)}
    model = ResNetClassifier(**params).fit(X, y).set_params(**changes)
    loaded = load_model(save_model(model, tmp_path / "model"))
    assert loaded.get_params() == model.get_params()
    assert repr(loaded.module_) == repr(model.module_)  # the fitted network, dropout included
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    # Training on works, or fails, as it does for the model in memory.
    pickled = pickle.loads(pickle.dumps(model))
    assert _outcome(lambda: loaded.partial_fit(X, y)) == _outcome(lambda: pickled.partial_fit(X, y))


def test_a_network_built_with_a_numpy_dropout_rate_saves_it_as_a_number(tmp_path):
    X, y = make_classification(80, 8, random_state=0)
    model = ResNetClassifier(**PARAMS, dropout=np.float32(0.25)).fit(X, y)
    path = save_model(model, tmp_path / "model")
    assert json.loads((path / CONFIG_FILE).read_text())["training"]["dropout"] == 0.25
    assert repr(load_model(path).module_) == repr(model.module_)
