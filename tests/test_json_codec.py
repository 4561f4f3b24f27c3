"""The safe format's JSON codec, its consistency checks and the check of output paths."""

import json
import math
import os

import numpy as np
import pytest
from conftest import FAST_PARAMS
from sklearn.datasets import make_classification

from sklearn_resnet import ResNetClassifier
from sklearn_resnet._json_codec import (
    MAX_NESTING,
    FormatError,
    check_nesting,
    decode,
    decode_fitted,
    decode_history,
    encode,
)
from sklearn_resnet._load_checks import check_fitted
from sklearn_resnet.paths import unwritable_file


def _through_json(value):
    return decode(json.loads(json.dumps(encode(value, "x"), allow_nan=False)), "x")


def test_non_finite_floats_are_tagged_and_come_back():
    assert encode(float("inf"), "x") == {"__float__": "inf"}
    assert _through_json(float("-inf")) == float("-inf")
    assert math.isnan(_through_json(float("nan")))
    assert _through_json([1.5, (2, {3: "c"})]) == [1.5, (2, {3: "c"})]


@pytest.mark.parametrize(
    "tagged", [{"__tuple__": [1], "x": 2}, {"__tuple__": [1], "__float__": "nan"}, {"__set__": []}]
)
def test_a_tagged_object_with_other_keys_or_an_unknown_tag_is_refused(tagged):
    with pytest.raises(FormatError, match="unknown tagged value"):
        decode(tagged, "x")


def test_labels_must_have_the_json_type_of_their_dtype():
    with pytest.raises(FormatError, match="not a valid labels"):
        decode_fitted("labels", {"dtype": "<i8", "values": [False, True]}, "classes_")
    with pytest.raises(FormatError, match="not a valid labels"):
        decode_fitted("labels", {"dtype": "|b1", "values": [0, 1]}, "classes_")
    labels = decode_fitted("labels", {"dtype": "<i8", "values": [0, 1]}, "classes_")
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1]


def test_nesting_is_allowed_up_to_the_limit():
    def nested(levels):
        value = []
        for _ in range(levels - 1):
            value = [value]
        return value

    check_nesting(nested(MAX_NESTING))
    with pytest.raises(FormatError, match=f"more than {MAX_NESTING} levels"):
        check_nesting(nested(MAX_NESTING + 1))


def test_decoded_history_rows_hold_an_empty_batches_list():
    rows = decode_history([{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.4}])
    assert [row["batches"] for row in rows] == [[], []]


def test_a_fitted_classifier_of_one_class_is_inconsistent():
    X, y = make_classification(40, 4, random_state=0)
    clf = ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 1}).fit(X, y)
    check_fitted(clf)
    clf.classes_, clf.n_outputs_ = np.array([0]), 1
    with pytest.raises(FormatError, match="classes_ must hold n_outputs_ >= 2 labels"):
        check_fitted(clf)


def test_a_folder_without_write_permission_is_reported(tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK and real(path, mode))
    assert unwritable_file(tmp_path / "model.onnx") == "its folder is not writable"
    monkeypatch.setattr(os, "access", real)
    assert unwritable_file(tmp_path / "model.onnx") is None
