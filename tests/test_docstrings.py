"""The public API's docstrings: numpydoc sections that match the signatures (what the API
page renders and ``help()`` shows)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import sklearn_resnet
from sklearn_resnet import cli, cli_data

docscrape = pytest.importorskip("numpydoc.docscrape")

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def rendered_helpers() -> list[str]:
    """The ``cli_data`` names docs/api.md lists under ``members:``."""
    text = API_PAGE.read_text(encoding="utf-8")
    block = re.search(r"::: sklearn_resnet\.cli_data\n(.*?)\n\n", text, re.DOTALL).group(1)
    return re.findall(r"^\s+- (\w+)$", block, re.MULTILINE)


def public_callables() -> list[tuple[str, object]]:
    """Every exported class and function, the public methods our classes define or
    inherit from our base class, and the rendered command-line helpers."""
    found = [(name, getattr(sklearn_resnet, name)) for name in sklearn_resnet.__all__]
    found += [(f"cli_data.{name}", getattr(cli_data, name)) for name in rendered_helpers()]
    found.append(("cli.main", cli.main))
    methods = []
    for name, obj in found:
        if not inspect.isclass(obj):
            continue
        for attr, member in inspect.getmembers(obj, callable):
            ours = (getattr(member, "__module__", None) or "").startswith("sklearn_resnet")
            if not attr.startswith("_") and ours and not inspect.isclass(member):
                methods.append((f"{name}.{attr}", member))
    everything = found + methods
    return [(n, o) for n, o in everything if not n.startswith("__") and not _is_exception(o)]


def _is_exception(obj) -> bool:
    return inspect.isclass(obj) and issubclass(obj, Exception)


def _returns_something(obj) -> bool:
    return not inspect.isclass(obj) and inspect.signature(obj).return_annotation not in (
        None,
        "None",
    )


CALLABLES = public_callables()
NAMES = [name for name, _ in CALLABLES]
RETURNING = [(name, obj) for name, obj in CALLABLES if _returns_something(obj)]


def signature_names(obj) -> list[str]:
    prefix = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    parameters = inspect.signature(obj).parameters.values()
    return [prefix.get(p.kind, "") + p.name for p in parameters if p.name not in ("self", "cls")]


def test_the_inventory_is_complete():
    for name in ("ResNetClassifier.predict_proba", "ResNetRegressor.fit", "OptunaSearchCV.fit"):
        assert name in NAMES
    assert "cli_data.read_table" in NAMES and "cli_data.build_pipeline" in NAMES


@pytest.mark.parametrize("name, obj", CALLABLES, ids=NAMES)
def test_documented_parameters_are_the_signature(name, obj):
    documented = [p.name for p in docscrape.NumpyDocString(inspect.getdoc(obj) or "")["Parameters"]]
    assert documented == signature_names(obj), f"{name}: Parameters section {documented}"


@pytest.mark.parametrize("name, obj", RETURNING, ids=[name for name, _ in RETURNING])
def test_functions_that_return_something_document_it(name, obj):
    doc = docscrape.NumpyDocString(inspect.getdoc(obj) or "")
    assert doc["Returns"] or doc["Yields"], f"{name} has no Returns section"
