"""Safe loading: ``load_model`` refuses every bad model folder with one clear ValueError.

Whatever a folder holds (an empty, truncated, corrupted or foreign file, a config with
missing, unknown, mistyped or huge values, weights of another shape or dtype, a newer
format, a pickle), ``load_model`` either returns a working model or raises a single
plain ``ValueError`` that names the problem; it never unpickles, so no code from the
files runs. Two tiny models are fitted once per module (an MLP classifier and a CNN
regressor on 1x8 signals); each case damages a fresh copy of the saved folder.
"""

import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import time
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sklearn.datasets import make_classification

from sklearn_resnet import ResNetClassifier, ResNetRegressor, load_model, save_model
from sklearn_resnet.backbones import BACKBONE_DEFAULTS
from sklearn_resnet.persistence import (
    CONFIG_FILE,
    FITTED_ATTRIBUTES,
    FORMAT_VERSION,
    WEIGHTS_FILE,
)

TINY = {"max_epochs": 2, "random_state": 0, "device": "cpu"}
KINDS = ("mlp_classifier", "cnn_regressor")
TASKS = {"mlp_classifier": "classification", "cnn_regressor": "regression"}
CONFIG_KEYS = (
    "format",
    "format_version",
    "library_version",
    "estimator",
    "params",
    "fitted",
    "history",
    "training",
    "weights_sha256",
)


def _fit(kind):
    if kind == "mlp_classifier":
        X, y = make_classification(120, 5, n_informative=3, n_classes=3, random_state=0)
        # One network, which a file of each earlier format version can hold.
        return ResNetClassifier(depth=4, width=8, n_members=1, **TINY).fit(X, y), X
    X = np.random.default_rng(0).normal(size=(120, 8))
    y = X[:, :4].sum(axis=1) - X[:, 4:].sum(axis=1)
    return ResNetRegressor(depth=8, width=4, input_shape=(1, 8), **TINY).fit(X, y), X


@dataclass
class Saved:
    """A fitted estimator, its training X, the folder it was saved to and its outputs on X."""

    estimator: object
    X: np.ndarray
    folder: Path
    outputs: list


def _outputs(estimator, X) -> list:
    methods = ("predict", "predict_proba") if hasattr(estimator, "classes_") else ("predict",)
    return [getattr(estimator, method)(X) for method in methods]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``kind -> Saved``: each model fitted and saved once per module."""
    root = tmp_path_factory.mktemp("saved")
    saved = {}
    for kind in KINDS:
        estimator, X = _fit(kind)
        saved[kind] = Saved(
            estimator, X, save_model(estimator, root / kind), _outputs(estimator, X)
        )
    return saved


@pytest.fixture
def copy_of(models, tmp_path):
    """``copy_of(kind)``: a fresh copy of a saved folder that the test may damage."""

    def copy(kind):
        return Path(shutil.copytree(models[kind].folder, tmp_path / kind))

    return copy


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def folder(copy_of, kind):
    return copy_of(kind)


# ---- helpers ------------------------------------------------------------------------------
@contextmanager
def silent():
    """Turn the warnings a loader could emit into errors: loading a bad file is silent."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("error", RuntimeWarning)
        yield


def refused(path, *patterns) -> str:
    """``load_model(path)`` raises one plain ValueError whose message matches ``patterns``.

    Any other exception (TypeError, KeyError, RuntimeError, a JSON, safetensors or torch
    error) propagates out of ``pytest.raises(ValueError)`` and fails the test.
    """
    with pytest.raises(ValueError) as info, silent():
        load_model(path)
    error = info.value
    assert type(error) is ValueError
    assert error.__cause__ is None and error.__context__ is None  # one error, no chain
    message = str(error)
    assert message.startswith(f"Cannot load a model from {str(path)!r}: ")
    assert len(message) <= 2000
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not found in: {message}"
    return message


def read_config(folder) -> dict:
    return json.loads((folder / CONFIG_FILE).read_text())


def edit_config(folder, change) -> None:
    """Apply ``change`` to the parsed config and write it back (NaN/inf as JSON literals)."""
    config = read_config(folder)
    change(config)
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def write_weights(folder, tensors, *, update_digest: bool) -> None:
    """Write ``tensors`` as the weights; with ``update_digest`` the config records them."""
    if tensors:
        data = save_tensors(tensors, metadata={"format": "pt"})
    else:  # by hand: safetensors releases before 0.4.4 write no valid file without tensors
        header = json.dumps({"__metadata__": {"format": "pt"}}, separators=(",", ":")).encode()
        header += b" " * (-len(header) % 8)
        data = len(header).to_bytes(8, "little") + header
    (folder / WEIGHTS_FILE).write_bytes(data)
    if update_digest:
        digest = hashlib.sha256(data).hexdigest()
        edit_config(folder, lambda config: config.update(weights_sha256=digest))


def assert_same_predictions(loaded, saved: Saved) -> None:
    """``loaded`` predicts exactly as the estimator that was saved."""
    for got, expected in zip(_outputs(loaded, saved.X), saved.outputs, strict=True):
        np.testing.assert_array_equal(got, expected)


