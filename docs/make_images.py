"""Regenerate the figures of the documentation.

Run ``python docs/make_images.py`` from anywhere (matplotlib needed: the ``plot``
extra). Each figure comes from an example script, so the pictures show exactly what
the examples draw:

* ``docs/images/plot_history.png`` from ``examples/plot_history.py``.
"""

import runpy
from pathlib import Path

DOCS = Path(__file__).resolve().parent
EXAMPLES = DOCS.parent / "examples"


def main():
    images = DOCS / "images"
    images.mkdir(exist_ok=True)
    example = runpy.run_path(str(EXAMPLES / "plot_history.py"))
    example["main"](["plot_history.py", str(images / "plot_history.png")])


if __name__ == "__main__":
    main()
