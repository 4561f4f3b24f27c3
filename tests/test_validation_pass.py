"""What the early-stopping validation pass does: rows, mode, weights, scores, and the
weights the model keeps afterwards."""

import numpy as np
import pytest
import torch
from conftest import FAST_PARAMS
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import accuracy_score, r2_score
from skorch.callbacks import Callback

from sklearn_resnet import ResNetClassifier, ResNetRegressor


class Recorder(Callback):
    """Per epoch: the module's weights at its end, and each validation batch."""

    def initialize(self):
        self.weights, self.batches, self.modes, self.lrs = [], [], [], []
        return self

    def on_epoch_begin(self, net, **kwargs):
        self.batches.append([])

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training:
            self.lrs.append(net.optimizer_.param_groups[0]["lr"])
            return
        _, (target, weight) = batch
        self.modes.append(net.module_.training)
        self.batches[-1].append((target, weight, y_pred.detach().float()))

    def on_epoch_end(self, net, **kwargs):
        state = net.module_.state_dict()
        self.weights.append({k: v.detach().clone() for k, v in state.items()})


def _recorder(est, kind=None):
    (recorder,) = [cb for _, cb in est.net_.callbacks_ if isinstance(cb, kind or Recorder)]
    return recorder


def _validation(recorder, epoch):
    targets, weights, outputs = zip(*recorder.batches[epoch], strict=True)
    weight = None if weights[0] is None else torch.cat(weights).numpy()
    return torch.cat(targets).numpy(), weight, torch.cat(outputs).numpy()


def test_early_stopping_leaves_the_best_epochs_weights_in_the_model():
    X, y = make_classification(1500, 10, n_informative=3, flip_y=0.3, random_state=0)
    params = {**FAST_PARAMS, "width": 128, "max_epochs": 60}
    params.update(lr=3e-3, lr_schedule="constant", early_stopping=True, n_iter_no_change=3)
    clf = ResNetClassifier(**params, callbacks=[Recorder()]).fit(X, y)
    assert clf.n_iter_ < 60 and clf.best_epoch_ == clf.n_iter_ - 3
    losses = clf.history_[:, "valid_loss"]
    assert min(losses) == losses[clf.best_epoch_ - 1]
    saved = _recorder(clf).weights
    held = clf.net_.module_.state_dict()
    for name, tensor in held.items():
        torch.testing.assert_close(tensor, saved[clf.best_epoch_ - 1][name], rtol=0, atol=0)
    assert any(not torch.equal(held[name], saved[-1][name]) for name in held)


def test_the_validation_pass_runs_in_evaluation_mode_on_a_stratified_part():
    X, y = make_classification(300, 6, n_informative=4, n_classes=3, random_state=0)
    clf = ResNetClassifier(
        **FAST_PARAMS, dropout=0.5, early_stopping=True, callbacks=[Recorder()]
    ).fit(X, y)
    recorder = _recorder(clf)
    assert recorder.modes and not any(recorder.modes)  # no dropout, no batch statistics
    target, _, _ = _validation(recorder, 0)
    assert np.bincount(target).tolist() == [10, 10, 10]  # 10 % of 100 rows per class


@pytest.mark.parametrize("batch_size", ["auto", 8])  # one validation batch, or four
@pytest.mark.parametrize("Estimator", [ResNetClassifier, ResNetRegressor])
def test_validation_scores_are_the_weighted_accuracy_or_r2_of_the_validation_rows(
    Estimator, batch_size
):
    if Estimator is ResNetClassifier:
        X, y = make_classification(300, 6, random_state=0)
    else:
        X, y = make_regression(300, 6, noise=10.0, random_state=0)
        y = y + 300 * (X[:, 0] > 0)  # batches of the validation rows differ in their mean
    weight = np.random.default_rng(0).uniform(0.1, 3.0, len(y))
    est = Estimator(
        **FAST_PARAMS, batch_size=batch_size, early_stopping=True, callbacks=[Recorder()]
    )
    est.fit(X, y, sample_weight=weight)
    recorder = _recorder(est)
    for epoch, score in enumerate(est.validation_scores_):
        target, part_weight, y_pred = _validation(recorder, epoch)
        assert part_weight is not None and np.ptp(part_weight) > 0  # the rows' own weights
        if Estimator is ResNetClassifier:
            expected = accuracy_score(target, y_pred.argmax(1), sample_weight=part_weight)
        else:
            expected = r2_score(target, y_pred.reshape(target.shape), sample_weight=part_weight)
        assert score == pytest.approx(expected, rel=1e-5)