def assert_works(loaded, X) -> None:
    """A loaded model predicts one valid value per row."""
    predictions = loaded.predict(X)
    assert predictions.shape == (len(X),)
    if hasattr(loaded, "classes_"):
        assert set(predictions) <= set(loaded.classes_)
    else:
        assert np.isfinite(predictions).all()


def test_intact_copy_loads_and_predicts_identically(models, folder, kind):
    assert_same_predictions(load_model(folder), models[kind])


# ---- config rewrites that keep its meaning ------------------------------------------------
EQUIVALENT_REWRITES = {
    "compact": lambda text: json.dumps(json.loads(text), separators=(",", ":")),
    "sorted_keys_indent_4": lambda text: json.dumps(json.loads(text), sort_keys=True, indent=4),
    "unicode_escapes": lambda text: text.replace("sklearn-resnet", "sklearn\\u002dresnet"),
    "crlf_and_tabs": lambda text: text.replace("\n", "\r\n").replace("  ", "\t"),
    "byte_order_mark": lambda text: "\ufeff" + text,
    "trailing_whitespace": lambda text: text + "\n \t\n",
}


@pytest.mark.parametrize("rewrite", list(EQUIVALENT_REWRITES))
def test_config_rewritten_without_changing_its_meaning_loads_identically(
    rewrite, models, folder, kind
):
    text = (folder / CONFIG_FILE).read_text(encoding="utf-8")
    new = EQUIVALENT_REWRITES[rewrite](text)
    assert new != text
    (folder / CONFIG_FILE).write_bytes(new.encode("utf-8"))
    assert_same_predictions(load_model(folder), models[kind])


# ---- empty, truncated and corrupted files -------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content"),
    [(CONFIG_FILE, b""), (CONFIG_FILE, b" \n\t\r\n"), (WEIGHTS_FILE, b"")],
    ids=["config_empty", "config_whitespace", "weights_empty"],
)
def test_empty_file_is_refused(name, content, folder):
    (folder / name).write_bytes(content)
    refused(folder, f"{re.escape(name)} is empty")


