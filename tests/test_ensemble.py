"""Ensembles of networks trained together (``n_members``) and the small-data choices."""

import hashlib
import json
import pickle
import time

import numpy as np
import pytest
import torch
from conftest import FAST_PARAMS
from safetensors.torch import load_file, save
from sklearn.datasets import load_digits, make_classification, make_regression

from sklearn_resnet import ResNetClassifier, ResNetRegressor, load_model, save_model
from sklearn_resnet.backbones import (
    NetworkEnsemble,
    ResidualMLP,
    build_backbone,
    ensemble_members,
    last_block_prefix,
)
from sklearn_resnet.defaults import (
    SMALL_DATA_MLP_CLASSIFIER,
    resolve_batch_size,
    resolve_depth,
    resolve_n_members,
    resolve_scaling,
    small_data_choices,
)
from sklearn_resnet.persistence import CONFIG_FILE, WEIGHTS_FILE


def _members(n, n_outputs=3):
    return [ResidualMLP(4, n_outputs, n_blocks=1, width=8) for _ in range(n)]


# ---- the module ---------------------------------------------------------------------------
def test_an_ensemble_returns_every_member_in_training_and_their_mean_in_evaluation():
    torch.manual_seed(0)
    x = torch.randn(6, 4)
    classify = NetworkEnsemble(_members(3), average="probability")
    each = torch.stack([member(x) for member in classify.members])
    assert torch.equal(classify.train()(x), each)
    mean_probability = torch.softmax(each, dim=-1).mean(0)
    torch.testing.assert_close(torch.softmax(classify.eval()(x), dim=-1), mean_probability)
    torch.testing.assert_close(classify(x).exp(), mean_probability)  # log-probabilities
    regress = NetworkEnsemble(_members(3, n_outputs=2), average="mean").eval()
    torch.testing.assert_close(regress(x), torch.stack([m(x) for m in regress.members]).mean(0))


def test_an_ensemble_needs_two_members_and_a_known_average():
    with pytest.raises(ValueError, match="at least 2 members; got 1"):
        NetworkEnsemble(_members(1), average="mean")
    with pytest.raises(ValueError, match="Unknown average 'median'"):
        NetworkEnsemble(_members(2), average="median")
    with pytest.raises(ValueError, match="n_members must be at least 1; got 0"):
        build_backbone("mlp", (4,), 2, n_members=0)


@pytest.mark.parametrize("kind, shape", [("mlp", (4,)), ("cnn", (1, 8))])
def test_build_backbone_makes_independently_started_members(kind, shape):
    torch.manual_seed(0)
    ensemble = build_backbone(kind, shape, 2, n_members=3, average="mean")
    assert isinstance(ensemble, NetworkEnsemble) and ensemble.n_members == 3
    first, second = (member.state_dict() for member in ensemble.members[:2])
    assert not torch.equal(first["stem.weight"], second["stem.weight"])
    assert ensemble_members(ensemble) == list(ensemble.members)
    n_blocks = 3 if kind == "mlp" else 1
    assert any(
        name.startswith(last_block_prefix(kind, n_blocks, 3)) for name in ensemble.state_dict()
    )


# ---- training -----------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_each_member_trains_as_it_would_alone(optimizer):
    """Member k of an ensemble is the network that one fit would train from its start:
    the same start (members are drawn in turn from one seed), batches and gradients."""
    X, y = make_classification(300, 6, random_state=0)
    params = {**FAST_PARAMS, "optimizer": optimizer, "batch_size": 64, "max_epochs": 3}
    alone = ResNetClassifier(**params, n_members=1).fit(X, y)
    together = ResNetClassifier(**params, n_members=3).fit(X, y)
    first = together.module_.members[0].state_dict()
    for name, tensor in alone.module_.state_dict().items():
        torch.testing.assert_close(first[name], tensor, rtol=1e-5, atol=1e-6)
    # The recorded training loss is the members' mean, so it is of the same size.
    assert together.loss_curve_[0] == pytest.approx(alone.loss_curve_[0], rel=0.2)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_weighted_smoothed_and_multi_output_losses_train_each_member_as_alone(task):
    """Targets and weights are tiled over the members: with sample and class weights and
    label smoothing (classifier) or two weighted outputs (regressor), member 0 still is
    the network a one-network fit trains."""
    rng = np.random.default_rng(0)
    weight = rng.uniform(0.2, 3.0, 300)
    params = {**FAST_PARAMS, "batch_size": 64, "max_epochs": 3, "early_stopping": False}
    if task == "classification":
        X, y = make_classification(300, 6, n_classes=3, n_informative=4, random_state=0)
        Estimator = ResNetClassifier
        params |= {"class_weight": "balanced", "label_smoothing": 0.1}
    else:
        X, y = make_regression(300, 6, n_targets=2, random_state=0)
        Estimator = ResNetRegressor
    alone = Estimator(**params, n_members=1).fit(X, y, sample_weight=weight)
    together = Estimator(**params, n_members=2).fit(X, y, sample_weight=weight)
    first = together.module_.members[0].state_dict()
    for name, tensor in alone.module_.state_dict().items():
        torch.testing.assert_close(first[name], tensor, rtol=1e-5, atol=1e-6)


