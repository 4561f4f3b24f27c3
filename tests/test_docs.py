"""The documentation: README and guide code runs, documented commands parse, the command-line
walk-through runs end to end, and the mkdocs site builds with ``--strict``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import sklearn_resnet
from sklearn_resnet import ResNetClassifier, ResNetRegressor
from sklearn_resnet.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Pages whose Python blocks run here (the search and persistence pages test their own).
README = ROOT / "README.md"
PAGES_WITH_CODE = [
    README,
    DOCS / "index.md",
    DOCS / "getting-started.md",
    DOCS / "user-guide.md",
    DOCS / "reliability.md",
]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def code_blocks(path: Path, language: str | None = None) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of a Markdown file, in order."""
    blocks = FENCE.findall(path.read_text(encoding="utf-8"))
    return [(lang, code) for lang, code in blocks if language is None or lang == language]


def commands(code: str, prompt: str = "") -> list[list[str]]:
    """The ``sklearn-resnet`` command lines of a block, continuation lines joined: every such
    line of a shell block (``prompt=""``), or those after a ``$ `` prompt in a transcript."""
    lines = code.replace("\\\n", " ").splitlines()
    start = f"{prompt}sklearn-resnet "
    found = [line.strip() for line in lines if line.strip().startswith(start)]
    return [shlex.split(line[len(prompt) :])[1:] for line in found]


@pytest.fixture
def quick_training(monkeypatch):
    """Every fit runs one epoch of a narrow network: the docs' code is checked for running,
    not for accuracy. The parameters read back unchanged after the fit."""
    for cls in (ResNetClassifier, ResNetRegressor):
        original = cls.fit

        def fit(self, X, y, sample_weight=None, _original=original):
            saved = self.get_params(deep=False)
            self.set_params(max_epochs=1, width=8)
            try:
                return _original(self, X, y, sample_weight=sample_weight)
            finally:
                self.set_params(max_epochs=saved["max_epochs"], width=saved["width"])

        monkeypatch.setattr(cls, "fit", fit)


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda path: path.name)
def test_python_blocks_run(page, quick_training, tmp_path, monkeypatch, capsys):
    blocks = code_blocks(page, "python")
    assert blocks, f"{page.name} has no python blocks"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    already_run = {code for _, code in code_blocks(README, "python")} if page != README else set()
    for index, (_, code) in enumerate(blocks):
        if code in already_run:  # the same example as the README's
            continue
        try:
            exec(compile(code, f"{page.name}[python block {index + 1}]", "exec"), namespace)
        except Exception as exc:  # name the block in the failure
            pytest.fail(f"{page.name}, python block {index + 1} raised {exc!r}:\n{code}")
    assert list(tmp_path.iterdir()) == [], f"{page.name}'s code left files behind"


def test_documented_commands_parse():
    """Every ``sklearn-resnet`` line in the docs and the README names real options."""
    parser = build_parser()
    found = 0
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for lang, code in code_blocks(page):
            for argv in commands(code, "" if lang in ("bash", "sh") else "$ "):
                found += 1
                try:
                    parser.parse_args(argv)
                except SystemExit:
                    pytest.fail(f"{page.name}: `sklearn-resnet {shlex.join(argv)}` does not parse")
    assert found >= 10


def test_command_line_walk_through_runs(quick_training, tmp_path, monkeypatch, capsys):
    """docs/command-line.md in order: its Python blocks and every command of its bash blocks
    (``tune`` with two trials)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for lang, code in code_blocks(DOCS / "command-line.md"):
        if lang == "python":
            exec(compile(code, "command-line.md", "exec"), namespace)
        elif lang == "bash":
            for argv in commands(code):
                if "--n-trials" in argv:  # two trials show that the command works
                    argv[argv.index("--n-trials") + 1] = "2"
                assert main(argv) == 0, f"`sklearn-resnet {shlex.join(argv)}` failed"
    out = capsys.readouterr().out
    assert "Wrote 143 predictions to predictions.csv." in out
    assert "accuracy: " in out and "devices: " in out
    assert {"model.joblib", "predictions.csv", "probabilities.csv"} <= {
        path.name for path in tmp_path.iterdir()
    }


def _missing_docs_tools() -> list[str]:
    modules = {"mkdocs": "mkdocs", "material": "mkdocs-material", "mkdocstrings": "mkdocstrings"}
    return [name for module, name in modules.items() if importlib.util.find_spec(module) is None]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    missing = _missing_docs_tools()
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed: pip install -e '.[docs]' to build the docs"
        )
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    assert "WARNING" not in log, log
    return site


def test_docs_build_strict_with_every_public_name(built_site):
    api = (built_site / "api" / "index.html").read_text(encoding="utf-8")
    public = [name for name in sklearn_resnet.__all__ if not name.startswith("__")]
    missing = [name for name in public if f'id="sklearn_resnet.{name}"' not in api]
    assert not missing, f"the API page lacks {missing}"
    assert 'id="sklearn_resnet.cli_data.build_pipeline"' in api


def test_api_page_renders_docstrings_as_written(built_site):
    """mkdocstrings shows Sphinx roles as raw text, and a module constant with Python's
    built-in docstring (``int``'s) rather than its own comment."""
    api = (built_site / "api" / "index.html").read_text(encoding="utf-8")
    roles = re.findall(r":(?:class|func|meth|attr|data|mod|obj):", api)
    assert not roles, f"the API page shows {len(roles)} raw Sphinx roles"
    assert "Convert a number or string to an integer" not in api
    for method in ("fit", "partial_fit", "predict", "default_search_space"):
        assert f'id="sklearn_resnet.ResNetRegressor.{method}"' in api, method


def test_docs_site_needs_no_network(built_site):
    for page in built_site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for host in (
            "fonts.googleapis.com",
            "fonts.gstatic.com",
            "googletagmanager",
            "cdn.jsdelivr",
        ):
            assert host not in html, f"{page.relative_to(built_site)} loads {host}"


def test_reliability_page_names_only_tests_that_exist():
    """Each guarantee on the reliability page cites tests; every one of them must exist."""
    text = (DOCS / "reliability.md").read_text()
    current, cited = None, []
    for match in re.finditer(r"`(tests/\w+\.py)?(?:::(\w+))?", text):
        current = match.group(1) or current
        if match.group(2):
            cited.append((current, match.group(2)))
    assert len(cited) >= 60
    for path, name in cited:
        source = (ROOT / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{path}::{name} is missing"


def _modules_with_examples() -> list[str]:
    import doctest
    import pkgutil

    finder = doctest.DocTestFinder()
    prefix = "sklearn_resnet."
    names = [info.name for info in pkgutil.walk_packages(sklearn_resnet.__path__, prefix)]
    return sorted(
        name
        for name in names
        if any(test.examples for test in finder.find(importlib.import_module(name)))
    )


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples_run_as_written(module):
    import doctest

    if module == "sklearn_resnet.onnx_export":  # the optional extra: sklearn-resnet[onnx]
        for package in ("onnx", "onnxruntime", "onnxscript"):
            pytest.importorskip(package)

    result = doctest.testmod(importlib.import_module(module), verbose=False, report=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module} failed"