def test_partial_fit_trains_at_the_base_learning_rate():
    X, y = make_classification(200, 6, random_state=0)
    clf = ResNetClassifier(**FAST_PARAMS, lr=2e-3, callbacks=[Recorder()]).fit(X, y)
    recorder = _recorder(clf)
    assert len(set(recorder.lrs)) > 1  # fit follows its schedule
    recorder.lrs.clear()
    clf.partial_fit(X, y)
    assert recorder.lrs and set(recorder.lrs) == {2e-3}


@pytest.mark.parametrize(
    "estimator, backbone, n_rows, fraction, early",
    [
        # An MLP regressor refits on every row after its holdout fit, from 80 rows on
        # (its holdout then takes 20 rows) or where a validation part holds 20.
        (ResNetRegressor, "mlp", 200, 0.1, "refit"),
        (ResNetRegressor, "mlp", 80, 0.1, "refit"),
        (ResNetRegressor, "mlp", 79, 0.1, False),
        (ResNetRegressor, "mlp", 79, 0.3, "refit"),
        (ResNetRegressor, "mlp", 79, 0.25, False),
        (ResNetRegressor, "mlp", 12000, 0.1, "refit"),
        # The "auto" fraction decides as a tenth would (its fifth is for the refit only).
        (ResNetRegressor, "mlp", 80, "auto", "refit"),
        (ResNetRegressor, "mlp", 79, "auto", False),
        (ResNetRegressor, "cnn", 200, "auto", True),
        (ResNetRegressor, "cnn", 199, "auto", False),
        (ResNetClassifier, "mlp", 6000, "auto", True),
        (ResNetClassifier, "cnn", 199, "auto", False),
        (ResNetRegressor, "cnn", 200, 0.1, True),
        (ResNetRegressor, "cnn", 199, 0.1, False),
        (ResNetClassifier, "cnn", 200, 0.1, True),
        (ResNetClassifier, "cnn", 199, 0.1, False),
        # An MLP classifier holds out a validation part only on 6,000 rows or more.
        (ResNetClassifier, "mlp", 5999, 0.1, False),
        (ResNetClassifier, "mlp", 6000, 0.1, True),
        (ResNetClassifier, "mlp", 6000, 0.003, False),  # 18 validation rows
    ],
)
def test_auto_early_stopping_follows_the_task_backbone_and_size(
    estimator, backbone, n_rows, fraction, early
):
    make = make_classification if estimator is ResNetClassifier else make_regression
    X, y = make(n_rows, 6, random_state=0)
    params = {**FAST_PARAMS, "max_epochs": 1, "validation_fraction": fraction}
    if backbone == "cnn":
        params.update(depth=8, width=4, input_shape=(1, 6))
    est = estimator(**params).fit(X, y)
    # A refit keeps the second fit, which holds nothing out; the first's history stays.
    assert est.backbone_ == backbone and est.early_stopping_ is (early is True)
    assert (est.validation_scores_ is not None) is (early is True)
    assert hasattr(est, "selection_history_") is (early == "refit")
    if early == "refit":
        assert "valid_loss" in est.selection_history_[0]
        assert len(est.history_) == est.n_iter_ == 1  # the holdout's best epoch of its one


