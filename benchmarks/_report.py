"""Report pieces shared by the benchmark scripts: library versions and the footer that
says where a table was measured and how to measure it again."""

from __future__ import annotations

import platform
import shlex
import sys

import numpy as np
import sklearn
import skorch
import torch


def versions() -> str:
    """One markdown bullet with the versions of everything the timings depend on."""
    return (
        f"- torch {torch.__version__}, skorch {skorch.__version__}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"Python {platform.python_version()}"
    )


def publish(lines: list[str], note: str, output: str | None) -> None:
    """Print a markdown table (``lines``) and the ``note`` under it, and write both to
    ``output`` when it is given."""
    text = "\n".join(lines) + "\n\n" + note
    print(text)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


def footer(script: str, machine: list[str]) -> list[str]:
    """The ``Machine:`` and ``Command:`` sections closing a report of ``script``."""
    command = shlex.join(["python", f"benchmarks/{script}", *sys.argv[1:]])
    return ["Machine:", *machine, "", "Command:", "", f"    {command}", ""]
