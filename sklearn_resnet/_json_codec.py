"""JSON encoding for the safe model format: parameters, fitted attributes, history.

Plain JSON holds None, bool, int, float, str, lists and string-keyed dicts. Tuples,
dicts with other keys and non-finite floats are written as one-key tagged objects
(``{"__tuple__": [...]}``, ``{"__dict__": [[key, value], ...]}``, ``{"__float__": "nan"}``),
so every value comes back with its type. Decoding checks every type and raises
:class:`FormatError`; nothing here imports or calls code named in the data.
"""

from __future__ import annotations

import math
import re
from numbers import Integral, Real

import numpy as np

__all__ = [
    "MAX_NESTING",
    "FormatError",
    "check_keys",
    "check_nesting",
    "decode",
    "decode_fitted",
    "decode_history",
    "encode",
    "encode_fitted",
    "encode_history",
    "is_int",
    "is_number",
    "parse_float",
    "parse_int",
    "reject_constant",
]

_TAGS = ("__tuple__", "__dict__", "__float__")
# numpy dtypes that class labels may have: bool, ints, floats, unicode, object (strings).
_LABEL_DTYPE = re.compile(r"^[<>|=]?(b1|i[1248]|u[1248]|f[248]|U\d{1,6}|O)$")
#: Deepest nesting of lists and objects accepted in config.json (a saved one uses 6).
MAX_NESTING = 32
#: Most memory the class labels may take once decoded (their dtype fixes each one's size,
#: so a wide string dtype on many labels would otherwise allocate gigabytes).
_MAX_LABEL_BYTES = 64 * 2**20


class FormatError(ValueError):
    """A problem found in a saved model; the loader adds the path to the message."""


# ---- JSON encoding of parameters and history values --------------------------------
def encode(value, where: str):
    """Plain JSON for ``value``; tuples, non-string-keyed dicts and NaN/inf are tagged."""
    if value is None or isinstance(value, bool | np.bool_):
        return None if value is None else bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        number = float(value)
        return number if math.isfinite(number) else {"__float__": repr(number)}
    if isinstance(value, list):
        return [encode(v, where) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, where) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {str(k): encode(v, where) for k, v in value.items()}
        return {"__dict__": [[encode(k, where), encode(v, where)] for k, v in value.items()]}
    raise ValueError(
        f"{where} holds an object of type {type(value).__name__}, which the safe format cannot "
        "store (it takes None, bool, int, float, str, and lists, tuples and dicts of "
        "them). Set it to a plain value before saving, or save with pickle/joblib."
    )


def decode(value, where: str):
    """Inverse of :func:`encode`; raises :class:`FormatError` for an unknown tag."""
    if isinstance(value, list):
        return [decode(v, where) for v in value]
    if not isinstance(value, dict):
        return value
    tags = [key for key in value if key.startswith("__")]
    if not tags:
        return {k: decode(v, where) for k, v in value.items()}
    if len(value) != 1 or tags[0] not in _TAGS:
        raise FormatError(f"{where} holds an unknown tagged value {sorted(value)}.")
    tag, inner = tags[0], value[tags[0]]
    if tag == "__float__":
        if inner not in ("nan", "inf", "-inf"):
            raise FormatError(f"{where} holds an invalid float {inner!r}.")
        return float(inner)
    if not isinstance(inner, list):
        raise FormatError(f"{where} holds a {tag} tag whose value is not a list.")
    if tag == "__tuple__":
        return tuple(decode(v, where) for v in inner)
    if not all(isinstance(pair, list) and len(pair) == 2 for pair in inner):
        raise FormatError(f"{where} holds a __dict__ tag that is not a list of pairs.")
    try:
        return {decode(k, where): decode(v, where) for k, v in inner}
    except TypeError:
        raise FormatError(f"{where} holds a __dict__ tag with an unhashable key.") from None