def test_every_page_that_states_the_mlp_classifiers_early_stopping_bound_states_this_one():
    from pathlib import Path

    from sklearn_resnet import OptunaSearchCV
    from sklearn_resnet.defaults import MLP_CLASSIFIER_EARLY_STOPPING_MIN_SAMPLES

    bound = f"{MLP_CLASSIFIER_EARLY_STOPPING_MIN_SAMPLES:,}"
    root = Path(__file__).resolve().parents[1]
    guides = ("training-recipe", "user-guide", "search", "command-line")
    pages = ["README.md", *(f"docs/{guide}.md" for guide in guides)]
    texts = [(root / page).read_text() for page in pages]
    texts += [ResNetClassifier.__doc__, OptunaSearchCV.__doc__]
    for text in (" ".join(text.split()) for text in texts):  # lines joined
        assert f"{bound} samples" in text or f"{bound} rows" in text


def test_every_page_that_states_where_the_mlp_regressors_refit_starts_states_this_one():
    from pathlib import Path

    from sklearn_resnet.defaults import MLP_REGRESSOR_REFIT_MIN_SAMPLES

    root = Path(__file__).resolve().parents[1]
    pages = ["README.md", *(f"docs/{page}.md" for page in ("training-recipe", "user-guide"))]
    texts = [(root / page).read_text() for page in pages] + [ResNetRegressor.__doc__]
    for text in (" ".join(text.split()) for text in texts):  # lines joined
        bound = MLP_REGRESSOR_REFIT_MIN_SAMPLES
        assert f"from {bound} rows" in text or f"from {bound} samples" in text


def test_every_page_that_states_the_mlp_regressors_refit_holdout_states_a_fifth():
    from pathlib import Path

    from sklearn_resnet.defaults import MLP_REGRESSOR_REFIT_VALIDATION_FRACTION

    assert MLP_REGRESSOR_REFIT_VALIDATION_FRACTION == 0.2  # the pages say "a fifth"
    root = Path(__file__).resolve().parents[1]
    pages = ["README.md", *(f"docs/{page}.md" for page in ("training-recipe", "user-guide"))]
    for text in (" ".join((root / page).read_text().split()) for page in pages):
        assert 'validation_fraction="auto"' in text and "a fifth" in text
    assert '``"auto"`` is 0.2 for an MLP regressor\'s ``"refit"``' in " ".join(
        ResNetRegressor.__doc__.split()
    )


def test_the_validation_split_follows_its_seed_and_stratifies_where_every_class_can_be_split():
    from sklearn_resnet.inputs import split_indices

    y = np.repeat([0, 1], 50)
    first, again, other = (split_indices(100, 0.2, seed, y)[1] for seed in (1, 1, 2))
    np.testing.assert_array_equal(np.sort(first), np.sort(again))
    assert set(first) != set(other)
    assert np.bincount(y[first]).tolist() == [10, 10]  # stratified
    # A class of one sample cannot be split: the split is drawn at random instead of
    # failing, and the estimator trains with early stopping.
    y = np.array([0] * 100 + [1] * 99 + [2])
    train, valid = split_indices(200, 0.1, 0, y)
    assert len(valid) == 20 and len(train) == 180
    X = np.random.default_rng(0).normal(size=(200, 3))
    clf = ResNetClassifier(**{**FAST_PARAMS, "max_epochs": 1}, early_stopping=True).fit(X, y)
    assert clf.early_stopping_ and len(clf.validation_scores_) == 1