def test_predictions_are_the_members_mean_probability_and_output():
    X, y = make_classification(200, 6, n_classes=3, n_informative=4, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, n_members=4).fit(X, y)
    inputs = torch.as_tensor(X, dtype=torch.float32)
    with torch.no_grad():
        each = [torch.softmax(m.eval()(inputs), dim=1) for m in clf.module_.members]
    np.testing.assert_allclose(clf.predict_proba(X), torch.stack(each).mean(0), atol=1e-6)
    assert np.array_equal(clf.predict(X), clf.classes_[clf.predict_proba(X).argmax(1)])
    X, y = make_regression(200, 5, random_state=0)
    reg = ResNetRegressor(**FAST_PARAMS, n_members=3, early_stopping=False).fit(X, y)
    assert reg.n_members_ == 3 and isinstance(reg.module_, NetworkEnsemble)
    # Every member has a linear path, started at the same ridge regression and trained
    # on apart since.
    first, second = (m.linear.weight.detach() for m in reg.module_.members[:2])
    assert not torch.equal(first, second) and np.isfinite(reg.predict(X)).all()


def test_every_member_scales_its_inputs_with_the_training_rows_statistics():
    X, y = make_classification(200, 6, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, n_members=3).fit(X * 100 + 7, y)
    scalers = [m.input_scaler.state_dict() for m in clf.module_.members]
    for scaler in scalers[1:]:
        for name, tensor in scaler.items():
            assert torch.equal(tensor, scalers[0][name])


# ---- "auto": the small-data choices -------------------------------------------------------
@pytest.mark.parametrize(
    "backbone, task, n_train, small",
    [
        ("mlp", "classification", 999, True),
        ("mlp", "classification", 1000, False),
        ("mlp", "regression", 100, False),
        ("cnn", "classification", 100, False),
    ],
)
def test_small_data_choices_are_for_an_mlp_classifier_below_a_thousand_rows(
    backbone, task, n_train, small
):
    assert (small_data_choices(backbone, task, n_train) == SMALL_DATA_MLP_CLASSIFIER) is small
    members = resolve_n_members("auto", backbone, n_train, task)
    assert members == (8 if small else 1)
    assert resolve_batch_size("auto", backbone, n_train, task) == (
        256 if small else 64 if n_train == 1000 else 16
    )
    assert resolve_depth(None, backbone, n_train, task) == (
        4 if small else 8 if backbone == "mlp" else 20
    )
    expected = "standard" if small or backbone == "cnn" else "robust"
    assert resolve_scaling("auto", backbone, n_train, task) == expected
    # A value given is kept.
    assert resolve_n_members(2, backbone, n_train, task) == 2
    assert resolve_batch_size(32, backbone, n_train, task) == 32
    assert resolve_depth(6, backbone, n_train, task) == 6
    assert resolve_scaling(None, backbone, n_train, task) is None


def test_a_small_classifier_is_an_ensemble_by_default_and_a_large_one_is_not():
    X, y = load_digits(return_X_y=True)
    params = {"max_epochs": 1, "random_state": 0, "device": "cpu"}
    small = ResNetClassifier(**params).fit(X[:300], y[:300])
    assert small.n_members_ == 8 and small.width_ == 64 and small.scaling_ == "standard"
    assert small.net_.batch_size == 256 and len(small.module_.members[0].blocks) == 1
    large = ResNetClassifier(**params).fit(X, y)
    assert large.n_members_ == 1 and isinstance(large.module_, ResidualMLP)
    assert len(large.module_.blocks) == 3
    explicit = ResNetClassifier(**params, n_members=1, depth=8).fit(X[:300], y[:300])
    assert isinstance(explicit.module_, ResidualMLP) and len(explicit.module_.blocks) == 3


