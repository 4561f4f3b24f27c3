"""Run every script in ``examples/`` end to end, each in its own Python process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
EXPECTED = {
    "tabular_quickstart.py",
    "grid_search.py",
    "cnn_digits.py",
    "persistence.py",
    "optuna_search.py",
    "plot_history.py",
}
TIMEOUT_S = 300


def test_examples_folder_has_the_tutorials():
    names = {path.name for path in EXAMPLES}
    missing = EXPECTED - names
    assert not missing, f"examples/ lacks {sorted(missing)}"


@pytest.mark.parametrize("script", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(script, tmp_path):
    # Run from an empty temporary directory so that nothing lands in the repository.
    # One intra-op thread per example keeps parallel test workers from
    # oversubscribing the CPU, which slows PyTorch down many times over.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        # The partial output of a timed-out run may be bytes, whatever text= says.
        stderr = exc.stderr or ""
        if isinstance(stderr, bytes):
            stderr = stderr.decode(errors="replace")
        pytest.fail(f"{script.name} did not finish within {TIMEOUT_S} s.\n{stderr}")
    assert result.returncode == 0, (
        f"{script.name} exited with code {result.returncode}.\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    assert result.stdout.strip(), f"{script.name} printed nothing"
    assert list(tmp_path.iterdir()) == [], f"{script.name} left files in its working directory"