def test_fit_follows_the_planned_schedule_over_every_training_batch():
    from sklearn_resnet.training import schedule_factor

    X, y = make_classification(300, 6, random_state=0)
    params = {**FAST_PARAMS, "max_epochs": 5, "lr": 1e-3, "n_iter_no_change": 100}
    clf = ResNetClassifier(**params, early_stopping=True, callbacks=[Recorder()]).fit(X, y)
    lrs = _recorder(clf).lrs
    steps = 5 * -(-270 // clf.net_.batch_size)  # all epochs' training batches, not validation
    assert len(lrs) == steps
    expected = [1e-3 * schedule_factor("cosine", step, steps) for step in range(steps)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=1e-18)


def test_the_schedule_counts_a_merged_last_batch_once():
    from sklearn_resnet.training import schedule_factor

    X, y = make_classification(33, 4, random_state=0)  # 16 + 17 rows: two batches an epoch
    params = {**FAST_PARAMS, "max_epochs": 5, "lr": 1e-3, "batch_size": 16}
    clf = ResNetClassifier(**params, early_stopping=False, callbacks=[Recorder()]).fit(X, y)
    lrs = _recorder(clf).lrs
    assert len(lrs) == 10
    assert lrs == pytest.approx([1e-3 * schedule_factor("cosine", s, 10) for s in range(10)])


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
@pytest.mark.parametrize("weight_decay", [None, 0.3])
def test_the_optimizer_gets_its_settings(optimizer, weight_decay):
    from sklearn_resnet.training import OPTIMIZERS

    X, y = make_classification(100, 4, random_state=0)
    clf = ResNetClassifier(
        **{**FAST_PARAMS, "max_epochs": 1}, optimizer=optimizer, weight_decay=weight_decay
    ).fit(X, y)
    group = clf.net_.optimizer_.param_groups[0]
    default = OPTIMIZERS[optimizer][1]["weight_decay"]
    assert group["weight_decay"] == (default if weight_decay is None else weight_decay)
    if optimizer == "sgd":
        assert (group["momentum"], group["nesterov"]) == (0.9, True)


class TrainingBatches(Callback):
    """The targets and sample weights of each training batch, in the order seen."""

    def initialize(self):
        self.targets, self.weights = [], []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            _, (target, weight) = batch
            self.targets.append(target.tolist())
            self.weights.append(None if weight is None else weight.clone())


def test_the_shuffling_follows_random_state_and_moves_on_between_calls():
    X, y = make_regression(64, 3, random_state=0)
    orders = []
    for seed in (0, 1, 0):
        reg = ResNetRegressor(**{**FAST_PARAMS, "max_epochs": 1, "random_state": seed})
        reg.set_params(batch_size=16, callbacks=[TrainingBatches()]).fit(X, y)
        recorder = _recorder(reg, TrainingBatches)
        orders.append(recorder.targets)
        reg.partial_fit(X, y)  # the next call draws another order
        assert recorder.targets[4:] != recorder.targets[:4]
    assert orders[0] == orders[2] and orders[0][:4] != orders[1][:4]


def test_the_loss_of_several_outputs_is_their_mean_squared_error():
    X, y = make_regression(100, 4, n_targets=2, random_state=0)
    reg = ResNetRegressor(**{**FAST_PARAMS, "max_epochs": 1}).fit(X, y)
    pred, target = torch.randn(5, 2), torch.randn(5, 2)
    loss = reg.net_.get_loss(pred, (target, None))
    torch.testing.assert_close(loss, torch.nn.functional.mse_loss(pred, target))


@pytest.mark.parametrize("early_stopping", [False, True])
def test_fit_trains_on_weights_of_mean_one(early_stopping):
    X, y = make_regression(400, 4, random_state=0)
    weight = np.random.default_rng(0).uniform(0.5, 50.0, len(y))
    reg = ResNetRegressor(**{**FAST_PARAMS, "max_epochs": 1}, early_stopping=early_stopping)
    reg.set_params(callbacks=[TrainingBatches()]).fit(X, y, sample_weight=weight)
    seen = torch.cat(_recorder(reg, TrainingBatches).weights)  # one epoch: every training row once
    assert len(seen) == (360 if early_stopping else 400)
    assert seen.double().mean().item() == pytest.approx(1.0, rel=1e-5)
