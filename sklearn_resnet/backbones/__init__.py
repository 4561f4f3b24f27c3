"""Pure torch residual backbones: a residual MLP and a residual CNN.

Nothing here imports scikit-learn or skorch; the estimators call :func:`build_backbone`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .cnn import (
    ResidualCNN,
    cnn_block_name,
    cnn_blocks_for_depth,
    cnn_depth_step,
    cnn_output_positions,
)
from .ensemble import AVERAGES, NetworkEnsemble, ensemble_members
from .layers import BLOCK_TYPES, check_block
from .mlp import ResidualMLP, mlp_block_name, mlp_blocks_for_depth
from .scaling import SCALING_METHODS, InputScaler

__all__ = [
    "AVERAGES",
    "BACKBONE_DEFAULTS",
    "BLOCK_TYPES",
    "SCALING_METHODS",
    "InputScaler",
    "NetworkEnsemble",
    "ResidualCNN",
    "ResidualMLP",
    "blocks_for_depth",
    "build_backbone",
    "built_block",
    "cnn_output_positions",
    "depth_formula",
    "depth_step",
    "ensemble_members",
    "last_block_prefix",
    "nearest_depths",
]

#: Architecture defaults for ``depth=None`` and ``width=None``.
BACKBONE_DEFAULTS = {
    "mlp": {"depth": 8, "width": 256},
    "cnn": {"depth": 20, "width": 16},
}


def depth_step(kind: str, block: str) -> int:
    """Weight layers that one more block (per stage, for the CNN) adds to the depth.

    Valid depths are ``depth_step * n + 2`` for ``n >= 1`` blocks.
    """
    return 2 if kind == "mlp" else cnn_depth_step(block)


def built_block(kind: str, network: nn.Module, block: str) -> str:
    """A ``block`` that builds ``network`` of backbone ``kind``: ``block`` itself when
    it does (``set_params`` may have changed the parameter since the network was built).
    An ensemble's members share theirs."""
    network = ensemble_members(network)[0]
    return cnn_block_name(network) if kind == "cnn" else mlp_block_name(network, block)


def depth_formula(kind: str, block: str) -> str:
    """Human-readable depth formula, e.g. ``"6n+2"``."""
    return f"{depth_step(kind, block)}n+2"


def blocks_for_depth(kind: str, depth: int, block: str) -> int:
    """Blocks (MLP) or blocks per stage (CNN) for ``depth``; ValueError if none fits."""
    if kind == "mlp":
        return mlp_blocks_for_depth(depth)
    return cnn_blocks_for_depth(depth, block)


def last_block_prefix(kind: str, n_blocks: int, n_members: int = 1) -> str:
    """Prefix of the ``state_dict`` names of the last residual block (of the last stage),
    of the last member of an ensemble of ``n_members``.

    A network with ``n_blocks`` blocks (per stage, for the CNN) holds tensors under this
    prefix and none under the next block's.

    Examples
    --------
    >>> last_block_prefix("mlp", 3), last_block_prefix("cnn", 3)
    ('blocks.2.', 'stages.2.2.')
    >>> last_block_prefix("mlp", 1, n_members=5)
    'members.4.blocks.0.'
    """
    block = f"blocks.{n_blocks - 1}." if kind == "mlp" else f"stages.2.{n_blocks - 1}."
    return block if n_members == 1 else f"members.{n_members - 1}.{block}"


def nearest_depths(kind: str, depth: int, block: str, count: int = 5) -> list[int]:
    """The ``count`` valid depths closest to ``depth``, in increasing order.

    Valid depths are ``step * n + 2`` for ``n >= 1`` (``step`` 2 for the MLP), so the
    neighbours are worked out around ``depth`` however large it is.
    """
    step = depth_step(kind, block)
    n = max(1, round((depth - 2) / step))
    candidates = [step * k + 2 for k in range(max(1, n - count), n + count + 1)]
    return sorted(sorted(candidates, key=lambda d: (abs(d - depth), d))[:count])


def build_backbone(
    kind: str,
    in_shape: Sequence[int],
    n_outputs: int,
    *,
    depth: int | None = None,
    width: int | None = None,
    block: str = "basic",
    dropout: float = 0.0,
    n_members: int = 1,
    average: str = "mean",
    **hyperparams,
) -> nn.Module:
    """Build a residual backbone.

    Parameters
    ----------
    kind : {"mlp", "cnn"}
        Backbone family.
    in_shape : sequence of int
        Shape of one sample without the batch dimension. The MLP flattens it;
        the CNN needs ``(C, L)`` or ``(C, H, W)``.
    n_outputs : int
        Number of outputs.
    depth : int, optional
        Weight layers (He's convention); ``None`` uses :data:`BACKBONE_DEFAULTS`.
    width : int, optional
        MLP width or CNN base channels; ``None`` uses :data:`BACKBONE_DEFAULTS`.
    block : {"basic", "bottleneck", "preact"}, default="basic"
        Residual block type.
    dropout : float, default=0.0
        Dropout inside the residual branches.
    n_members : int, default=1
        Above 1, a :class:`NetworkEnsemble` of that many independently initialised
        networks, combined by ``average``.
    average : {"probability", "mean"}, default="mean"
        How an ensemble combines its members (see :class:`NetworkEnsemble`).
    **hyperparams
        Passed on to :class:`ResidualMLP` or :class:`ResidualCNN`.

    Raises
    ------
    ValueError
        For an unknown ``kind`` or ``block``, or a ``depth`` that fits no formula;
        the message lists the valid depths nearest to it.

    Examples
    --------
    >>> build_backbone("cnn", (1, 8, 8), 10, depth=20).__class__.__name__
    'ResidualCNN'
    """
    if kind not in BACKBONE_DEFAULTS:
        raise ValueError(f"Unknown backbone {kind!r}; expected one of {sorted(BACKBONE_DEFAULTS)}.")
    check_block(block)  # before the depth formula, which looks the block up
    defaults = BACKBONE_DEFAULTS[kind]
    depth = defaults["depth"] if depth is None else depth
    width = defaults["width"] if width is None else width
    try:
        n_blocks = blocks_for_depth(kind, depth, block)
    except ValueError as exc:
        near = ", ".join(map(str, nearest_depths(kind, depth, block)))
        raise ValueError(f"{exc} Valid depths near it: {near}.") from None
    if n_members < 1:
        raise ValueError(f"n_members must be at least 1; got {n_members}.")
    if kind == "mlp":
        n_inputs = 1
        for size in in_shape:
            n_inputs *= int(size)
        networks = [
            ResidualMLP(n_inputs, n_outputs, n_blocks, width, block, dropout, **hyperparams)
            for _ in range(n_members)
        ]
    else:
        networks = [
            ResidualCNN(in_shape, n_outputs, n_blocks, width, block, dropout, **hyperparams)
            for _ in range(n_members)
        ]
    return networks[0] if n_members == 1 else NetworkEnsemble(networks, average)
