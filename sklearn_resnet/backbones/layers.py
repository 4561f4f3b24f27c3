"""Layer helpers shared by the residual MLP and CNN."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "BLOCK_TYPES",
    "FLOAT32",
    "GeneratorDropout",
    "check_block",
    "dropout_layer",
    "dropout_rate",
    "set_dropout_generator",
]

#: Values of the estimators' ``block`` parameter, for both backbones.
BLOCK_TYPES = ("basic", "bottleneck", "preact")
#: Factory keyword arguments of every layer and buffer: networks are float32 whatever
#: ``torch.set_default_dtype`` says, and their initial weights do not depend on it.
FLOAT32 = {"dtype": torch.float32}


class GeneratorDropout(nn.Dropout):
    """``nn.Dropout`` that draws its masks from its own generator when one is set.

    Torch's dropout uses the global random generator, which threads fitting models at
    the same time share; with :func:`set_dropout_generator` each training run draws
    from a seeded generator of its own, so concurrent fits stay reproducible and the
    global generator is never touched. Without a generator it is ``nn.Dropout``.

    Examples
    --------
    >>> import torch
    >>> layer = GeneratorDropout(0.5).train()
    >>> layer.generator = torch.Generator().manual_seed(0)
    >>> first = layer(torch.ones(8))
    >>> layer.generator = torch.Generator().manual_seed(0)
    >>> torch.equal(first, layer(torch.ones(8)))
    True
    """

    generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.generator is None:
            return F.dropout(x, self.p, self.training, self.inplace)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep * (1.0 / (1.0 - self.p))


def dropout_layer(p: float) -> nn.Module:
    """:class:`GeneratorDropout` with rate ``p``, or an identity when ``p == 0``.

    Examples
    --------
    >>> dropout_layer(0.0)
    Identity()
    >>> dropout_layer(0.1)
    GeneratorDropout(p=0.1, inplace=False)
    """
    return GeneratorDropout(p) if p > 0 else nn.Identity()


def check_block(block: str) -> None:
    """Refuse a ``block`` that is not one of ``BLOCK_TYPES``, naming them."""
    if block not in BLOCK_TYPES:
        raise ValueError(f"Unknown block {block!r}; expected one of {list(BLOCK_TYPES)}.")


def dropout_rate(module: nn.Module) -> float:
    """The dropout probability inside ``module`` (0 when it holds no dropout layer)."""
    rates = (layer.p for layer in module.modules() if isinstance(layer, nn.Dropout))
    return float(next(rates, 0.0))


def set_dropout_generator(module: nn.Module, generator: torch.Generator | None) -> None:
    """Give every :class:`GeneratorDropout` in ``module`` ``generator`` (``None`` to unset)."""
    for layer in module.modules():
        if isinstance(layer, GeneratorDropout):
            layer.generator = generator
