"""Print pip requirements that pin every dependency range of pyproject.toml to its oldest
release (``name>=X``, ``name~=X`` or ``name==X`` becomes ``name==X``), for
``make test-oldest``.

The package's own dependencies are pinned, and so are the extras named after ``--pin``;
those named after ``--as-declared`` are printed as declared (test tools, whose oldest
releases say nothing about the package). Environment markers are kept. A requirement to
be pinned without a lower bound stops the script with an error::

    python .ci/oldest_requirements.py --pin plot --as-declared dev

Needs ``packaging``, and ``tomli`` on Python 3.10.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
LOWER_BOUNDS = (">=", "~=", "==")


def oldest(text: str) -> Requirement:
    """``text`` with its version range replaced by its lower bound, ``name==X``."""
    requirement = Requirement(text)
    bounds = [spec.version for spec in requirement.specifier if spec.operator in LOWER_BOUNDS]
    if len(bounds) != 1:
        sys.exit(f"cannot tell the oldest release that {text!r} allows")
    requirement.specifier = type(requirement.specifier)(f"=={bounds[0]}")
    return requirement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pin", nargs="*", default=[], help="extras pinned to their oldest")
    parser.add_argument("--as-declared", nargs="*", default=[], help="extras left as declared")
    args = parser.parse_args()
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    unknown = sorted(set(args.pin + args.as_declared) - set(extras))
    if unknown:
        parser.error(f"no such extras in pyproject.toml: {unknown}")
    pinned = [oldest(text) for text in project["dependencies"]]
    pinned += [oldest(text) for name in args.pin for text in extras[name]]
    names = {canonicalize_name(requirement.name) for requirement in pinned}
    declared = [
        Requirement(text)
        for name in args.as_declared
        for text in extras[name]
        if canonicalize_name(Requirement(text).name) not in names
    ]
    lines = dict.fromkeys(str(requirement) for requirement in pinned + declared)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