def test_a_first_partial_fit_takes_no_small_data_choices_and_an_ensemble_continues():
    X, y = make_classification(400, 6, random_state=0)
    # 250 rows of a stream: they need not be all the data, so no small-data choices.
    streamed = ResNetClassifier(random_state=0, device="cpu").partial_fit(X[:250], y[:250], [0, 1])
    assert streamed.n_members_ == 1 and streamed.scaling_ == "robust"
    assert (streamed.width_, streamed.net_.batch_size) == (256, 16)
    assert len(streamed.module_.blocks) == 3
    ensemble = ResNetClassifier(**FAST_PARAMS, n_members=3).partial_fit(X[:250], y[:250], [0, 1])
    before = ensemble.predict_proba(X)
    ensemble.partial_fit(X[250:], y[250:])
    assert ensemble.n_members_ == 3 and ensemble.n_iter_ == 2
    assert not np.array_equal(ensemble.predict_proba(X), before)


def test_the_small_data_choices_cannot_be_changed_by_a_caller():
    choices = small_data_choices("mlp", "classification", 100)
    with pytest.raises(TypeError):
        choices["n_members"] = 1
    assert small_data_choices("mlp", "classification", 100, small_data=False) == {}


def test_n_members_is_validated_before_training():
    X, y = make_classification(50, 4, random_state=0)
    for bad in (0, -1, 2.5, "many"):
        clf = ResNetClassifier(**FAST_PARAMS, n_members=bad)
        with pytest.raises(ValueError, match="'n_members' parameter of ResNetClassifier"):
            clf.fit(X, y)
        assert not hasattr(clf, "net_")


# ---- persistence --------------------------------------------------------------------------
def test_an_ensemble_saves_as_version_7_and_a_tampered_member_count_is_refused(tmp_path):
    X, y = make_classification(120, 6, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, n_members=3).fit(X, y)
    path = save_model(clf, tmp_path / "model")
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["format_version"] == 7 and config["fitted"]["n_members_"] == 3
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    for count in (1000, 2, 1):
        config["fitted"]["n_members_"] = count
        (path / CONFIG_FILE).write_text(json.dumps(config))
        with pytest.raises(
            ValueError, match=f"n_members_={count}, but the file holds 3 ensemble members"
        ):
            load_model(path)
    # Before version 7 a file holds one network and no n_members_.
    config["fitted"]["n_members_"], config["format_version"] = 3, 6
    del config["params"]["n_members"]
    (path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"'fitted' has unknown keys \['n_members_'\]"):
        load_model(path)


def test_a_file_whose_last_member_alone_says_it_holds_many_is_refused_before_building(
    tmp_path,
):
    X, y = make_classification(120, 6, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, n_members=2).fit(X, y)
    path = save_model(clf, tmp_path / "model")
    config = json.loads((path / CONFIG_FILE).read_text())
    config["fitted"]["n_members_"] = 10**6
    (path / CONFIG_FILE).write_text(json.dumps(config))
    tensors = load_file(path / WEIGHTS_FILE)  # member 1 renamed the last of a million
    renamed = {k.replace("members.1.", f"members.{10**6 - 1}."): v for k, v in tensors.items()}
    data = save(renamed, metadata={"format": "pt"})
    (path / WEIGHTS_FILE).write_bytes(data)
    config["weights_sha256"] = hashlib.sha256(data).hexdigest()
    (path / CONFIG_FILE).write_text(json.dumps(config))
    started = time.perf_counter()
    with pytest.raises(
        ValueError, match="n_members_=1000000, but the file holds 2 ensemble members"
    ):
        load_model(path)
    assert time.perf_counter() - started < 5  # nothing was built


def test_an_estimator_pickled_before_ensembles_loads_as_one_network():
    X, y = make_classification(120, 6, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, n_members=1).fit(X, y)
    state = clf.__getstate__()
    del state["n_members"], state["n_members_"]  # as a release before ensembles pickled it
    old = ResNetClassifier.__new__(ResNetClassifier)
    old.__setstate__(state)
    assert old.get_params()["n_members"] == "auto" and old.n_members_ == 1
    np.testing.assert_array_equal(old.predict_proba(X), clf.predict_proba(X))
    assert pickle.loads(pickle.dumps(old)).n_members_ == 1