# ---- fitted attributes ------------------------------------------------------------------
def encode_fitted(kind: str, value, name: str):
    """JSON for the fitted attribute ``name`` of the given kind (see ``FITTED_ATTRIBUTES``)."""
    if kind in ("positive_int", "bool", "str", "str_or_none"):
        return encode(value, name)
    if kind == "fraction_or_none":
        return None if value is None else float(value)
    if kind == "shape":
        return [int(v) for v in value]
    if kind == "names":
        return [str(v) for v in value]
    if kind == "floats":
        return [float(v) for v in np.ravel(value)]
    if kind == "history":
        return encode_history(value, name)
    array = np.asarray(value)  # "labels"
    if array.dtype.kind == "U" and array.nbytes > _MAX_LABEL_BYTES:
        raise ValueError(
            f"{name} takes {array.nbytes / 2**20:.0f} MiB as {array.dtype.str} labels, more "
            f"than the {_MAX_LABEL_BYTES // 2**20} MiB the safe format reads back; save with "
            "pickle/joblib or use shorter labels."
        )
    text = array.dtype == object and all(isinstance(v, str) for v in array)
    if not (text or array.dtype.kind in "biufU"):
        raise ValueError(
            f"{name} holds labels of type {array.dtype} (or mixed or non-string Python "
            "objects), which the safe format cannot store; save with pickle/joblib or use "
            "string, boolean or numeric labels."
        )
    return {"dtype": array.dtype.str, "values": array.tolist()}


def is_int(value) -> bool:
    """Whether a decoded JSON value is an int (and not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


#: How an error names the kinds whose name does not say it.
_KIND_NAMES = {"fraction_or_none": "a number between 0 and 1 (exclusive) or null"}


def decode_fitted(kind: str, value, name: str):
    """Decode one fitted attribute, checking its JSON type."""
    what = _KIND_NAMES.get(kind, f"a valid {kind.replace('_', ' ')}")
    bad = FormatError(f"config.json: fitted attribute {name!r} is not {what}: {value!r:.80}")
    if kind == "positive_int":
        if not is_int(value) or value < 1:
            raise bad
        return value
    if kind in ("bool", "str", "str_or_none"):
        types = {"bool": bool, "str": str, "str_or_none": str | None}[kind]
        if not isinstance(value, types):
            raise bad
        return value
    if kind == "fraction_or_none":
        if value is not None and not (is_number(value) and 0 < value < 1):
            raise bad
        return value
    if kind == "shape":
        if not isinstance(value, list) or not value or not all(is_int(v) and v > 0 for v in value):
            raise bad
        return tuple(value)
    if kind == "names":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
        return np.asarray(value, dtype=object)
    if kind == "floats":
        if not isinstance(value, list) or not all(is_number(v) for v in value):
            raise bad
        return np.asarray(value, dtype=np.float64)
    if kind == "history":
        from skorch.history import History  # imported here, as skorch imports torch

        return History(decode_history(value, name))
    return _decode_labels(value, bad)


def is_number(value) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _decode_labels(value, bad: FormatError) -> np.ndarray:
    if not isinstance(value, dict) or sorted(value) != ["dtype", "values"]:
        raise bad
    dtype, values = value["dtype"], value["values"]
    if not isinstance(dtype, str) or not _LABEL_DTYPE.match(dtype) or not isinstance(values, list):
        raise bad
    dtype = np.dtype(dtype)
    if dtype.itemsize * len(values) > _MAX_LABEL_BYTES:
        raise FormatError(
            f"config.json: fitted attribute 'classes_' would take "
            f"{dtype.itemsize * len(values) / 2**20:.0f} MiB as {dtype.str} labels, more than "
            f"{_MAX_LABEL_BYTES // 2**20} MiB."
        )
    expected = {"b": bool, "i": int, "u": int, "f": int | float, "U": str, "O": str}[dtype.kind]
    if not all(
        isinstance(v, expected) and (dtype.kind == "b") == isinstance(v, bool) for v in values
    ):
        raise bad
    if dtype.kind in "iu":
        # Checked here: numpy 2 raises for an int out of the dtype's range, numpy 1
        # warns and wraps it around.
        info = np.iinfo(dtype)
        if not all(info.min <= v <= info.max for v in values):
            raise bad
    try:
        with np.errstate(all="ignore"):
            labels = np.asarray(values, dtype=dtype)
    except (OverflowError, ValueError):
        raise bad from None
    if labels.tolist() != values:  # truncated strings, floats rounded or overflowed
        raise bad
    return labels


def reject_constant(name: str):
    """``parse_constant`` hook of :func:`json.loads`: refuse NaN and Infinity literals."""
    raise FormatError(f"config.json holds the non-standard JSON value {name}.")


def parse_float(text: str) -> float:
    """``parse_float`` hook of :func:`json.loads`: refuse numbers too large for a float."""
    value = float(text)
    if not math.isfinite(value):
        raise FormatError(f"config.json holds the number {text:.40}, which is out of range.")
    return value


def parse_int(text: str) -> int:
    """``parse_int`` hook of :func:`json.loads`: refuse integers too large for a float,
    like :func:`parse_float` (any count, size or label fits in one)."""
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise FormatError(
            f"config.json holds the integer {text:.40}..., which is out of range."
        ) from None
    return value


def check_nesting(value, limit: int = MAX_NESTING) -> None:
    """Refuse lists and objects nested deeper than ``limit`` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > limit:
                raise FormatError(
                    f"config.json nests lists and objects more than {limit} levels deep."
                )
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)