@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE])
def test_file_truncated_at_any_offset_is_refused(name, folder):
    data = (folder / name).read_bytes()
    # Every strict prefix, sampled: the first bytes, the safetensors header length (8
    # bytes) and its JSON header, every n-th offset, up to the last byte that matters
    # (a config without its final newline is still the same JSON).
    end = len(data) - 1 if name == CONFIG_FILE else len(data)
    offsets = {1, 2, 7, 8, 9, 10, 16, end - 1, *range(1, end, max(1, end // 80))}
    for offset in sorted(offsets):
        (folder / name).write_bytes(data[:offset])
        refused(folder, re.escape(name), "truncated or corrupted")


def _corruptions(data: bytes, seed: int, count: int = 30):
    """``count`` corrupted copies of ``data``: bit flips, byte changes, overwritten runs."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        damaged = bytearray(data)
        position = int(rng.integers(len(data)))
        if index % 3 == 0:
            damaged[position] ^= 1 << int(rng.integers(8))
        elif index % 3 == 1:
            damaged[position] ^= int(rng.integers(1, 256))
        else:
            run = rng.integers(0, 256, size=int(rng.integers(2, 17)), dtype=np.uint8)
            damaged[position : position + len(run)] = run.tobytes()
        if bytes(damaged) != data:
            yield bytes(damaged)


def test_any_corruption_of_the_weights_is_detected(folder, kind):
    """The SHA-256 digest in the config catches every change, even one that still parses."""
    data = (folder / WEIGHTS_FILE).read_bytes()
    corrupted = list(_corruptions(data, seed=KINDS.index(kind)))
    assert len(corrupted) >= 25
    for damaged in corrupted:
        (folder / WEIGHTS_FILE).write_bytes(damaged)
        refused(folder, "model.safetensors", "(SHA-256 digest|not a valid safetensors)")


def test_corrupted_config_is_refused_or_loads_a_working_model(models, folder, kind):
    """A config has no digest of its own: a corrupted one that is still valid JSON with
    valid values loads (bit-identically when it still means the same); all else is refused."""
    X = models[kind].X
    text = (folder / CONFIG_FILE).read_bytes()
    original = json.loads(text)
    outcomes = {"refused": 0, "loaded": 0}
    for damaged in _corruptions(text, seed=10 + KINDS.index(kind)):
        (folder / CONFIG_FILE).write_bytes(damaged)
        try:
            with silent():
                loaded = load_model(folder)
        except ValueError:
            loaded = None
        if loaded is None:
            refused(folder)  # the same failure, checked: one plain ValueError
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        if json.loads(damaged.decode("utf-8-sig")) == original:
            assert_same_predictions(loaded, models[kind])
        else:
            assert_works(loaded, X)
    assert outcomes["refused"] >= 10, outcomes


#: Values a fuzzed config puts anywhere: every JSON type, edge numbers, tags, known words.
FUZZ_VALUES = [
    None, True, False, 0, 1, -1, 3, 8, 10**30, 0.0, 0.5, -0.5, 1e308, "", "x", "cnn", "mlp",
    "auto", "shift", "cpu", "32", [], [1], [1, 8], [[]], {}, {"a": 1}, {"__tuple__": [1, 8]},
    {"__float__": "nan"}, {"__dict__": [[0, 1.0]]}, {"dtype": "<i8", "values": [0, 1, 2]},
]  # fmt: skip


def _locations(value, location=()):
    """Every place in a parsed config: ``(key or index, ...)`` paths."""
    if location:
        yield location
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield from _locations(child, (*location, key))


def test_config_with_random_values_anywhere_is_refused_or_works(models, folder, kind):
    """100 seeded edits, each replacing or deleting 1-3 values anywhere in the config."""
    X = models[kind].X
    original = read_config(folder)
    rng = np.random.default_rng(20 + KINDS.index(kind))
    loaded_count = 0
    for _ in range(100):
        config = json.loads(json.dumps(original))
        for _ in range(int(rng.integers(1, 4))):
            # Not "compile": a compiled model is valid but compiles for seconds on use.
            places = [place for place in _locations(config) if place != ("params", "compile")]
            *parents, last = places[int(rng.integers(len(places)))]
            parent = config
            for key in parents:
                parent = parent[key]
            if rng.random() < 0.15:
                del parent[last]
            else:
                parent[last] = json.loads(
                    json.dumps(FUZZ_VALUES[int(rng.integers(len(FUZZ_VALUES)))])
                )
        (folder / CONFIG_FILE).write_text(json.dumps(config))
        try:
            with silent():
                loaded = load_model(folder)
        except ValueError:
            loaded = None
        if loaded is None:
            refused(folder)
            continue
        loaded_count += 1
        predictions = loaded.predict(X)
        assert len(predictions) == len(X)
        if hasattr(loaded, "classes_"):
            assert set(predictions) <= set(loaded.classes_)
            assert loaded.predict_proba(X).shape == (len(X), len(loaded.classes_))
        assert loaded.n_iter_ == len(loaded.history_) and 1 <= loaded.best_epoch_ <= loaded.n_iter_
    assert 0 < loaded_count < 100


# ---- foreign files ------------------------------------------------------------------------
def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a model")
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(12.0).reshape(3, 4))
    return buffer.getvalue()


def _torch_save() -> bytes:
    buffer = io.BytesIO()
    torch.save({"fc.weight": torch.ones(2, 2)}, buffer)
    return buffer.getvalue()


FOREIGN_FILES = {
    "png": lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(17),
    "zip": _zip,
    "gzip": lambda: gzip.compress(b"a gzip archive"),
    "numpy_npy": _npy,
    "torch_save": _torch_save,
    "safetensors_of_another_model": lambda: save_tensors({"encoder.weight": torch.ones(4, 4)}),
    "json_of_another_program": lambda: json.dumps({"name": "app", "version": "1.0"}).encode(),
    "json_array": lambda: b"[1, 2, 3]",
    "json_string": lambda: b'"sklearn-resnet"',
    "utf16_json": lambda: json.dumps({"format": "sklearn-resnet"}).encode("utf-16"),
    "plain_text": lambda: b"hello, world\n",
    "random_bytes": lambda: np.random.default_rng(0).bytes(4096),
}
FOREIGN_MESSAGES = {
    CONFIG_FILE: r"config\.json (is not valid JSON|is not an sklearn-resnet model config)",
    WEIGHTS_FILE: r"model\.safetensors (is not a valid safetensors file|does not match the SHA)",
}


@pytest.mark.parametrize("foreign", list(FOREIGN_FILES))
@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE])
def test_foreign_file_in_place_of_a_model_file_is_refused(name, foreign, folder):
    (folder / name).write_bytes(FOREIGN_FILES[foreign]())
    refused(folder, FOREIGN_MESSAGES[name])


@pytest.mark.parametrize("update_digest", [False, True], ids=["same_digest", "new_digest"])
def test_weights_of_the_other_model_are_refused(update_digest, models, folder, kind):
    other = models[KINDS[1 - KINDS.index(kind)]].folder
    tensors = load_tensors((other / WEIGHTS_FILE).read_bytes())
    write_weights(folder, tensors, update_digest=update_digest)
    if update_digest:
        refused(folder, "do not fit the network", "(missing|unexpected|expected)")
    else:
        refused(folder, "SHA-256 digest")


# ---- paths that are not a model folder ----------------------------------------------------
def test_missing_path_is_refused(tmp_path):
    refused(tmp_path / "nowhere", "the path is missing")


@pytest.mark.parametrize("extra", [[], ["README.txt", "data.csv"]], ids=["empty", "unrelated"])
def test_directory_that_is_not_a_model_is_refused(extra, tmp_path):
    for name in extra:
        (tmp_path / name).write_text("not a model")
    refused(tmp_path, "config.json is missing")


def test_folder_without_weights_is_refused(folder):
    (folder / WEIGHTS_FILE).unlink()
    refused(folder, "model.safetensors is missing")


@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE])
def test_model_file_that_is_a_directory_is_refused(name, folder):
    (folder / name).unlink()
    (folder / name).mkdir()
    refused(folder, f"{re.escape(name)} is not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_model_file_that_is_a_pipe_is_refused_without_blocking(folder):
    (folder / CONFIG_FILE).unlink()
    os.mkfifo(folder / CONFIG_FILE)  # reading it would wait forever for a writer
    refused(folder, "config.json is not a regular file")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_model_file_linked_to_an_endless_device_is_refused(folder):
    (folder / WEIGHTS_FILE).unlink()
    (folder / WEIGHTS_FILE).symlink_to("/dev/zero")
    refused(folder, "model.safetensors is not a regular file")


def test_model_files_linked_to_regular_files_elsewhere_load(folder, models, kind, tmp_path):
    """Model caches and data-versioning tools keep the files elsewhere and link to them."""
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        outside = tmp_path / f"blob-{name}"
        (folder / name).rename(outside)
        (folder / name).symlink_to(outside)
    with silent():
        assert_same_predictions(load_model(folder), models[kind])


def test_unreadable_file_is_refused(folder, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    refused(folder, r"config\.json cannot be read \(.*Permission denied")


def test_path_that_cannot_be_inspected_is_refused(folder, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "stat", denied)
    refused(folder, "(cannot be read|is missing)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_pipe_as_the_path_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "model")  # opening it would wait forever for a writer
    refused(tmp_path / "model", "the path is neither a directory nor a regular file")


def test_path_of_a_file_inside_the_folder_asks_for_the_folder(folder):
    refused(folder / CONFIG_FILE, "the path is a file", "pass the directory that holds it")


def test_other_file_as_path_is_refused(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\x00\x01binary")
    refused(tmp_path / "model.bin", "the path is a file; load_model reads the directory")


# ---- config keys and values ---------------------------------------------------------------
@pytest.mark.parametrize("key", CONFIG_KEYS)
def test_config_missing_a_key_is_refused(key, folder):
    edit_config(folder, lambda config: config.pop(key))
    refused(folder, re.escape(key))


def test_config_missing_any_parameter_is_refused(models, copy_of, kind):
    folder = copy_of(kind)
    original = (folder / CONFIG_FILE).read_text()
    for name in json.loads(original)["params"]:  # every parameter its version holds
        edit_config(folder, lambda config, name=name: config["params"].pop(name))
        refused(folder, rf"'params' has missing keys \['{name}'\]")
        (folder / CONFIG_FILE).write_text(original)


def test_config_missing_any_fitted_attribute_is_refused(copy_of, kind):
    folder = copy_of(kind)
    original = (folder / CONFIG_FILE).read_text()
    required = [name for name, _, tasks in FITTED_ATTRIBUTES if TASKS[kind] in tasks]
    assert len(required) >= 11
    for name in required:
        edit_config(folder, lambda config, name=name: config["fitted"].pop(name))
        refused(folder, rf"'fitted' has missing keys \['{name}'\]")
        (folder / CONFIG_FILE).write_text(original)


UNKNOWN_KEYS = {
    "top_level": lambda config: config,
    "params": lambda config: config["params"],
    "fitted": lambda config: config["fitted"],
    "training": lambda config: config["training"],
}


@pytest.mark.parametrize("where", list(UNKNOWN_KEYS))
def test_config_with_an_unknown_key_is_refused(where, folder):
    edit_config(folder, lambda config: UNKNOWN_KEYS[where](config).update(surprise=1))
    refused(folder, r"unknown keys \['surprise'\]")


WRONG_TYPES = [None, [], {}, "text", 3.5, True, 99]


@pytest.mark.parametrize("key", CONFIG_KEYS)
def test_config_value_of_the_wrong_type_is_refused(key, folder):
    original = (folder / CONFIG_FILE).read_text()
    for value in WRONG_TYPES:
        if key == "library_version" and isinstance(value, str):
            continue  # any string is a valid version note
        edit_config(folder, lambda config, value=value: config.update({key: value}))
        refused(folder, re.escape(key))
        (folder / CONFIG_FILE).write_text(original)


WRONG_PARAMETERS = [
    ("depth", "4"),
    ("depth", 4.5),
    ("width", -8),
    ("block", 3),
    ("dropout", 1.5),
    ("lr", "fast"),
    ("lr", {"__float__": "nan"}),
    ("batch_size", 0),
    ("max_epochs", 0),
    ("early_stopping", "yes"),
    ("random_state", 1.5),
    ("random_state", 10**30),
    ("input_shape", "1x8"),
    ("optimizer", None),
    ("device", 0),
    ("precision", 32),
    ("compile", "no"),
    ("verbose", -1),
]


@pytest.mark.parametrize(("name", "value"), WRONG_PARAMETERS)
def test_config_with_an_invalid_parameter_is_refused(name, value, folder):
    edit_config(folder, lambda config: config["params"].update({name: value}))
    refused(folder, "invalid parameters", f"'{name}' parameter")


WRONG_FITTED_VALUES = {
    "positive_int": "5",
    "bool": "false",
    "str": 5,
    "str_or_none": 5,
    "fraction_or_none": 1.5,
    "shape": "1x8",
    "names": [1, 2, 3, 4, 5],
    "floats": ["0.5"],
    "labels": [0, 1, 2],
    "history": [{"epoch": 2, "train_loss": 0.5}],
}


def test_config_with_any_fitted_attribute_of_the_wrong_type_is_refused(copy_of, kind):
    folder = copy_of(kind)
    original = (folder / CONFIG_FILE).read_text()
    names = [(n, k) for n, k, tasks in FITTED_ATTRIBUTES if not tasks or TASKS[kind] in tasks]
    for name, value_kind in names:
        value = WRONG_FITTED_VALUES[value_kind]
        edit_config(folder, lambda config, n=name, v=value: config["fitted"].update({n: v}))
        refused(folder, re.escape(name))
        (folder / CONFIG_FILE).write_text(original)


NON_FINITE = {
    "nan_parameter": (lambda c: c["params"].update(lr=float("nan")), "NaN"),
    "infinite_parameter": (lambda c: c["params"].update(lr=float("inf")), "Infinity"),
    "negative_infinity": (lambda c: c["params"].update(dropout=-float("inf")), "-Infinity"),
    "nan_in_history": (lambda c: c["history"][0].update(train_loss=float("nan")), "NaN"),
    "nan_in_fitted": (lambda c: c["fitted"].update(width_=float("nan")), "NaN"),
}


@pytest.mark.parametrize("case", list(NON_FINITE))
def test_config_with_nan_or_infinity_literals_is_refused(case, folder):
    change, literal = NON_FINITE[case]
    edit_config(folder, change)
    refused(folder, f"non-standard JSON value {re.escape(literal)}")


HUGE = {
    "depth": (
        lambda c: (c["params"].update(depth=10**30), c["training"].update(depth=10**30)),
        r"depth=1000.*(has \d+ residual blocks.*holds fewer|fits no residual CNN)",
    ),
    "odd_depth": (
        lambda c: (c["params"].update(depth=10**9 + 1), c["training"].update(depth=10**9 + 1)),
        "depth=1000000001",
    ),
    "default_depth": (
        lambda c: (c["params"].update(depth=None), c["training"].update(depth=10**30)),
        r"depth=1000.*(has \d+ residual blocks.*holds fewer|fits no residual CNN)",
    ),
    "int_beyond_a_float": (
        lambda c: (
            c["fitted"].update(_y_mean="BIG")
            if "_y_mean" in c["fitted"]
            else c["training"].update(batch_size="BIG")
        ),
        "integer 1000.*out of range",
    ),
    "wide_labels": (
        lambda c: (
            c["fitted"].update(classes_={"dtype": "<U999999", "values": list("ab" * 20)})
            if "classes_" in c["fitted"]
            else c["params"].update(depth="DIGITS")
        ),
        "(would take .* MiB|not valid JSON)",
    ),
    "width": (
        lambda c: (c["params"].update(width=None), c["fitted"].update(width_=10**30)),
        "network that cannot be built",
    ),
    "n_features": (
        lambda c: (
            c["fitted"].update(n_features_in_=10**30, input_shape_=[10**30]),
            c["fitted"].pop("_sample_shape", None),  # (refused for not matching otherwise)
        ),
        "(input_shape|cannot be built)",
    ),
    "n_outputs": (lambda c: c["fitted"].update(n_outputs_=10**30), "(n_outputs_|per output)"),
    "format_version": (lambda c: c.update(format_version=10**30), "newer sklearn-resnet"),
    "float_overflow": (lambda c: c["params"].update(lr="OVERFLOW"), "1e999, which is out of range"),
    "int_of_5000_digits": (lambda c: c["params"].update(depth="DIGITS"), "not valid JSON"),
}


@pytest.mark.parametrize("case", list(HUGE))
def test_config_with_huge_numbers_is_refused_at_once(case, folder):
    change, message = HUGE[case]
    edit_config(folder, change)
    text = (folder / CONFIG_FILE).read_text()
    text = text.replace('"OVERFLOW"', "1e999").replace('"DIGITS"', "9" * 5000)
    text = text.replace('"BIG"', "1" + "0" * 400)
    (folder / CONFIG_FILE).write_text(text)
    start = time.perf_counter()
    refused(folder, message)
    assert time.perf_counter() - start < 5  # no network of a huge depth is ever built


@pytest.mark.parametrize("levels", [40, 100_000])
def test_deeply_nested_config_is_refused(levels, folder):
    text = (folder / CONFIG_FILE).read_text()
    text = text.replace('"verbose": 0', '"verbose": ' + "[" * levels + "]" * levels)
    (folder / CONFIG_FILE).write_text(text)
    refused(folder, "config.json nests lists and objects (more than 32 levels deep|too deeply)")


# ---- format versions ----------------------------------------------------------------------
def test_a_folder_of_format_version_1_still_loads(folder, models, kind):
    """Version 1 had no training depth, block or dropout: the parameters give them."""

    def version_1(config):
        config["format_version"] = 1
        config["params"].pop("n_members", None), config["fitted"].pop("n_members_", None)
        for key in ("depth", "block", "dropout"):
            del config["training"][key]

    edit_config(folder, version_1)
    with silent():
        assert_same_predictions(load_model(folder), models[kind])


def test_a_folder_of_format_version_3_still_loads(folder, models, kind):
    """Version 3 had no training block or dropout: the parameters give them."""

    def version_3(config):
        config["format_version"] = 3
        config["params"].pop("n_members", None), config["fitted"].pop("n_members_", None)
        del config["training"]["block"], config["training"]["dropout"]

    edit_config(folder, version_3)
    with silent():
        assert_same_predictions(load_model(folder), models[kind])


def test_an_input_shape_that_an_earlier_mlp_would_predict_with_must_fit_its_features(copy_of):
    # Before version 3 an MLP recorded no sample shape and took its 'input_shape'.
    folder = copy_of("mlp_classifier")

    def version_2_with_a_wrong_shape(config):
        config["format_version"] = 2
        config["params"].pop("n_members", None), config["fitted"].pop("n_members_", None)
        del config["fitted"]["_sample_shape"]
        del config["training"]["block"], config["training"]["dropout"]
        config["params"]["input_shape"] = {"__tuple__": [4, 2]}

    edit_config(folder, version_2_with_a_wrong_shape)
    refused(folder, r"the 'input_shape' parameter \(4, 2\) does not hold n_features_in_")


def test_a_default_depth_is_stored_so_a_changed_default_does_not_matter(
    folder, models, kind, monkeypatch
):
    """A model fitted with depth=None keeps loading if a later release changes the default."""
    saved = models[kind].estimator
    edit_config(folder, lambda c: c["params"].update(depth=None))
    kind_key = saved.backbone_
    changed = {**BACKBONE_DEFAULTS[kind_key], "depth": 14 if kind_key == "cnn" else 6}
    monkeypatch.setitem(BACKBONE_DEFAULTS, kind_key, changed)
    with silent():
        assert_same_predictions(load_model(folder), models[kind])


def test_keys_of_another_release_name_the_release_that_wrote_them(folder):
    def from_another_release(config):
        config["library_version"] = "0.0.1"
        config["params"]["an_option_of_that_release"] = 1

    edit_config(folder, from_another_release)
    refused(folder, r"unknown keys .*saved by sklearn-resnet 0\.0\.1, this is ")


def test_newer_format_version_asks_for_an_upgrade(folder):
    edit_config(folder, lambda config: config.update(format_version=FORMAT_VERSION + 1))
    refused(folder, f"format_version {FORMAT_VERSION + 1} by a newer sklearn-resnet", "Upgrade")


def test_newer_format_version_with_another_layout_asks_for_an_upgrade(folder):
    newer = {"format": "sklearn-resnet", "format_version": FORMAT_VERSION + 1, "model": [1]}
    (folder / CONFIG_FILE).write_text(json.dumps(newer))
    refused(folder, "newer sklearn-resnet", "Upgrade")


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, True, None, [1]])
def test_invalid_format_version_is_refused(version, folder):
    edit_config(folder, lambda config: config.update(format_version=version))
    refused(folder, "invalid format_version")


# ---- tampered values that are well typed --------------------------------------------------
TAMPERED = {
    "estimator_of_the_other_task": (
        "mlp_classifier",
        lambda c: c.update(estimator="ResNetRegressor"),
        r"'params' has unknown keys \['class_weight'",
    ),
    "estimator_as_a_list": ("mlp_classifier", lambda c: c.update(estimator=[1]), "estimator"),
    "estimator_as_code": ("cnn_regressor", lambda c: c.update(estimator="os.system"), "estimator"),
    "digest_not_hex": ("cnn_regressor", lambda c: c.update(weights_sha256="xyz"), "SHA-256"),
    "unknown_tag": (
        "mlp_classifier",
        lambda c: c["params"].update(depth={"__reduce__": ["os.system", "id"]}),
        "unknown tagged value",
    ),
    "input_shape_fitted": (
        "cnn_regressor",
        lambda c: c["fitted"].update(input_shape_=[1, 2, 4]),
        r"do not fit the network .*'stem.weight' is \(4, 1, 3\) .*, expected \(4, 1, 3, 3\)",
    ),
    "block_of_another_network": (
        "cnn_regressor",
        lambda c: c["training"].update(block="bottleneck", depth=11),
        "do not fit the network",
    ),
    "sample_shape_on_a_cnn": (
        "cnn_regressor",
        lambda c: c["fitted"].update(_sample_shape=list(c["fitted"]["input_shape_"])),
        r"_sample_shape \(1, 8\) is not an MLP's shape",
    ),
    "unknown_block": (
        "mlp_classifier",
        lambda c: c["training"].update(block="dense"),
        "training block 'dense' is not a block type",
    ),
    "dropout_of_one": (
        "mlp_classifier",
        lambda c: c["training"].update(dropout=1.0),
        "training dropout 1.0 is not a probability below 1",
    ),
    "dropout_as_a_bool": (
        "mlp_classifier",
        lambda c: c["training"].update(dropout=False),
        "training dropout False is not a probability",
    ),
    "width_fitted": (
        "cnn_regressor",
        lambda c: c["fitted"].update(width_=5),
        r"do not fit the network .*expected \(5, ",
    ),
    "width_fitted_of_default_width": (
        "cnn_regressor",
        lambda c: (c["params"].update(width=None), c["fitted"].update(width_=5)),
        r"do not fit the network .*expected \(5, ",
    ),
    "depth_of_another_network": (
        "mlp_classifier",
        lambda c: (c["params"].update(depth=6), c["training"].update(depth=6)),
        "do not fit the network",
    ),
    "scaling_fitted": (
        "mlp_classifier",
        lambda c: c["fitted"].update(scaling_="minmax"),
        "scaling_",
    ),
    "augment_fitted": (
        "cnn_regressor",
        lambda c: c["fitted"].update(augment_="rotate"),
        "augment_",
    ),
    "augment_on_the_mlp": (
        "mlp_classifier",
        lambda c: c["fitted"].update(augment_="shift"),
        "augment_ is 'shift'",
    ),
    "zero_width": (
        "mlp_classifier",
        lambda c: c["fitted"].update(width_=0),
        "'width_' is not a valid positive int",
    ),
    "unknown_precision": (
        "mlp_classifier",
        lambda c: c["fitted"].update(precision_="8"),
        "precision_",
    ),
    "unknown_backbone": (
        "mlp_classifier",
        lambda c: c["fitted"].update(backbone_="rnn"),
        "backbone_",
    ),
    "unsorted_classes": (
        "mlp_classifier",
        lambda c: c["fitted"]["classes_"].update(values=[2, 1, 0]),
        "sorted and unique",
    ),
    "classes_for_another_output_count": (
        "mlp_classifier",
        lambda c: c["fitted"]["classes_"].update(values=[0, 1]),
        "n_outputs_",
    ),
    "class_label_out_of_dtype_range": (
        "mlp_classifier",
        lambda c: c["fitted"]["classes_"].update(dtype="|i1", values=[0, 1, 300]),
        "'classes_'",
    ),
    "class_label_truncated_by_dtype": (
        "mlp_classifier",
        lambda c: c["fitted"]["classes_"].update(dtype="<U1", values=["a", "bb", "c"]),
        "'classes_'",
    ),
    "zero_target_scale": (
        "cnn_regressor",
        lambda c: c["fitted"].update(_y_scale=[0.0]),
        "_y_scale",
    ),
    "target_scale_per_output": (
        "cnn_regressor",
        lambda c: c["fitted"].update(_y_mean=[0.0, 1.0]),
        "one value per output",
    ),
    "feature_names_of_wrong_count": (
        "mlp_classifier",
        lambda c: c["fitted"].update(feature_names_in_=["a", "b"]),
        "feature_names_in_",
    ),
    "history_empty": ("cnn_regressor", lambda c: c.update(history=[]), "history"),
    "history_as_a_tagged_tuple": (
        "cnn_regressor",
        lambda c: c.update(history=[{"__tuple__": [1]}]),
        "history entry 1",
    ),
    "history_epochs_out_of_order": (
        "mlp_classifier",
        lambda c: c["history"][1].update(epoch=7),
        "history entry 2",
    ),
    "history_loss_as_text": (
        "mlp_classifier",
        lambda c: c["history"][0].update(train_loss="0.5"),
        "history entry 1",
    ),
    "history_valid_loss_as_a_flag": (
        "mlp_classifier",
        lambda c: c["history"][1].update(valid_loss=True, valid_loss_best="yes"),
        "history entry 2",
    ),
    "history_weights_of_a_later_epoch": (
        "cnn_regressor",
        lambda c: c["history"][1].update(weights_epoch=3),
        "history entry 2",
    ),
    "history_weights_of_epoch_zero": (
        "cnn_regressor",
        lambda c: c["history"][1].update(weights_epoch=0),
        "history entry 2",
    ),
    "training_batch_size": (
        "cnn_regressor",
        lambda c: c["training"].update(batch_size=-16),
        "batch_size",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_but_well_typed_config_is_refused(case, copy_of):
    kind, change, message = TAMPERED[case]
    folder = copy_of(kind)
    edit_config(folder, change)
    refused(folder, message)


# ---- weights that do not fit the config ---------------------------------------------------
def _first_matrix(tensors) -> str:
    return next(key for key, value in tensors.items() if value.ndim >= 2)


def _without_first_matrix(tensors):
    return {key: value for key, value in tensors.items() if key != _first_matrix(tensors)}


WEIGHT_EDITS = {
    "missing_tensor": (_without_first_matrix, r"missing '[\w.]+'"),
    "extra_tensor": (
        lambda t: {**t, "extra.weight": torch.zeros(2)},
        r"unexpected 'extra\.weight'",
    ),
    "wrong_shape": (
        lambda t: {**t, _first_matrix(t): torch.zeros(3, *t[_first_matrix(t)].shape)},
        r"'[\w.]+' is \(3, .*expected \(",
    ),
    "wrong_dtype_float64": (
        lambda t: {**t, _first_matrix(t): t[_first_matrix(t)].double()},
        r"torch\.float64, expected .*torch\.float32",
    ),
    "wrong_dtype_float16": (
        lambda t: {**t, _first_matrix(t): t[_first_matrix(t)].half()},
        r"torch\.float16, expected .*torch\.float32",
    ),
    "wrong_dtype_int": (
        lambda t: {k: v.to(torch.int32) for k, v in t.items()},
        r"torch\.int32, expected",
    ),
    "no_tensors": (lambda t: {}, r"missing '[\w.]+'.*\(and \d+ more\)"),
}


@pytest.mark.parametrize("update_digest", [False, True], ids=["same_digest", "new_digest"])
@pytest.mark.parametrize("edit", list(WEIGHT_EDITS))
def test_weights_that_do_not_fit_the_config_are_refused(edit, update_digest, folder):
    change, message = WEIGHT_EDITS[edit]
    tensors = dict(load_tensors((folder / WEIGHTS_FILE).read_bytes()))
    write_weights(folder, change(tensors), update_digest=update_digest)
    if not update_digest:
        message = "does not match the SHA-256 digest"
    elif edit == "no_tensors":
        message = "holds fewer"  # the blocks are missing: refused before building
    refused(folder, "model.safetensors", message)


def test_weights_whose_length_prefix_looks_like_a_pickle_still_load(models, folder, kind):
    """A safetensors file starts with its header length, which can begin with the bytes
    a pickle starts with (0x80 0x02..0x05): only files the parser refuses are pickles."""
    tensors = load_tensors((folder / WEIGHTS_FILE).read_bytes())

    def with_note(size):
        return save_tensors(tensors, metadata={"format": "pt", "note": "x" * size})

    # The header length (8 little-endian bytes) grows with the note; aim at the next
    # length whose first two bytes are 0x80 and 2..5, as a pickle's PROTO opcode is.
    length = int.from_bytes(with_note(0)[:8], "little")
    target = next(
        n for n in range(length, length + 2**17) if n % 256 == 0x80 and 2 <= n // 256 % 256 <= 5
    )
    data = next(
        data
        for size in range(max(0, target - length - 16), target - length + 16)
        if (data := with_note(size))[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
    )
    (folder / WEIGHTS_FILE).write_bytes(data)
    edit_config(folder, lambda c: c.update(weights_sha256=hashlib.sha256(data).hexdigest()))
    assert_same_predictions(load_model(folder), models[kind])


# ---- pickles are never unpickled ----------------------------------------------------------
class _CreatesFile:
    """Unpickling this calls ``open(target, "w")``, which creates ``target``."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def _torch_payload(payload, path):
    torch.save({"weight": payload}, path)


def _numpy_payload(payload, path):
    with open(path, "wb") as file:
        np.save(file, np.array([payload], dtype=object), allow_pickle=True)


PAYLOADS = {
    **{
        f"pickle_protocol_{p}": (
            lambda payload, path, p=p: Path(path).write_bytes(pickle.dumps(payload, protocol=p)),
            lambda path: pickle.loads(Path(path).read_bytes()),
        )
        for p in range(pickle.HIGHEST_PROTOCOL + 1)
    },
    "joblib": (lambda payload, path: joblib.dump(payload, path), joblib.load),
    "joblib_compressed": (
        lambda payload, path: joblib.dump(payload, path, compress=3),
        joblib.load,
    ),
    "torch_save": (_torch_payload, lambda path: torch.load(path, weights_only=False)),
    "numpy_object_array": (_numpy_payload, lambda path: np.load(path, allow_pickle=True)),
}


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_payload_runs_code_when_loaded_the_unsafe_way(payload, tmp_path):
    """The payloads below are real: their own loaders run the code and create the file."""
    write, unsafe_load = PAYLOADS[payload]
    marker = tmp_path / "created"
    write(_CreatesFile(marker), tmp_path / "payload")
    unsafe_load(tmp_path / "payload")
    assert marker.exists()


@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE])
def test_payload_in_place_of_a_model_file_is_never_run(name, payload, folder, tmp_path):
    write, _ = PAYLOADS[payload]
    marker = tmp_path / "created"
    write(_CreatesFile(marker), folder / name)
    message = refused(folder, re.escape(name))
    assert re.search("(looks like a pickle|not valid JSON|not a valid safetensors)", message)
    if payload == "joblib" or payload[-1] in "2345":  # what starts with PROTO 2-5
        assert "looks like a pickle; load_model never unpickles" in message
    assert not marker.exists()


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_payload_file_as_the_path_is_never_run(payload, tmp_path):
    write, _ = PAYLOADS[payload]
    marker = tmp_path / "created"
    write(_CreatesFile(marker), tmp_path / "model.joblib")
    refused(tmp_path / "model.joblib", "the path is a file")
    assert not marker.exists()


def test_joblib_file_of_the_estimator_is_refused_with_advice(models, tmp_path):
    estimator = models["mlp_classifier"].estimator
    joblib.dump(estimator, tmp_path / "model.joblib")
    refused(
        tmp_path / "model.joblib",
        "looks like a pickle or joblib file, which load_model never opens",
        "only if you trust its source",
    )
    (tmp_path / "folder").mkdir()
    joblib.dump(estimator, tmp_path / "folder" / CONFIG_FILE)
    refused(tmp_path / "folder", "config.json is not valid JSON but looks like a pickle")
