"""Tables and pipelines for the command line: reading CSV and Parquet files, choosing the
task, parsing ``--set key=value`` and building the preprocessing + estimator Pipeline.

Everything here is plain Python that the ``sklearn-resnet`` command calls; using it from
Python gives exactly the model the command line trains.
"""

from __future__ import annotations

import ast
import difflib
import math
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils._param_validation import StrOptions

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_CLASSIFICATION_LEVELS",
    "MISSING_TOKENS",
    "CommandLineError",
    "build_pipeline",
    "categories_as_text",
    "category_columns",
    "check_number_columns",
    "check_numbers",
    "drop_columns",
    "evaluation_scores",
    "infer_task",
    "match_categories",
    "model_columns",
    "parse_settings",
    "read_table",
    "split_target",
    "unseen_labels",
    "write_table",
]

#: Cell texts that mean a missing value in a CSV column of numbers (pandas' defaults but
#: the empty cell, which is missing everywhere).
MISSING_TOKENS = frozenset(
    "#N/A;#N/A N/A;#NA;-1.#IND;-1.#QNAN;-NaN;-nan;1.#IND;1.#QNAN;<NA>;N/A;NA;NULL;NaN;None;"
    "n/a;nan;null".split(";")
)
#: Name of the Pipeline's part for the columns read as text and one-hot encoded. Models
#: of earlier releases, which read ``NA`` and the like as missing in every column, name
#: it ``"categorical"``; a model's name tells how its file is to be read.
TEXT_PART = "text"
_EARLIER_TEXT_PART = "categorical"
#: ``--task auto`` treats an integer target with at most this many distinct values as labels.
MAX_CLASSIFICATION_LEVELS = 20
#: File endings :func:`read_table` reads (compressed CSV included: pandas infers it).
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
_TSV_SUFFIXES = (".tsv", ".tsv.gz", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
#: Name of the estimator's step in the Pipeline, so search spaces read ``resnet__lr``.
ESTIMATOR_STEP = "resnet"


class CommandLineError(ValueError):
    """A problem with the command line's input: reported in one line, exit code 2."""


def _pandas():
    try:
        import pandas
    except ImportError as exc:  # pandas is not a dependency of the estimators
        raise CommandLineError(
            "the command line reads tables with pandas: pip install pandas."
        ) from exc
    return pandas


def read_table(path, text_columns=()) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file into a DataFrame.

    In CSV and TSV files an empty cell is missing. Tokens such as ``NA``, ``null`` or
    ``None`` are missing in a column of numbers, and values like any other in a column
    of text (a class ``"None"``, a region ``"NA"``).

    Parameters
    ----------
    path : str or path-like
        ``.csv`` (also ``.csv.gz`` and other compressed CSV), ``.tsv``/``.txt``
        (tab-separated, also ``.tsv.gz``) or ``.parquet``/``.pq``. Parquet needs
        ``pyarrow`` (``pip install "sklearn-resnet[parquet]"``).
    text_columns : sequence of str, default=()
        Columns of a CSV or TSV file read as the text they hold, missing-value tokens
        included (the columns a model reads as text: ``01`` then stays ``"01"``, and
        ``1`` next to an empty cell ``"1"`` rather than ``1.0``).

    Returns
    -------
    frame : pandas.DataFrame
        The table, with at least one row and one column.

    Raises
    ------
    CommandLineError
        When the file is missing, of an unknown type, unreadable or empty.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name) / "rows.csv"
    >>> _ = path.write_text("x,label\\n1.5,a\\n2.0,b\\n")
    >>> read_table(path).shape
    (2, 2)
    >>> folder.cleanup()
    """
    pd = _pandas()
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        raise CommandLineError(f"data file {str(path)!r} is a directory.")
    if not path.is_file():
        raise CommandLineError(f"data file {str(path)!r} does not exist.")
    try:
        if name.endswith(_CSV_SUFFIXES + _TSV_SUFFIXES):
            frame = pd.read_csv(
                path,
                sep="\t" if name.endswith(_TSV_SUFFIXES) else ",",
                dtype=dict.fromkeys(text_columns, str) or None,
                keep_default_na=False,
                na_values=[""],
            )
            frame = _missing_tokens_as_nan(frame, exclude=set(text_columns))
        elif name.endswith(_PARQUET_SUFFIXES):
            frame = pd.read_parquet(path)
        else:
            raise CommandLineError(
                f"cannot read {path.name!r}: unknown file type; use .csv, .tsv or .parquet."
            )
    except ImportError as exc:
        raise CommandLineError(
            f"reading {path.name!r} needs pyarrow: pip install 'sklearn-resnet[parquet]' ({exc})."
        ) from exc
    except (OSError, ValueError) as exc:
        if isinstance(exc, CommandLineError):
            raise
        message = " ".join(str(exc).split())
        if "Error tokenizing data" in message and "Expected" in message:
            message += " (.csv files are read as comma-separated, .tsv and .txt as tab-separated)"
        raise CommandLineError(f"cannot read {path.name!r}: {message}") from exc
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise CommandLineError(f"{path.name!r} holds no data rows.")
    # A header separated otherwise reads as one column (commas are legal in a TSV name).
    other = {";": "semicolons", "\t": "tabs", "|": "bars"}
    if frame.shape[1] == 1 and name.endswith(_CSV_SUFFIXES + _TSV_SUFFIXES):
        tsv = name.endswith(_TSV_SUFFIXES)
        found = [s for s in other if s in str(frame.columns[0]) and not (tsv and s == "\t")]
        if found:
            kind = ".tsv and .txt files are read as tab" if tsv else ".csv files are read as comma"
            raise CommandLineError(
                f"{path.name!r} reads as a single column, {str(frame.columns[0])[:60]!r}: its "
                f"header is separated by {other[found[0]]}, but {kind}-separated."
            )
    return frame


def _missing_tokens_as_nan(frame, exclude=frozenset()):
    """Columns of numbers holding tokens like ``NA`` as numeric columns with NaN there.

    Columns of text, and the columns in ``exclude``, keep the tokens as values.
    """
    pd = _pandas()
    for column in frame.columns:
        values = frame[column]
        text = values.dtype == object or pd.api.types.is_string_dtype(values)
        if column in exclude or not text:
            continue
        tokens = values.isin(MISSING_TOKENS)
        if not tokens.any():
            continue
        numbers = pd.to_numeric(values.mask(tokens), errors="coerce")
        if numbers[~tokens & values.notna()].notna().all():
            frame[column] = numbers
    return frame


def write_table(frame, path) -> None:
    """Write a DataFrame as CSV, TSV or Parquet, chosen by the file ending.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table, written without its index.
    path : str or path-like
        ``.parquet``/``.pq`` for Parquet, ``.tsv``/``.txt`` for tab-separated text,
        CSV for anything else.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import pandas as pd
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name) / "out.csv"
    >>> write_table(pd.DataFrame({"prediction": ["a", "b"]}), path)
    >>> path.read_text().splitlines()
    ['prediction', 'a', 'b']
    >>> folder.cleanup()
    """
    name = Path(path).name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        try:
            frame.to_parquet(path, index=False)
        except ImportError as exc:
            raise CommandLineError(
                f"writing {Path(path).name!r} needs pyarrow: pip install 'sklearn-resnet[parquet]'."
            ) from exc
    elif name.endswith(_TSV_SUFFIXES):
        frame.to_csv(path, sep="\t", index=False)
    else:
        frame.to_csv(path, index=False)


def split_target(frame, target: str):
    """Split a table into its feature columns and its target column.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table.
    target : str
        Name of the target column.

    Returns
    -------
    X : pandas.DataFrame
        Every other column.
    y : pandas.Series
        The target column.

    Raises
    ------
    CommandLineError
        When the column is missing, has missing values, or is the only column.

    Examples
    --------
    >>> import pandas as pd
    >>> X, y = split_target(pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}), "y")
    >>> list(X.columns), y.tolist()
    (['x'], ['a', 'b'])
    """
    if target not in frame.columns:
        raise CommandLineError(
            f"no target column {target!r}{_nearest([target], frame.columns)}; "
            f"{_column_list(frame.columns)}."
        )
    y = frame[target]
    if y.isna().any():
        missing = int(y.isna().sum())
        raise CommandLineError(
            f"target column {target!r} has {missing} missing value{'s' if missing != 1 else ''}; "
            "drop those rows first."
        )
    X = frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise CommandLineError(f"the data has no feature columns besides {target!r}.")
    return X, y


def drop_columns(X, names, target: str):
    """``X`` without the columns ``names`` (``--drop``), each of which must be there.

    Examples
    --------
    >>> import pandas as pd
    >>> list(drop_columns(pd.DataFrame({"id": [1], "x": [2.0]}), ["id"], "y").columns)
    ['x']
    """
    if target in names:
        raise CommandLineError(f"--drop {target!r} names the target column.")
    missing = [name for name in names if name not in X.columns]
    if missing:
        raise CommandLineError(
            f"--drop names {len(missing)} column(s) the data lacks: {_names(missing)}"
            f"{_nearest(missing, X.columns)}; {_column_list(X.columns)}."
        )
    X = X.drop(columns=list(dict.fromkeys(names)))
    if X.shape[1] == 0:
        raise CommandLineError("--drop leaves no feature column to train on.")
    return X


def _name(name) -> str:
    """A column name as shown in messages: quoted when spaces around it would be lost."""
    text = str(name)
    return repr(text) if not text or text != text.strip() else text


def _names(names, limit: int = 20) -> str:
    """``"a, b, c"``: the first ``limit`` of ``names`` and how many more."""
    shown = ", ".join(map(_name, names[:limit]))
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _nearest(names, columns) -> str:
    """``" (did you mean 'x'?)"`` for the column the first of ``names`` that has one
    most likely meant (``" (did you mean 'x' for 'X'?)"`` of several names), or ``""``.

    A column that differs only in spaces around it or in case comes first, then the
    closest spelling (:func:`difflib.get_close_matches`); the list of columns in the
    message may be cut short before it.
    """
    texts = [str(column) for column in columns]
    for name in names:
        others = [text for text in texts if text != name]
        found = [
            text
            for same in (str.strip, lambda text: text.strip().casefold())
            for text in others
            if same(text) == same(name)
        ] or difflib.get_close_matches(name, others, n=1, cutoff=0.8)
        if found:
            meant = f" for {name!r}" if len(names) > 1 else ""
            return f" (did you mean {found[0]!r}{meant}?)"
    return ""


def _column_list(columns) -> str:
    """``"the columns are: a, b, c"``, at most 20 of them and how many more."""
    return f"the columns are: {_names(columns)}"


def model_columns(model, X):
    """The columns of ``X`` that ``model`` was trained on, by name and in its order.

    The table may hold the target or other extra columns. A model without
    ``feature_names_in_`` (trained on an array) gets ``X`` as it is.

    Raises
    ------
    CommandLineError
        When ``X`` lacks a column the model was trained on.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.dummy import DummyClassifier
    >>> model = DummyClassifier().fit(pd.DataFrame({"a": [0, 1], "b": [1, 0]}), [0, 1])
    >>> list(model_columns(model, pd.DataFrame({"y": [1], "b": [2], "a": [3]})).columns)
    ['a', 'b']
    """
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return X
    missing = [name for name in names if name not in X.columns]
    if missing:
        raise CommandLineError(
            f"the data lacks {len(missing)} column(s) the model was trained on: "
            f"{_names(missing)}; "
            f"{_column_list(X.columns)}."
        )
    return X[list(names)]


def check_numbers(values, what: str, why: str) -> None:
    """Refuse a column that should hold numbers, naming a value that is not one.

    Examples
    --------
    >>> import pandas as pd
    >>> try:
    ...     check_numbers(pd.Series(["1.5", "?"]), "column 'size'", "the model read numbers")
    ... except CommandLineError as error:
    ...     print(error)
    column 'size' holds '?', not a number; the model read numbers.
    """
    pd = _pandas()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return
    present = values[values.notna()]
    if not len(present):
        return
    bad = present[pd.to_numeric(present, errors="coerce").isna()]
    if len(bad) or pd.api.types.is_bool_dtype(values):
        plain = bad[~bad.isin(MISSING_TOKENS)]  # a token may mean a gap: name another first
        example = (plain if len(plain) else bad if len(bad) else present).iloc[0]
        example = example.item() if hasattr(example, "item") else example  # True, not np.True_
        raise CommandLineError(f"{what} holds {example!r}, not a number; {why}.")


def check_number_columns(model, X) -> None:
    """Refuse text in the columns a Pipeline from :func:`build_pipeline` reads as numbers."""
    for column in _preprocessed_columns(model, "numeric"):
        if column in X.columns:
            check_numbers(X[column], f"column {column!r}", "the model was trained on numbers there")


def _preprocessed(model, *kinds: str):
    """The first of the ``kinds`` parts of a :func:`build_pipeline` model: its name, the
    part and its column names, else ``(None, None, [])`` (a model of another shape, say
    a user's own Pipeline)."""
    steps = getattr(model, "named_steps", None)
    preprocess = steps.get("preprocess") if isinstance(steps, dict) else None
    for name, part, columns in getattr(preprocess, "transformers_", ()):
        names = list(columns) if isinstance(columns, (list, tuple)) else []
        if name in kinds and names and all(isinstance(c, str) for c in names):
            return name, part, names
    return None, None, []


def _preprocessed_columns(model, kind: str) -> list:
    return _preprocessed(model, kind)[2]


def category_columns(model) -> list:
    """The columns a model from :func:`build_pipeline` reads as the text in the file
    (none for a model of another shape, or of an earlier release, which read them by
    their type).

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_resnet import ResNetClassifier
    >>> X = pd.DataFrame({"size": [1.0, 2.5, 3.0], "colour": ["red", "blue", "red"]})
    >>> model = build_pipeline(X, ResNetClassifier(max_epochs=1)).fit(X, [0, 1, 0])
    >>> category_columns(model)
    ['colour']
    """
    return _preprocessed(model, TEXT_PART)[2]


def match_categories(model, X):
    """``X`` with the text of ``model``'s category columns matched to its categories.

    :func:`read_table` gives a model's category columns as the text in the file, but
    training read a column of ``TRUE``/``FALSE`` as booleans, so the categories are
    ``"True"``/``"False"``. A model of an earlier release read its columns by type, as
    they are read for it: numbers next to an empty cell come back as decimals (``1.0``
    for the category ``"1"``), and ``NA`` and the like, which it read as missing in
    every column, stand for its missing category. A value the model does not know is
    replaced by the category it stands for; other values are left as they are (unseen
    categories are encoded as all zeros).

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_resnet import ResNetClassifier
    >>> X = pd.DataFrame({"size": [1.0, 2.5, 3.0], "flag": [True, False, True]})
    >>> model = build_pipeline(X, ResNetClassifier(max_epochs=1)).fit(X, [0, 1, 0])
    >>> match_categories(model, pd.DataFrame({"size": [1.0], "flag": ["TRUE"]}))["flag"].tolist()
    ['True']
    """
    kind, part, columns = _preprocessed(model, TEXT_PART, _EARLIER_TEXT_PART)
    known_per_column = getattr(getattr(part, "steps", [[None]])[-1][-1], "categories_", None)
    if known_per_column is None or len(known_per_column) != len(columns):
        return X
    X = X.copy()
    for column, known in zip(columns, known_per_column, strict=True):
        if column in X.columns:
            texts = {k for k in known if isinstance(k, str)}
            earlier = kind == _EARLIER_TEXT_PART
            gaps = earlier and any(_is_missing(k) for k in known)
            booleans = bool(texts) and texts <= {"True", "False"}  # a column read as bool
            match = partial(_known, texts, gaps, earlier, booleans)
            X[column] = X[column].astype(object).map(match)
    return X


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _known(texts: set, tokens_are_gaps: bool, decimals: bool, booleans: bool, value):
    """``value``, or the known category it stands for (see :func:`match_categories`)."""
    if decimals and isinstance(value, float) and value.is_integer() and str(int(value)) in texts:
        return str(int(value))
    if not isinstance(value, str) or value in texts:
        return value
    if booleans and value.lower() in ("true", "false") and value.capitalize() in texts:
        return value.capitalize()
    if tokens_are_gaps and value in MISSING_TOKENS:
        return math.nan
    return value


def unseen_labels(model, y) -> list:
    """The labels in ``y`` that the classifier ``model`` was not trained on; ``[]`` for a regressor.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> unseen_labels(DummyClassifier().fit([[0], [1]], ["a", "b"]), ["a", "c", "c"])
    ['c']
    """
    import numpy as np
    from sklearn.base import is_classifier

    if not is_classifier(model):
        return []
    labels = np.asarray(y)
    return np.unique(labels[~np.isin(labels, model.classes_)]).tolist()


def infer_task(y) -> str:
    """``--task auto``: ``"classification"`` or ``"regression"`` from the target column.

    Classification when the target is not numeric (strings, categories, booleans) or is
    of an integer type with at most ``MAX_CLASSIFICATION_LEVELS`` (20) distinct
    values; regression otherwise (floats, and integers with more distinct values).

    Parameters
    ----------
    y : pandas.Series
        The target column.

    Returns
    -------
    task : {"classification", "regression"}

    Raises
    ------
    CommandLineError
        When the target is text only because of a few cells: numbers in most rows that
        would be a regression target on their own, beside text such as ``"n/a"``. Its
        distinct numbers would otherwise become classes without a word.

    Examples
    --------
    >>> import pandas as pd
    >>> infer_task(pd.Series(["cat", "dog"])), infer_task(pd.Series([0, 1, 1]))
    ('classification', 'classification')
    >>> infer_task(pd.Series([0.5, 1.25])), infer_task(pd.Series(range(100)))
    ('regression', 'regression')
    """
    from pandas.api import types

    if types.is_bool_dtype(y):
        return "classification"
    if not types.is_numeric_dtype(y):
        if not isinstance(y.dtype, _pandas().CategoricalDtype):  # categories are labels
            _refuse_numbers_with_stray_text(y)
        return "classification"
    if types.is_integer_dtype(y) and y.nunique() <= MAX_CLASSIFICATION_LEVELS:
        return "classification"
    return "regression"


def _refuse_numbers_with_stray_text(y) -> None:
    """Refuse a text target whose rows are mostly numbers that :func:`infer_task` would regress."""
    numbers = _pandas().to_numeric(y.astype(object), errors="coerce")
    present = numbers.dropna()
    if len(present) == len(y) or 2 * len(present) <= len(y):
        return  # numbers throughout (identifiers stored as text), or mostly text
    if ((present % 1 == 0) & (present.abs() < 2**53)).all():  # "1", "2": integer labels
        present = present.astype("int64")
    if infer_task(present) == "classification":
        return
    text = y[numbers.isna()].astype(str).unique().tolist()
    shown = ", ".join(map(repr, text[:3])) + (", ..." if len(text) > 3 else "")
    raise CommandLineError(
        f"target column {y.name!r} holds numbers in {len(present)} of {len(y)} rows and "
        f"text in the others ({shown}), so --task auto would make its "
        f"{y.nunique()} distinct values classes. Fix or drop the rows with text to predict "
        "the numbers (--task regression), or pass --task classification if the values are "
        "labels."
    )


def _parse_value(key: str, text: str, estimator):
    constraints = getattr(estimator, "_parameter_constraints", {}).get(key, [])
    strings_only = bool(constraints) and all(
        isinstance(c, StrOptions) or c is str for c in constraints
    )
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if strings_only and not isinstance(value, str):  # "precision=32" means "32"
        return text
    return value


def parse_settings(settings, estimator) -> dict:
    """Parse ``--set key=value`` strings into parameters of ``estimator``.

    Values are read as Python literals (``20``, ``0.003``, ``1e-3``, ``None``,
    ``True``, ``(1, 8, 8)``, ``'quoted'``) and kept as plain strings otherwise
    (``device=cpu``). Parameters that accept only strings (``precision``,
    ``device``) keep the text as written, so ``precision=32`` means ``"32"``.

    Parameters
    ----------
    settings : list of str
        ``key=value`` strings.
    estimator : estimator
        The estimator whose ``get_params()`` names the valid keys.

    Returns
    -------
    params : dict
        Keyword arguments for ``estimator.set_params``.

    Raises
    ------
    CommandLineError
        For a string without ``=`` or an unknown key (the message lists the valid ones).

    Examples
    --------
    >>> from sklearn_resnet import ResNetClassifier
    >>> parse_settings(["depth=4", "lr=3e-3", "device=cpu", "input_shape=(1, 8, 8)"],
    ...                ResNetClassifier())
    {'depth': 4, 'lr': 0.003, 'device': 'cpu', 'input_shape': (1, 8, 8)}
    """
    valid = estimator.get_params(deep=False)
    params = {}
    for item in settings or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CommandLineError(f"--set expects key=value, got {item!r}.")
        if key not in valid:
            raise CommandLineError(
                f"unknown --set key {key!r} for {type(estimator).__name__}; "
                f"valid keys: {', '.join(sorted(valid))}."
            )
        params[key] = _parse_value(key, text.strip(), estimator)
    return params


def categories_as_text(X):
    """Category columns as text, missing values as NaN, whatever type pandas read.

    A text column read back as numbers (all its values look numeric), as floats (all
    empty) or a boolean column with a gap (objects) gets the same categories as in
    training: ``"red"``, ``"1"``, ``"True"``; a missing value stays missing.

    Parameters
    ----------
    X : pandas.DataFrame
        The category columns.

    Returns
    -------
    text : pandas.DataFrame
        The same columns as objects: strings and NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> categories_as_text(pd.DataFrame({"flag": [True, None], "code": [7, 8]})).values.tolist()
    [['True', '7'], [nan, '8']]
    """
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(X).astype(object)
    return frame.where(frame.isna(), frame.map(str)).where(frame.notna(), np.nan)


def build_pipeline(X, estimator) -> Pipeline:
    """The Pipeline the command line trains: column preprocessing, then ``estimator``.

    Numeric columns get median imputation and standard scaling; every other column
    (strings, categories, booleans) is read as text and one-hot encoded, with missing
    values as a category of their own and categories unseen in training encoded as all
    zeros.

    Parameters
    ----------
    X : pandas.DataFrame
        The feature columns; their names and types choose the preprocessing.
    estimator : estimator
        The final step, named ``"resnet"`` (search spaces read ``resnet__lr``).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        ``Pipeline([("preprocess", ColumnTransformer(...)), ("resnet", estimator)])``,
        not fitted.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_resnet import ResNetClassifier
    >>> X = pd.DataFrame({"size": [1.0, 2.5], "colour": ["red", "blue"]})
    >>> pipe = build_pipeline(X, ResNetClassifier())
    >>> [name for name, _ in pipe.steps]
    ['preprocess', 'resnet']
    """
    from pandas.api import types

    numeric = [
        col
        for col in X.columns
        if types.is_numeric_dtype(X[col]) and not types.is_bool_dtype(X[col])
    ]
    categorical = [col for col in X.columns if col not in numeric]
    transformers = []
    if numeric:
        # A column empty throughout training is kept (as zeros), not dropped with a
        # warning at every later predict.
        impute = SimpleImputer(strategy="median", keep_empty_features=True)
        scale = make_pipeline(impute, StandardScaler())
        transformers.append(("numeric", scale, numeric))
    if categorical:
        encode = make_pipeline(
            FunctionTransformer(categories_as_text, feature_names_out="one-to-one"),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        )
        transformers.append((TEXT_PART, encode, categorical))
    preprocess = ColumnTransformer(transformers, sparse_threshold=0.0)
    return Pipeline([("preprocess", preprocess), (ESTIMATOR_STEP, estimator)])


def evaluation_scores(model, X, y) -> dict[str, float]:
    """Scores of a fitted model on labelled data, as the ``evaluate`` command prints them.

    Classifiers: accuracy, balanced accuracy and (with ``predict_proba``) log loss;
    log loss is left out when ``y`` holds a label the model was not trained on, since
    the model gives it no probability. Regressors: R², mean absolute error and root
    mean squared error.

    Parameters
    ----------
    model : estimator
        A fitted classifier or regressor (or a Pipeline ending in one).
    X : pandas.DataFrame
        Feature columns.
    y : pandas.Series
        True targets.

    Returns
    -------
    scores : dict of str to float
        Metric name to value, in the order above.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> model = DummyClassifier().fit([[0], [1], [2]], ["a", "a", "b"])
    >>> round(evaluation_scores(model, [[0], [1], [2]], ["a", "a", "b"])["accuracy"], 3)
    0.667
    """
    from sklearn import metrics
    from sklearn.base import is_classifier

    predictions = model.predict(X)
    if is_classifier(model):
        scores = {
            "accuracy": metrics.accuracy_score(y, predictions),
            "balanced_accuracy": metrics.balanced_accuracy_score(y, predictions),
        }
        if hasattr(model, "predict_proba") and not unseen_labels(model, y):
            proba = model.predict_proba(X)
            scores["log_loss"] = metrics.log_loss(y, proba, labels=model.classes_)
    else:
        scores = {
            "r2": metrics.r2_score(y, predictions),
            "mae": metrics.mean_absolute_error(y, predictions),
            "rmse": metrics.root_mean_squared_error(y, predictions),
        }
    return {name: float(value) for name, value in scores.items()}
