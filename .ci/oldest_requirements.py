"""Print pip requirements that pin every dependency range of pyproject.toml to its oldest
release (``name>=X`` becomes ``name==X``), for ``make test-oldest``.

The package's own dependencies are pinned, and so are the extras named on the command line
after ``--pin``; the extras named after ``--as-declared`` are printed as declared (test
tools, whose oldest releases say nothing about the package)::

    python .ci/oldest_requirements.py --pin plot --as-declared dev
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
#: A quoted requirement inside a TOML array, e.g. ``"torch>=2.6",``.
REQUIREMENT = re.compile(r'^\s*"([A-Za-z0-9_.\-\[\]]+[<>=!~][^"]*)",?\s*(#.*)?$')


def arrays(text: str) -> dict[str, list[str]]:
    """The string arrays of ``[project] dependencies`` and ``[project.optional-dependencies]``,
    by name (``"dependencies"`` for the first), read line by line: the file writes each
    requirement on a line of its own or all on the array's line."""
    found: dict[str, list[str]] = {}
    section, current = None, None
    for line in text.splitlines():
        header = re.match(r"^\[(.+)\]\s*$", line)
        if header:
            section, current = header.group(1), None
            continue
        start = re.match(r"^(\w[\w-]*)\s*=\s*\[(.*)$", line)
        wanted = (section == "project" and start and start.group(1) == "dependencies") or (
            section == "project.optional-dependencies" and start
        )
        if start and wanted:
            current = start.group(1)
            found[current] = re.findall(r'"([^"]+)"', start.group(2))
            if "]" in start.group(2):
                current = None
            continue
        if current is not None:
            if line.strip().startswith("]"):
                current = None
            elif match := REQUIREMENT.match(line):
                found[current].append(match.group(1))
    return found


def oldest(requirement: str) -> str:
    """``name==X`` for a ``name>=X`` requirement (other bounds dropped); else unchanged."""
    match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([^,;\s]+)", requirement)
    return f"{match.group(1)}=={match.group(2)}" if match else requirement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pin", nargs="*", default=[], help="extras pinned to their oldest")
    parser.add_argument("--as-declared", nargs="*", default=[], help="extras left as declared")
    args = parser.parse_args()
    found = arrays(PYPROJECT.read_text(encoding="utf-8"))
    unknown = sorted(set(args.pin + args.as_declared) - set(found) - {"dependencies"})
    if unknown:
        parser.error(f"no such extras in pyproject.toml: {unknown}")
    pinned = {oldest(r) for name in ["dependencies", *args.pin] for r in found[name]}
    names = {re.split(r"[<>=!~\[]", r)[0].lower() for r in pinned}
    declared = {
        r
        for name in args.as_declared
        for r in found[name]
        if re.split(r"[<>=!~\[]", r)[0].lower() not in names
    }
    print("\n".join(sorted(pinned) + sorted(declared)))


if __name__ == "__main__":
    main()
