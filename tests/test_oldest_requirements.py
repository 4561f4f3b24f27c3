"""The script behind ``make test-oldest``: every range of pyproject.toml pinned to its
oldest release, markers kept, and a requirement it cannot pin refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("packaging")

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "oldest_requirements.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("oldest_requirements", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "declared, pinned",
    [
        ("torch>=2.6", "torch==2.6"),
        ("torch >= 2.6", "torch==2.6"),
        ("numpy>=1.24,<3", "numpy==1.24"),
        ("mkdocstrings[python]>=0.25", "mkdocstrings[python]==0.25"),
        ("foo~=1.4", "foo==1.4"),
        ('tomli>=2; python_version < "3.11"', 'tomli==2; python_version < "3.11"'),
    ],
)
def test_a_range_becomes_its_oldest_release(script, declared, pinned):
    assert str(script.oldest(declared)) == pinned


@pytest.mark.parametrize("declared", ["typing-extensions", "foo<2", "foo>=1,>=2"])
def test_a_requirement_without_one_lower_bound_is_refused(script, declared):
    with pytest.raises(SystemExit, match="cannot tell the oldest release"):
        script.oldest(declared)


def test_the_projects_requirements_are_pinned_and_the_test_tools_left_as_declared(
    script, monkeypatch, capsys
):
    project = script.tomllib.loads(script.PYPROJECT.read_text(encoding="utf-8"))["project"]
    monkeypatch.setattr("sys.argv", ["oldest", "--pin", "plot", "--as-declared", "dev"])
    script.main()
    lines = capsys.readouterr().out.splitlines()
    for declared in project["dependencies"] + project["optional-dependencies"]["plot"]:
        assert str(script.oldest(declared)) in lines
    assert "pytest>=7.4" in [line.replace(" ", "") for line in lines]
    # pandas, a dependency that the dev extra names too, comes once: pinned
    pandas = [str(script.oldest(d)) for d in project["dependencies"] if d.startswith("pandas")]
    assert [line for line in lines if line.startswith("pandas")] == pandas
    assert not any(line.startswith("pyarrow") for line in lines)  # an extra not asked for
