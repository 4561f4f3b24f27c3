"""The ``sklearn-resnet`` command line: fit → predict → evaluate round trips on CSV and
Parquet tables, the rules for ``--task auto`` and ``--set``, and one-line errors."""

from __future__ import annotations

import logging.handlers
import os
import subprocess
import sys
from io import StringIO

import joblib
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from sklearn_resnet import ResNetClassifier, ResNetRegressor
from sklearn_resnet.cli import main
from sklearn_resnet.cli_data import (
    ESTIMATOR_STEP,
    MAX_CLASSIFICATION_LEVELS,
    CommandLineError,
    build_pipeline,
    categories_as_text,
    drop_columns,
    infer_task,
    parse_settings,
    read_table,
    split_target,
)
from sklearn_resnet.search import OptunaSearchCV

#: Tiny networks, few epochs and a seed, as options; ``FAST`` adds ``--quiet``.
SETTINGS = ["--set", "depth=4", "--set", "width=32", "--set", "max_epochs=3", "--set", "device=cpu"]
SETTINGS += ["--random-state", "0"]
FAST = [*SETTINGS, "--quiet"]
FAST_PARAMS = {"depth": 4, "width": 32, "max_epochs": 3, "device": "cpu", "random_state": 0}


def _table(n_rows: int = 160, seed: int = 0) -> pd.DataFrame:
    """Two numeric columns (one with a gap), a string category and string labels."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=n_rows),
            "weight": rng.normal(2.0, 0.5, size=n_rows),
            "colour": rng.choice(["red", "green", "blue"], size=n_rows),
        }
    )
    signal = frame["size"] + 1.5 * (frame["colour"] == "red")
    frame["label"] = np.where(signal > 0.5, "yes", "no")
    frame["price"] = 3.0 * frame["size"] - frame["weight"] + rng.normal(0, 0.1, size=n_rows)
    frame.loc[3, "weight"] = np.nan
    return frame


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    _table().drop(columns="price").to_csv(folder / "train.csv", index=False)
    _table(40, seed=1).drop(columns="price").to_csv(folder / "test.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def fitted(data_dir):
    """A classifier fitted through ``sklearn-resnet fit`` (once for the module)."""
    model = data_dir / "model.joblib"
    assert (
        main(["fit", str(data_dir / "train.csv"), "--target", "label", *FAST, "-o", str(model)])
        == 0
    )
    return model


def _python_pipeline() -> Pipeline:
    """The pipeline the command line builds, written out by hand."""
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                ["size", "weight"],
            ),
            (
                "text",
                make_pipeline(
                    FunctionTransformer(categories_as_text, feature_names_out="one-to-one"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                ["colour"],
            ),
        ],
        sparse_threshold=0.0,
    )
    return Pipeline([("preprocess", preprocess), ("resnet", ResNetClassifier(**FAST_PARAMS))])


def test_fit_then_predict_matches_the_python_api(data_dir, fitted, capsys):
    train = pd.read_csv(data_dir / "train.csv")
    test = pd.read_csv(data_dir / "test.csv")
    expected = _python_pipeline().fit(train.drop(columns="label"), train["label"])

    out = data_dir / "predictions.csv"
    assert (
        main(["predict", str(fitted), str(data_dir / "test.csv"), "-o", str(out), "--proba"]) == 0
    )
    assert "Wrote 40 predictions" in capsys.readouterr().out
    predicted = pd.read_csv(out)
    assert list(predicted.columns) == ["prediction", "proba_no", "proba_yes"]
    np.testing.assert_array_equal(predicted["prediction"], expected.predict(test))
    np.testing.assert_allclose(
        predicted[["proba_no", "proba_yes"]], expected.predict_proba(test), rtol=1e-6, atol=1e-9
    )
    # The model file is the fitted Pipeline itself.
    loaded = joblib.load(fitted)
    assert isinstance(loaded, Pipeline) and isinstance(loaded[-1], ResNetClassifier)
    np.testing.assert_array_equal(loaded.predict(test), predicted["prediction"])


def test_category_columns_read_as_another_type_keep_their_categories(tmp_path, capsys):
    train = _table()
    train["flag"] = train["size"] > 0
    train["code"] = np.where(train["weight"] > 2.0, "1", "x")
    train.drop(columns="price").to_csv(tmp_path / "train.csv", index=False)
    model = tmp_path / "model.joblib"
    assert (
        main(["fit", str(tmp_path / "train.csv"), "--target", "label", *FAST, "-o", str(model)])
        == 0
    )
    test = train.head(6).drop(columns="price")
    variants = {
        "empty colour": test.assign(colour=np.nan),  # read back as float64
        "numeric code": test.assign(code="1"),  # read back as int64
        "code with a gap": test.assign(code=["1", None, "1", "x", "1", "1"]),
        "numbers and a gap": test.assign(code=["1", None, "1", "1", "1", "1"]),  # as 1.0, nan
        "flag as TRUE/FALSE": test.assign(flag=["TRUE", "FALSE"] * 3),  # as R writes it
        "flag with a gap": test.assign(flag=[True, None, False, True, False, True]),
    }
    pipeline = joblib.load(model)
    for name, frame in variants.items():
        frame.to_csv(tmp_path / "test.csv", index=False)
        out = tmp_path / "out.csv"
        args = ["predict", str(model), str(tmp_path / "test.csv"), "--proba", "-o", str(out)]
        assert main(args) == 0, name
        code = [np.nan if pd.isna(v) else str(v) for v in frame["code"]]
        flag = [v if not isinstance(v, str) else v == "TRUE" for v in frame["flag"]]
        expected = pipeline.predict_proba(frame.assign(code=code, flag=flag).drop(columns="label"))
        written = pd.read_csv(out)[[f"proba_{label}" for label in pipeline.classes_]]
        np.testing.assert_allclose(written, expected, rtol=1e-12, err_msg=name)
    capsys.readouterr()


def test_missing_value_tokens_are_missing_among_numbers_and_values_among_text(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text(
        "x,region,damage,code\n1.5,NA,None,1\nnull,ASIA,Low,\n2.5,NA,High,2\nNA,EU,None,3\n"
    )
    frame = read_table(path)
    assert frame["x"].dtype == np.float64 and frame["x"].isna().tolist() == [0, 1, 0, 1]
    assert frame["region"].tolist() == ["NA", "ASIA", "NA", "EU"]  # North America
    assert frame["damage"].tolist() == ["None", "Low", "High", "None"]  # a class
    assert frame["code"].tolist()[:1] == [1.0] and frame["code"].isna().tolist()[1]


def test_category_text_is_read_as_written(tmp_path, capsys):
    # Codes like 01, 1.50 or +1 change their text when read as numbers; NA in a text
    # column is a value (North America), also in a one-row file.
    train = _table(60).drop(columns="price")
    train["code"] = np.resize(["01", "1.50", "+1", "x"], 60)
    train["region"] = np.resize(["NA", "EU", None], 60)
    train.to_csv(tmp_path / "train.csv", index=False)
    model = tmp_path / "model.joblib"
    args = ["fit", str(tmp_path / "train.csv"), "--target", "label", *FAST, "-o", str(model)]
    assert main(args) == 0
    pipeline = joblib.load(model)
    rows = train.drop(columns="label")
    for name, frame in {"codes": rows.head(3), "one row of NA": rows.head(1)}.items():
        (tmp_path / "test.csv").write_text(frame.to_csv(index=False))
        out = tmp_path / "out.csv"
        predict = ["predict", str(model), str(tmp_path / "test.csv"), "--proba", "-o", str(out)]
        assert main(predict) == 0, name
        written = pd.read_csv(out)[[f"proba_{label}" for label in pipeline.classes_]]
        np.testing.assert_allclose(written, pipeline.predict_proba(frame), rtol=1e-12, err_msg=name)
    capsys.readouterr()


def test_evaluate_reads_text_labels_as_written_and_true_stays_text_in_text_columns(
    tmp_path, capsys
):
    train = _table(60).drop(columns="price")
    train["label"] = np.resize(["1", "NA", "x"], 60)  # text labels, one of them "NA"
    train["word"] = np.resize(["True", "red"], 60)  # text, not booleans
    train.to_csv(tmp_path / "train.csv", index=False)
    model = tmp_path / "model.joblib"
    args = ["fit", str(tmp_path / "train.csv"), "--target", "label", *FAST, "-o", str(model)]
    assert main(args) == 0
    pipeline = joblib.load(model)
    test = train.head(2)  # labels "1" and "NA": read by type, a number and a gap
    test.to_csv(tmp_path / "test.csv", index=False)
    capsys.readouterr()
    assert main(["evaluate", str(model), str(tmp_path / "test.csv"), "--target", "label"]) == 0
    accuracy = float(capsys.readouterr().out.splitlines()[0].split(": ")[1])
    X = test.drop(columns="label")
    assert accuracy == pytest.approx(np.mean(pipeline.predict(X) == test["label"]), abs=1e-4)
    # "TRUE" is another word than the category "True" of a text column.
    from sklearn_resnet.cli_data import match_categories

    matched = match_categories(pipeline, X.assign(word=["TRUE", "red"]))
    assert matched["word"].tolist() == ["TRUE", "red"]


def test_a_model_that_learnt_na_as_missing_reads_it_so(tmp_path, capsys):
    # Earlier releases read NA as missing in every column, and category columns by
    # type; their models know a missing category, which the text "NA" must still reach,
    # and categories "1", "2", which numbers next to a gap (1.0, 2.0) must still reach.
    frame = _table(60).drop(columns=["price", "label"])
    frame["region"] = np.where(frame["size"] > 0, "EU", None)
    frame["code"] = np.resize(["1", "2", "x"], 60)
    y = np.where(frame["size"] > 0, "eu", "other")
    pipeline = build_pipeline(frame, ResNetClassifier(**FAST_PARAMS))
    preprocess = pipeline.named_steps["preprocess"]
    _, encode, columns = preprocess.transformers[-1]
    preprocess.transformers[-1] = ("categorical", encode, columns)  # the earlier name
    pipeline.fit(frame, y)
    joblib.dump(pipeline, tmp_path / "old.joblib")
    frame = frame.head(4).assign(code=["1", "2", None, "1"])  # read back as 1.0, 2.0
    frame.fillna({"region": "NA"}).to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "out.csv"
    args = ["predict", str(tmp_path / "old.joblib"), str(tmp_path / "test.csv"), "--proba"]
    assert main([*args, "-o", str(out)]) == 0
    written = pd.read_csv(out)[[f"proba_{label}" for label in pipeline.classes_]]
    np.testing.assert_allclose(written, pipeline.predict_proba(frame), rtol=1e-12)
    capsys.readouterr()


def test_fit_describes_a_refit_by_its_holdout_fit(data_dir, tmp_path, capsys):
    train = str(data_dir / "train.csv")
    settings = [*SETTINGS, "--set", "early_stopping=refit", "--set", "max_epochs=20"]
    model = tmp_path / "refit.joblib"
    assert main(["fit", train, "--target", "label", *settings, "-o", str(model)]) == 0
    resnet = joblib.load(model)[-1]
    held = len(resnet.selection_history_)
    epochs = f"{resnet.n_iter_} epoch{'s' if resnet.n_iter_ != 1 else ''}"
    expected = f"{epochs} on every row (the best epoch of a {held}-epoch holdout fit)"
    assert expected in capsys.readouterr().out


def test_evaluate_leaves_out_log_loss_for_labels_the_model_never_saw(data_dir, fitted, capsys):
    test = pd.read_csv(data_dir / "test.csv")
    test.loc[0, "label"] = "maybe"
    test.to_csv(data_dir / "unseen.csv", index=False)
    assert main(["evaluate", str(fitted), str(data_dir / "unseen.csv"), "--target", "label"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["accuracy", "balanced_accuracy", "log_loss"]
    assert lines[-1] == "log_loss: n/a (labels the model was not trained on: ['maybe'])"


def test_predict_and_evaluate_read_a_models_columns_by_name(data_dir, tmp_path, capsys):
    # A model fitted in Python on a DataFrame (no Pipeline): the table may still hold
    # the target and its columns in another order.
    train = pd.read_csv(data_dir / "train.csv")
    features = ["weight", "size"]
    model = ResNetClassifier(**FAST_PARAMS).fit(train[features].fillna(0.0), train["label"])
    joblib.dump(model, tmp_path / "bare.joblib")
    test = pd.read_csv(data_dir / "test.csv").fillna(0.0)
    test.to_csv(tmp_path / "test.csv", index=False)
    assert main(["predict", str(tmp_path / "bare.joblib"), str(tmp_path / "test.csv")]) == 0
    got = pd.read_csv(StringIO(capsys.readouterr().out))["prediction"]
    np.testing.assert_array_equal(got, model.predict(test[features]))
    args = ["evaluate", str(tmp_path / "bare.joblib"), str(tmp_path / "test.csv")]
    assert main([*args, "--target", "label"]) == 0
    accuracy = model.score(test[features], test["label"])
    assert capsys.readouterr().out.splitlines()[0] == f"accuracy: {accuracy:.4f}"


def test_evaluate_of_a_model_without_probabilities_prints_no_log_loss_line(tmp_path, capsys):
    from sklearn.svm import LinearSVC

    train = pd.read_csv(StringIO("a,label\n0,x\n1,y\n2,x\n3,y\n"))
    joblib.dump(LinearSVC().fit(train[["a"]], train["label"]), tmp_path / "svc.joblib")
    (tmp_path / "test.csv").write_text("a,label\n0,x\n1,z\n")  # z: never seen
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "svc.joblib"),
                str(tmp_path / "test.csv"),
                "--target",
                "label",
            ]
        )
        == 0
    )
    names = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["accuracy", "balanced_accuracy"]


def test_warnings_are_one_line_naming_the_command(monkeypatch, capsys):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from sklearn_resnet import cli

    def warns(args):
        warnings.warn("stopped early", ConvergenceWarning, stacklevel=2)
        return 0

    monkeypatch.setattr(cli, "_evaluate", warns)
    assert main(["evaluate", "m.joblib", "d.csv", "--target", "y"]) == 0
    assert capsys.readouterr().err == "sklearn-resnet evaluate: ConvergenceWarning: stopped early\n"


def test_a_missing_target_lists_how_many_columns_are_not_shown(tmp_path):
    frame = pd.DataFrame({f"c{i}": [0.0, 1.0] for i in range(25)})
    with pytest.raises(CommandLineError, match=r"the columns are: c0, .*, c19 and 5 more\.$"):
        split_target(frame, "label")


def test_evaluate_prints_the_scores(data_dir, fitted, capsys):
    test = pd.read_csv(data_dir / "test.csv")
    accuracy = joblib.load(fitted).score(test.drop(columns="label"), test["label"])
    assert main(["evaluate", str(fitted), str(data_dir / "test.csv"), "--target", "label"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["accuracy", "balanced_accuracy", "log_loss"]
    assert lines[0] == f"accuracy: {accuracy:.4f}"


def test_predict_writes_csv_to_standard_output(data_dir, fitted, capsys):
    assert main(["predict", str(fitted), str(data_dir / "test.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "prediction"
    assert len(lines) == 41 and set(lines[1:]) <= {"yes", "no"}


def test_regression_from_parquet_with_the_task_inferred(tmp_path, capsys):
    pytest.importorskip("pyarrow", reason="Parquet needs the optional pyarrow")
    _table().drop(columns="label").to_parquet(tmp_path / "rows.parquet")
    model = tmp_path / "price.joblib"
    args = ["fit", str(tmp_path / "rows.parquet"), "--target", "price", *FAST, "-o", str(model)]
    assert main(args) == 0
    assert "for regression" in capsys.readouterr().out
    assert isinstance(joblib.load(model)[-1], ResNetRegressor)
    out = tmp_path / "predictions.parquet"
    assert main(["predict", str(model), str(tmp_path / "rows.parquet"), "-o", str(out)]) == 0
    assert pd.read_parquet(out)["prediction"].dtype == np.float64
    capsys.readouterr()
    assert main(["evaluate", str(model), str(tmp_path / "rows.parquet"), "--target", "price"]) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [
        "r2",
        "mae",
        "rmse",
    ]


def test_task_can_be_forced(tmp_path):
    frame = _table(80).drop(columns="label")
    frame["grade"] = np.arange(80) % 3 + 1  # integers with 3 levels: classification by default
    frame.to_csv(tmp_path / "rows.csv", index=False)
    model = tmp_path / "grade.joblib"
    args = ["fit", str(tmp_path / "rows.csv"), "--target", "grade", *FAST, "-o", str(model)]
    assert main(args) == 0
    assert is_classifier(joblib.load(model))
    assert main([*args, "--task", "regression"]) == 0
    assert not is_classifier(joblib.load(model))


def test_progress_bar_only_on_a_terminal(data_dir, tmp_path, monkeypatch, capsys):
    model = tmp_path / "m.joblib"
    args = ["fit", str(data_dir / "train.csv"), "--target", "label", *SETTINGS, "-o", str(model)]
    assert main(args) == 0  # standard error is captured here: not a terminal
    assert joblib.load(model)[-1].verbose == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(args) == 0
    assert joblib.load(model)[-1].verbose == 1
    assert "3/3" in capsys.readouterr().err  # tqdm's bar over the 3 epochs
    assert main([*args, "--quiet"]) == 0
    assert joblib.load(model)[-1].verbose == 0


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["cat", "dog", "cat"], "classification"),
        ([True, False, True], "classification"),
        (pd.Categorical(["a", "b", "a"]), "classification"),
        ([0, 1, 2, 1], "classification"),
        (list(range(MAX_CLASSIFICATION_LEVELS)), "classification"),
        (list(range(MAX_CLASSIFICATION_LEVELS + 1)), "regression"),
        ([0.0, 1.0, 0.0], "regression"),
        ([0.5, 1.25, 3.0], "regression"),
    ],
)
def test_infer_task_rule(values, task):
    assert infer_task(pd.Series(values)) == task


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["1", "2", "3", "other"] * 5, "classification"),  # few numbers: labels
        ([str(i) for i in range(30)] + ["a"] * 31, "classification"),  # text in most rows
        (pd.Categorical(["1", "2", "n/a"] * 9), "classification"),  # integer levels
        (pd.Categorical([str(100 + i % 30) for i in range(60)]), "classification"),  # categories
        ([str(100 + i) for i in range(60)], "classification"),  # identifiers stored as text
    ],
)
def test_text_labels_with_numbers_among_them_stay_classes(values, task):
    assert infer_task(pd.Series(values)) == task


def test_a_numeric_target_with_stray_text_is_refused_rather_than_classified(tmp_path, capfd):
    table = _table(60)
    table["price"] = table["price"].astype(object)
    table.loc[[5, 9], "price"] = ["n/a?", "unknown"]
    table.to_csv(tmp_path / "typos.csv", index=False)
    fit = ["fit", str(tmp_path / "typos.csv"), "--target", "price", "--drop", "label", *FAST]
    assert main([*fit, "-o", str(tmp_path / "m.joblib")]) == 2
    err = capfd.readouterr().err
    assert "target column 'price' holds numbers in 58 of 60 rows and text in the others " in err
    assert "('n/a?', 'unknown'), so --task auto would make its 60 distinct values classes" in err
    assert not (tmp_path / "m.joblib").exists()
    # Numbers beyond int64 (read as floats) are no integer labels either.
    with pytest.raises(CommandLineError, match=r"holds numbers in 99 of 100 rows .* \('x'\)"):
        infer_task(pd.Series([f"{i}e30" for i in range(1, 100)] + ["x"], name="y"))
    table.loc[[5, 9], "price"] = [None, 1.0]
    table.to_csv(tmp_path / "gap.csv", index=False)
    gap = ["fit", str(tmp_path / "gap.csv"), "--target", "price", "-o", str(tmp_path / "m")]
    assert main([*gap, *FAST]) == 2
    assert "target column 'price' has 1 missing value; drop those rows first." in (
        capfd.readouterr().err
    )


def test_set_values_are_python_literals_else_strings():
    params = parse_settings(
        [
            "depth=20",
            "lr=3e-3",
            "width=None",
            "early_stopping=False",
            "input_shape=(1, 8, 8)",
            "device=cpu",
            "precision=32",
            "optimizer='sgd'",
        ],
        ResNetClassifier(),
    )
    assert params == {
        "depth": 20,
        "lr": 0.003,
        "width": None,
        "early_stopping": False,
        "input_shape": (1, 8, 8),
        "device": "cpu",
        "precision": "32",
        "optimizer": "sgd",
    }
    ResNetClassifier().set_params(**params)  # all accepted


@pytest.mark.parametrize(
    ("setting", "message"),
    [("colour=blue", "unknown --set key 'colour'"), ("depth", "--set expects key=value")],
)
def test_parse_settings_refuses(setting, message):
    with pytest.raises(CommandLineError, match=message):
        parse_settings([setting], ResNetRegressor())


def test_read_table_refuses_unknown_file_types(tmp_path):
    path = tmp_path / "rows.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(CommandLineError, match="unknown file type"):
        read_table(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["fit", "{dir}/train.csv", "--target", "nope", "-o", "{tmp}/m.joblib"],
            "no target column 'nope'",
        ),
        (
            [
                "fit",
                "{dir}/train.csv",
                "--target",
                "label",
                "--set",
                "deepness=3",
                "-o",
                "{tmp}/m.joblib",
            ],
            "unknown --set key 'deepness'",
        ),
        (
            ["fit", "{dir}/missing.csv", "--target", "label", "-o", "{tmp}/m.joblib"],
            "does not exist",
        ),
        (
            ["fit", "{tmp}/broken.csv", "--target", "label", "-o", "{tmp}/m.joblib"],
            "cannot read 'broken.csv'",
        ),
        (
            [
                "fit",
                "{dir}/train.csv",
                "--target",
                "label",
                "--set",
                "depth=5",
                "-o",
                "{tmp}/m.joblib",
            ],
            "'depth' parameter",
        ),
        (
            ["fit", "{dir}/train.csv", "--target", "label", "-o", "{tmp}/no/such/dir/m.joblib"],
            "folder does not exist",
        ),
        (["predict", "{dir}/train.csv", "{dir}/test.csv"], "not a joblib file of a model"),
        (["predict", "{tmp}/saved", "{dir}/test.csv"], "sklearn_resnet.load_model"),
        (["predict", "{dir}/model.joblib", "{dir}/missing.csv"], "does not exist"),
        (["predict", "{dir}/model.joblib", "{tmp}/other.csv"], "weight"),
        (
            ["evaluate", "{dir}/model.joblib", "{dir}/test.csv", "--target", "nope"],
            "no target column",
        ),
        (["fit", "{dir}/train.csv", "--target", "label", "-o", "{tmp}"], "is a directory"),
        (["predict", "{dir}/model.joblib", "{tmp}"], "is a directory"),
        (["demo", "-o", "{tmp}/no/such/dir/m.joblib"], "folder does not exist"),
        (
            ["tune", "{dir}/train.csv", "--target", "label", "--n-trials", "2", "--set", "depth=5"],
            "cannot train with these settings: The 'depth' parameter",
        ),
        (["predict", "{dir}/model.joblib", "{tmp}/text.csv"], "column 'size' holds '?', not a"),
        (
            ["fit", "{dir}/train.csv", "--target=label", "--task=regression", "-o={tmp}/m.joblib"],
            "target column 'label' holds 'no', not a number; --task regression needs numbers",
        ),
        (
            ["tune", "{dir}/train.csv", "--target", "label", "--n-trials=1", "--study-name=s"],
            "--study-name names a study in --storage",
        ),
        (
            ["fit", "{tmp}/semicolons.csv", "--target", "c", "-o", "{tmp}/m.joblib"],
            "header is separated by semicolons",
        ),
    ],
    ids=[
        "target",
        "set-key",
        "no-file",
        "bad-file",
        "bad-value",
        "out-dir",
        "not-model",
        "save-model-folder",
        "no-data",
        "no-column",
        "eval-target",
        "out-is-dir",
        "data-is-dir",
        "demo-out-dir",
        "tune-bad-setting",
        "text-among-numbers",
        "text-regression-target",
        "study-without-storage",
        "semicolons",
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, data_dir, fitted, tmp_path, capsys):
    (tmp_path / "broken.csv").write_bytes(b'a,b\n1,"2\n')  # an unterminated quote
    (tmp_path / "other.csv").write_text("size,colour\n0.5,red\n")  # no "weight" column
    (tmp_path / "text.csv").write_text("size,weight,colour\n?,2.0,red\n")
    (tmp_path / "semicolons.csv").write_text("a;b;c\n1;2;x\n")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "config.json").write_text("{}")  # the mark of a save_model folder
    argv = [arg.format(dir=data_dir, tmp=tmp_path) for arg in args]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"sklearn-resnet {args[0]}: error: ")
    assert message in lines[0]
    assert not (tmp_path / "m.joblib").exists()


def test_proba_on_a_regressor_is_refused(tmp_path, capsys):
    model = tmp_path / "r.joblib"
    frame = _table(40).drop(columns="label")
    joblib.dump(
        _python_pipeline()
        .set_params(resnet=ResNetRegressor(**FAST_PARAMS))
        .fit(frame, frame["price"]),
        model,
    )
    frame.to_csv(tmp_path / "rows.csv", index=False)
    assert main(["predict", str(model), str(tmp_path / "rows.csv"), "--proba"]) == 2
    assert capsys.readouterr().err.strip() == (
        "sklearn-resnet predict: error: --proba needs a classifier; this model is a regressor."
    )


def test_info_lists_versions_and_devices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "scikit-learn:" in out and "torch:" in out
    assert "devices: cpu" in out


def test_version_option_prints_the_package_version(capsys):
    import sklearn_resnet

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"sklearn-resnet {sklearn_resnet.__version__}\n"


def test_tune_continues_a_study_in_shared_storage(data_dir, tmp_path, capfd):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    model = tmp_path / "best.joblib"
    base = ["tune", str(data_dir / "train.csv"), "--target", "label", *FAST, "--cv", "2"]
    base += ["--storage", storage, "--study-name", "cli"]
    # Off a terminal (or with --quiet) even Optuna's "A new study created" is quiet.
    records = logging.handlers.BufferingHandler(capacity=1000)
    optuna_logger, level = logging.getLogger("optuna"), optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    optuna_logger.addHandler(records)
    try:
        assert main([*base, "--n-trials", "2"]) == 0
    finally:
        optuna_logger.removeHandler(records)
        optuna.logging.set_verbosity(level)
    assert [r.getMessage() for r in records.buffer] == []
    assert "(2 trials in the study)" in capfd.readouterr().out
    assert main([*base, "--n-trials", "1", "-o", str(model)]) == 0
    out = capfd.readouterr().out
    assert "(3 trials in the study)" in out and "Best cross-validated score" in out
    searched = [line.split("=")[0].strip() for line in out.splitlines() if line.startswith("  ")]
    assert "lr" in searched
    assert not {"depth", "width", "max_epochs"} & set(searched)  # fixed with --set
    best = joblib.load(model)
    assert isinstance(best, Pipeline)
    assert (best[-1].depth, best[-1].width, best[-1].max_epochs) == (4, 32, 3)
    test = pd.read_csv(data_dir / "test.csv")
    assert set(best.predict(test)) <= {"yes", "no"}
    # The same study with another target is refused before any trial runs.
    train = pd.read_csv(data_dir / "train.csv")
    train.assign(other=train["label"]).to_csv(tmp_path / "other.csv", index=False)
    other = ["tune", str(tmp_path / "other.csv"), "--target", "other", *FAST, "--cv", "2"]
    assert main([*other, "--storage", storage, "--study-name", "cli", "--n-trials", "1"]) == 2
    err = capfd.readouterr().err
    assert "searched another target and columns" in err and "another --study-name" in err
    assert len(optuna.load_study(study_name="cli", storage=storage).trials) == 3
    # Other --set settings are refused too: the study's best trial would be refitted with
    # them (or, for a searched parameter, would override them).
    for setting, wording in [
        ("depth=6", "depth was 4, it is 6 now"),
        ("lr=0.003", "lr was searched, it is fixed at 0.003 now"),
    ]:
        assert main([*base, "--n-trials", "1", "--set", setting]) == 2
        err = capfd.readouterr().err
        assert f"was scored with other settings than this run has: {wording}" in err, err
        assert "Resume with the same --set settings, or give this search another --study" in err
    assert len(optuna.load_study(study_name="cli", storage=storage).trials) == 3
    # Other rows of the same table are other data.
    train.iloc[:-5].to_csv(tmp_path / "fewer.csv", index=False)
    fewer = ["tune", str(tmp_path / "fewer.csv"), "--target", "label", *FAST, "--cv", "2"]
    assert main([*fewer, "--storage", storage, "--study-name", "cli", "--n-trials", "1"]) == 2
    assert "other data than this run reads" in capfd.readouterr().err
    # Workers with seeds of their own share a study, as the docs advise.
    assert main([*base, "--n-trials", "1", "--random-state", "7"]) == 0
    assert "(4 trials in the study)" in capfd.readouterr().out
    # A mistyped scorer is refused before anything is recorded: the study goes on.
    assert main([*base, "--n-trials", "1", "--scoring", "acuracy"]) == 2
    assert "is not a scikit-learn scorer; did you mean accuracy" in capfd.readouterr().err
    assert main([*base, "--n-trials", "1"]) == 0
    assert "(5 trials in the study)" in capfd.readouterr().out


def test_a_study_without_a_scored_trial_takes_the_next_runs_target(
    data_dir, tmp_path, capfd, monkeypatch
):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    train = pd.read_csv(data_dir / "train.csv")
    train.assign(other=train["label"]).to_csv(tmp_path / "other.csv", index=False)
    stored = ["--cv", "2", "--n-trials", "1", "--storage", storage, "--study-name", "s"]
    other = ["tune", str(tmp_path / "other.csv"), "--target", "other", *FAST, *stored]
    with monkeypatch.context() as patch:  # a first run stopped before its first trial
        patch.setattr(OptunaSearchCV, "fit", _interrupted)
        assert main(other) == 130
    assert main(["tune", str(data_dir / "train.csv"), "--target", "label", *FAST, *stored]) == 0
    assert "(1 trial in the study)" in capfd.readouterr().out
    assert main(other) == 2  # now the study holds a trial of the label target
    assert "searched another target and columns" in capfd.readouterr().err


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "args, message",
    [
        (["tune", "x.csv", "--target", "y", "--n-trials", "0"], "--n-trials: must be at least 1"),
        (["tune", "x.csv", "--target", "y", "--n-trials", "2", "--cv", "1"], "at least 2, got 1"),
        (["demo", "--max-epochs", "0"], "--max-epochs: must be at least 1, got 0"),
        (["demo", "--n-trials", "-1"], "--n-trials: must be at least 0, got -1"),
        (["demo", "--cv", "three"], "'three' is not an integer"),
        (
            ["tune", "x.csv", "--target", "y", "--n-trials", "2", "--n-jobs", "0"],
            "--n-jobs: 0 runs",
        ),
        (
            ["tune", "x.csv", "--target", "y", "--n-trials", "2", "--n-jobs", "2.5"],
            "not an integer",
        ),
    ],
)
def test_counts_out_of_range_are_refused_by_the_parser(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_column_empty_throughout_training_is_kept_without_warnings(tmp_path, capsys):
    frame = _table(60).drop(columns="price").assign(empty=np.nan)
    frame.to_csv(tmp_path / "train.csv", index=False)
    model = tmp_path / "model.joblib"
    args = ["fit", str(tmp_path / "train.csv"), "--target", "label", *FAST, "-o", str(model)]
    assert main(args) == 0
    assert main(["predict", str(model), str(tmp_path / "train.csv")]) == 0
    assert capsys.readouterr().err == ""  # no "Skipping features without any observed values"


def test_dropped_columns_are_not_trained_on_and_ignored_when_predicting(data_dir, tmp_path, capsys):
    model = tmp_path / "model.joblib"
    args = ["fit", str(data_dir / "train.csv"), "--target", "label", *FAST, "-o", str(model)]
    assert main([*args, "--drop", "weight", "--drop", "colour"]) == 0
    assert list(joblib.load(model).feature_names_in_) == ["size"]
    assert main(["predict", str(model), str(data_dir / "test.csv")]) == 0
    for drop, message in [("nope", "the data lacks: nope"), ("label", "names the target")]:
        assert main([*args[:4], "--drop", drop, "-o", str(model)]) == 2
        assert message in capsys.readouterr().err


def test_number_checks_and_separator_hints_blame_the_right_thing(tmp_path):
    from sklearn_resnet.cli_data import check_numbers

    with pytest.raises(CommandLineError, match="holds 'x', not a number"):  # not "NA"
        check_numbers(pd.Series(["NA", "x", "1"]), "column 'c'", "numbers")
    # TRUE/FALSE where the model read numbers is not silently 1/0.
    with pytest.raises(CommandLineError, match="column 'c' holds True, not a number"):
        check_numbers(pd.Series([True, False]), "column 'c'", "numbers")
    check_numbers(pd.Series([1, 0]), "column 'c'", "numbers")
    (tmp_path / "one.tsv").write_text("height, cm\n1.5\n")  # a comma in a TSV name is fine
    assert list(read_table(tmp_path / "one.tsv").columns) == ["height, cm"]
    (tmp_path / "quote.csv").write_bytes(b'a,b\n1,"2\n')
    with pytest.raises(CommandLineError) as error:
        read_table(tmp_path / "quote.csv")
    assert "comma-separated" not in str(error.value)  # a quote, not a separator


def test_a_target_name_without_its_spaces_is_pointed_to_them(tmp_path):
    (tmp_path / "spaces.csv").write_text("a, label\n1, x\n2, y\n")
    with pytest.raises(CommandLineError, match=r"did you mean ' label'\?"):
        split_target(read_table(tmp_path / "spaces.csv"), "label")


@pytest.mark.parametrize(
    "name, meant",
    [("Diagnosis", "diagnosis"), ("diagnosys", "diagnosis"), ("mean radus", "mean radius")],
)
def test_a_mistyped_column_is_pointed_to_the_nearest_name_beyond_the_listed_ones(name, meant):
    # The message lists 20 columns; the one meant is the last of 31.
    frame = pd.DataFrame(
        np.zeros((2, 31)), columns=[f"c{i}" for i in range(29)] + ["mean radius", "diagnosis"]
    )
    with pytest.raises(CommandLineError, match=rf"did you mean '{meant}'\?\); .* and 11 more\."):
        split_target(frame, name)
    with pytest.raises(CommandLineError, match=rf"did you mean '{meant}'\?\)"):
        drop_columns(frame, [name], "c0")
    with pytest.raises(CommandLineError, match=r"no target column 'outcome'; the columns"):
        split_target(frame, "outcome")  # nothing close: no guess
    # Of several names, the first that has a near column is the one pointed to.
    with pytest.raises(CommandLineError, match=rf"did you mean '{meant}' for '{name}'\?\)"):
        drop_columns(frame, ["zzz", name], "c0")


def test_a_column_name_is_never_suggested_as_itself():
    frame = pd.DataFrame([[1, 2, 3]], columns=[0, 1, 2])  # names that are not strings
    with pytest.raises(CommandLineError, match=r"no target column '0'; the columns"):
        split_target(frame, "0")


def test_tune_searches_the_cnn_space_when_input_shape_is_set():
    from sklearn_resnet.cli import _search_space

    space = _search_space(ResNetClassifier(input_shape=(1, 4, 4)), {})
    assert space[f"{ESTIMATOR_STEP}__width"] == CategoricalDistribution([8, 16, 32])
    assert f"{ESTIMATOR_STEP}__augment" in space and f"{ESTIMATOR_STEP}__scaling" not in space
    fixed = _search_space(ResNetClassifier(), {"dropout": 0.1})
    assert f"{ESTIMATOR_STEP}__scaling" in fixed and f"{ESTIMATOR_STEP}__dropout" not in fixed


def test_tune_checks_its_fixed_settings_on_a_few_rows_for_either_task(monkeypatch):
    from sklearn_resnet.cli import _check_fixed_settings

    table = _table(400)
    X = table.drop(columns=["label", "price"])
    seen = []

    def counting(fit):
        return lambda self, X, y, **kwargs: seen.append(len(X)) or fit(self, X, y, **kwargs)

    for Estimator, target, task in [
        (ResNetRegressor, "price", "regression"),
        (ResNetClassifier, "label", "classification"),
    ]:
        monkeypatch.setattr(Estimator, "fit", counting(Estimator.fit))
        pipeline = build_pipeline(X, Estimator(**FAST_PARAMS))
        _check_fixed_settings(pipeline, X, table[target], task)
    assert seen == [256, 256]
    # A class the few rows miss would fail settings that name every class: all rows then.
    probed = set(np.random.default_rng(0).permutation(len(table))[:256])
    rare = next(i for i in range(len(table)) if i not in probed)
    labels = table["label"].astype(object).copy()
    labels.iloc[rare] = "rare"
    weights = {label: 1.0 for label in labels.unique()}
    pipeline = build_pipeline(X, ResNetClassifier(**FAST_PARAMS, class_weight=weights))
    _check_fixed_settings(pipeline, X, labels, "classification")
    assert seen[2:] == [400]


def test_entry_point_runs_as_a_module(data_dir, fitted, tmp_path):
    """One real process: ``python -m sklearn_resnet predict`` gives what main() gives."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sklearn_resnet",
            "predict",
            str(fitted),
            str(data_dir / "test.csv"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    test = pd.read_csv(data_dir / "test.csv")
    expected = joblib.load(fitted).predict(test)
    assert result.stdout.splitlines() == ["prediction", *expected]
    assert list(tmp_path.iterdir()) == []


def test_demo_cross_validates_saves_reloads_and_searches(tmp_path, capsys, monkeypatch):
    """The demo of ``make demo``, shrunk: every step runs and reports its numbers."""
    import sklearn_resnet

    searched = []

    class Recording(sklearn_resnet.OptunaSearchCV):
        def fit(self, X, y=None, **params):
            searched.append(self.estimator[-1].early_stopping)
            return super().fit(X, y, **params)

    monkeypatch.setattr(sklearn_resnet, "OptunaSearchCV", Recording)
    model = tmp_path / "demo.joblib"
    args = ["demo", "--cv", "2", "--max-epochs", "2", "--n-trials", "2", "-o", str(model)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2-fold cross-validated accuracy: 0." in out
    assert f"Saved to {model} (" in out and ") and reloaded.\n" in out
    assert "Test accuracy of the reloaded model: 0." in out
    assert "Best of 2 trials (" in out and "test accuracy 0." in out
    reloaded = joblib.load(model)
    assert reloaded[-1].n_iter_ == 2 and reloaded[-1].early_stopping == "auto"
    # The search's model holds out a validation set, so that its fits can be pruned.
    assert searched == [True]


def test_ctrl_c_during_fit_saves_nothing_and_exits_130(data_dir, tmp_path, monkeypatch, capsys):
    # The fit used to keep its finished epochs: the command saved a half-trained model
    # and exited 0, so `fit && deploy` shipped it.
    from conftest import InterruptAt

    import sklearn_resnet.cli as cli

    build = cli._estimator
    monkeypatch.setattr(
        cli, "_estimator", lambda *a, **k: build(*a, **k).set_params(callbacks=[InterruptAt(2)])
    )
    model = tmp_path / "model.joblib"
    args = ["fit", str(data_dir / "train.csv"), "--target", "label", *FAST, "-o", str(model)]
    assert main(args) == 130
    assert not model.exists()
    assert "interrupted" in capsys.readouterr().err


def test_the_trial_count_tells_finished_trials_from_running_ones():
    from sklearn_resnet.cli import _count_trials

    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    assert _count_trials(study) == "1 trial in the study"
    study.ask()  # another worker's trial, not finished
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    assert _count_trials(study) == "2 trials in the study, 1 running elsewhere"
