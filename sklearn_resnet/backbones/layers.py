"""Layer helpers shared by the residual MLP and CNN."""

from __future__ import annotations

from torch import nn

__all__ = ["dropout_layer"]


def dropout_layer(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or an identity when ``p == 0`` (one less call per forward pass).

    Examples
    --------
    >>> dropout_layer(0.0)
    Identity()
    >>> dropout_layer(0.1)
    Dropout(p=0.1, inplace=False)
    """
    return nn.Dropout(p) if p > 0 else nn.Identity()