def check_keys(mapping, expected, where: str, optional=(), writer=None) -> None:
    """``mapping`` must be a dict with every key of ``expected`` and no others.

    ``writer`` says which other version of the package wrote the file, if one did:
    the likely cause of keys that differ.
    """
    if not isinstance(mapping, dict):
        raise FormatError(f"{where} is not a JSON object.")
    missing = [key for key in expected if key not in mapping]
    unknown = sorted(set(mapping) - set(expected) - set(optional))
    if missing or unknown:
        parts = [f"missing keys {missing}"] * bool(missing)
        parts += [f"unknown keys {unknown}"] * bool(unknown)
        hint = f" ({writer}: load it with that version)" if writer else ""
        raise FormatError(f"{where} has {' and '.join(parts)}{hint}.")


def encode_history(history, name: str = "history_") -> list[dict]:
    """Per-epoch records of a skorch history as JSON, without the per-batch records."""
    return [
        {key: encode(value, name) for key, value in row.items() if key != "batches"}
        for row in history
    ]


def decode_history(rows, name: str = "history") -> list[dict]:
    """Epoch records from :func:`encode_history`, each with an empty ``batches`` list."""
    if not isinstance(rows, list) or not rows:
        raise FormatError(f"config.json: '{name}' must be a non-empty list of epoch records.")
    history = []
    for index, row in enumerate(rows, 1):
        row = decode(row, name) if isinstance(row, dict) else None
        if not _is_epoch_record(row, index):
            raise FormatError(
                f"config.json: {name} entry {index} is not an epoch record: it needs "
                f"'epoch': {index} and a numeric 'train_loss'; 'valid_loss' and "
                "'valid_score' must be numbers, the '..._best' entries true or false and "
                "'weights_epoch' no later than 'epoch'."
            )
        history.append({**row, "batches": []})
    return history


_LOSSES = ("train_loss", "valid_loss", "valid_score")
_FLAGS = ("train_loss_best", "valid_loss_best", "valid_score_best")


def _is_epoch_record(row, index: int) -> bool:
    """Whether ``row`` is a plausible record of epoch ``index``, as skorch writes them."""
    if not isinstance(row, dict) or not is_int(row.get("epoch")) or row["epoch"] != index:
        return False
    kept = row.get("weights_epoch", index)  # the epoch whose weights the network holds
    return (
        all(_is_float(row.get(key), key != "train_loss") for key in _LOSSES)
        and all(isinstance(row.get(key, False), bool) for key in _FLAGS)
        and is_int(kept)
        and 1 <= kept <= index
    )


def _is_float(value, optional: bool) -> bool:
    """A number (NaN included: a diverged epoch records one), or absent when optional."""
    if value is None:
        return optional
    return isinstance(value, int | float) and not isinstance(value, bool)
