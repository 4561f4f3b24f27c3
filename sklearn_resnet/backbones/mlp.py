"""Residual multi-layer perceptron for tabular rows.

Each block computes ``x + Dropout(Linear(Dropout(act(Linear(Norm(x))))))``: a pre-norm
residual branch added to the identity, so a deep stack can fall back to the identity
and still train (He et al., 2016; Gorishniy et al., 2021).

With ``linear_path=True`` the network adds a linear model of the scaled inputs to its
output, ``y = H(x) + Lx``: the residual idea applied to the whole model. ``L`` starts
as the ridge regression fitted in closed form (:meth:`ResidualMLP.fit_linear_path`)
and the residual part's output layer starts at zero, so training begins from the
linear model and learns what it misses.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import FLOAT32, check_block, dropout_layer
from .scaling import InputScaler

__all__ = ["ResidualMLP", "ResidualMLPBlock", "mlp_block_name", "mlp_blocks_for_depth"]

_NORMS = {"layer": nn.LayerNorm, "batch": nn.BatchNorm1d}
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
# A bottleneck block narrows its hidden layer by He's factor of four.
_BOTTLENECK_FACTOR = 4


def mlp_blocks_for_depth(depth: int) -> int:
    """Return the number of residual blocks of an MLP with ``depth`` weight layers.

    The stem and the head are one linear layer each and every block holds two,
    so ``depth = 2 * n_blocks + 2``.

    Raises
    ------
    ValueError
        If ``depth`` fits no residual MLP.
    """
    if depth < 4 or depth % 2:
        raise ValueError(f"depth={depth} fits no residual MLP (2n+2, n >= 1).")
    return (depth - 2) // 2


def _branch_width(width: int, block: str) -> int:
    """Width of a residual branch's hidden layer: narrowed by ``"bottleneck"``."""
    return max(1, width // _BOTTLENECK_FACTOR) if block == "bottleneck" else width


def mlp_block_name(network: nn.Module, block: str) -> str:
    """A ``block`` that builds ``network``, a :class:`ResidualMLP`: ``block`` itself
    when it does (``"basic"`` and ``"preact"`` build the same network)."""
    first = network.blocks[0].linear1
    if first.out_features == _branch_width(first.in_features, block):
        return block
    return "basic" if block == "bottleneck" else "bottleneck"


class ResidualMLPBlock(nn.Module):
    """Pre-norm residual block ``x + Dropout(Linear(Dropout(act(Linear(Norm(x))))))``.

    Parameters
    ----------
    width : int
        Size of the residual stream.
    hidden : int
        Size of the branch's hidden layer.
    dropout : float
        Dropout probability inside the residual branch.
    norm : {"layer", "batch"}
        Normalisation applied to the branch input.
    activation : {"relu", "gelu", "silu"}
        Non-linearity between the branch's two linear layers.
    """

    def __init__(self, width: int, hidden: int, dropout: float, norm: str, activation: str):
        super().__init__()
        self.norm = _NORMS[norm](width, **FLOAT32)
        self.linear1 = nn.Linear(width, hidden, **FLOAT32)
        self.act = _ACTIVATIONS[activation]()
        self.drop1 = dropout_layer(dropout)
        self.linear2 = nn.Linear(hidden, width, **FLOAT32)
        self.drop2 = dropout_layer(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.drop1(self.act(self.linear1(self.norm(x))))
        return x + self.drop2(self.linear2(branch))


class ResidualMLP(nn.Module):
    """Residual MLP: linear stem, ``n_blocks`` pre-norm residual blocks, norm-act-linear head.

    Parameters
    ----------
    n_inputs : int
        Number of input features.
    n_outputs : int
        Number of outputs (logits or regression targets).
    n_blocks : int
        Number of residual blocks; the network has ``2 * n_blocks + 2`` weight layers.
    width : int, default=256
        Width of the residual stream.
    block : {"basic", "preact", "bottleneck"}, default="basic"
        ``"basic"`` and ``"preact"`` build the same pre-norm block (an MLP block is
        pre-activation by construction); ``"bottleneck"`` narrows the branch's hidden
        layer to ``width // 4``.
    dropout : float, default=0.0
        Dropout probability inside the residual branches.
    norm : {"layer", "batch"}, default="layer"
        Normalisation layer.
    activation : {"relu", "gelu", "silu"}, default="relu"
        Non-linearity.
    scaling : {"standard", "robust", "quantile"} or None, default=None
        Per-feature input scaling applied first (an :class:`InputScaler`, fitted
        separately with ``net.input_scaler.fit(X)``).
    linear_path : bool, default=False
        Add a linear layer from the scaled inputs (without the robust method's
        clipping) to the outputs; it and the head's output layer start at zero. Call
        :meth:`fit_linear_path` after fitting the scaler to start from ridge regression.

    Examples
    --------
    >>> import torch
    >>> net = ResidualMLP(n_inputs=10, n_outputs=3, n_blocks=2, width=32)
    >>> net(torch.zeros(4, 10)).shape
    torch.Size([4, 3])
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        n_blocks: int,
        width: int = 256,
        block: str = "basic",
        dropout: float = 0.0,
        norm: str = "layer",
        activation: str = "relu",
        scaling: str | None = None,
        linear_path: bool = False,
    ):
        super().__init__()
        check_block(block)
        hidden = _branch_width(width, block)
        self.input_scaler = InputScaler((n_inputs,), scaling)
        self.stem = nn.Linear(n_inputs, width, **FLOAT32)
        self.blocks = nn.Sequential(
            *(ResidualMLPBlock(width, hidden, dropout, norm, activation) for _ in range(n_blocks))
        )
        self.head_norm = _NORMS[norm](width, **FLOAT32)
        self.head_act = _ACTIVATIONS[activation]()
        self.head = nn.Linear(width, n_outputs, **FLOAT32)
        self.linear = nn.Linear(n_inputs, n_outputs, **FLOAT32) if linear_path else None
        if linear_path:
            for layer in (self.head, self.linear):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Residual stream after the last block, before the head."""
        return self.blocks(self.stem(self.input_scaler(x.flatten(1))))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map features to outputs (logits for classification); without the linear path,
        which :meth:`forward` adds."""
        return self.head(self.head_act(self.head_norm(features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.forward_head(self.forward_features(x))
        if self.linear is not None:
            out = out + self._linear_path(x)
        return out

    def _linear_path(self, x: torch.Tensor) -> torch.Tensor:
        # In float32 even under autocast: the ridge start is exact only at full precision.
        z = self.input_scaler(x.flatten(1), clip=False).float()
        with torch.autocast(z.device.type, enabled=False):
            return self.linear(z)

    @torch.no_grad()
    def fit_linear_path(
        self, X: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, alpha: float
    ) -> None:
        """Set the linear path to the ridge regression of the targets on the scaled inputs.

        Solves ``min sum_i w_i ||y_i - L z_i - b||^2 + alpha ||L||^2`` in float64 (the
        intercept is not penalised), where ``z`` are the inputs as the linear path sees
        them. The Gram matrix is ``n_inputs x n_inputs``: the caller bounds the rows
        and the inputs it is worth computing for.

        Parameters
        ----------
        X : torch.Tensor of shape (n, ...)
            Training inputs.
        y : torch.Tensor of shape (n,) or (n, n_outputs)
            Float targets.
        weight : torch.Tensor of shape (n,) or None
            Per-sample weights.
        alpha : float
            Ridge penalty on the scaled inputs, > 0 (scikit-learn's ``Ridge()`` uses 1).
        """
        if self.linear is None:
            raise ValueError("fit_linear_path needs a network built with linear_path=True.")
        device = self.linear.weight.device
        # MPS has no float64: the solution is then computed in host memory.
        acc = device if device.type != "mps" else torch.device("cpu")
        z = self.input_scaler(X.to(device).flatten(1).float(), clip=False).to(acc).double()
        y = y.to(acc).double().reshape(len(z), self.linear.out_features)
        w = torch.ones(len(z), 1, dtype=torch.float64, device=acc)
        if weight is not None:
            w = weight.to(acc).double().reshape(-1, 1)
        total = w.sum()
        if total <= 0:
            return
        # Centred on the weighted means: the intercept absorbs them and is not penalised.
        z_mean, y_mean = (w * z).sum(0) / total, (w * y).sum(0) / total
        z, y = z - z_mean, y - y_mean
        gram = (w * z).T @ z + alpha * torch.eye(z.shape[1], dtype=torch.float64, device=acc)
        coef = torch.linalg.solve(gram, (w * z).T @ y)  # positive definite for alpha > 0
        if not torch.isfinite(coef).all():
            return
        self.linear.weight.copy_(coef.T.to(device))
        self.linear.bias.copy_((y_mean - z_mean @ coef).to(device))
