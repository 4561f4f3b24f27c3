"""Checks of the files the package writes, made before the work that produces them."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["unwritable_file"]


def unwritable_file(path) -> str | None:
    """Why ``path`` cannot be written as a file, or ``None`` when it can.

    Parameters
    ----------
    path : str or path-like
        The file to write; it may exist (it is then replaced).

    Returns
    -------
    reason : str or None
        ``"it is a directory; give a file name"``, ``"its folder does not exist"`` or
        ``"its folder is not writable"``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     print(unwritable_file(folder), unwritable_file(f"{folder}/model.onnx"), sep=" | ")
    it is a directory; give a file name | None
    """
    target = Path(path)
    if target.is_dir():
        return "it is a directory; give a file name"
    folder = target.absolute().parent
    if not folder.is_dir():
        return "its folder does not exist"
    if not os.access(folder, os.W_OK):
        return "its folder is not writable"
    return None
