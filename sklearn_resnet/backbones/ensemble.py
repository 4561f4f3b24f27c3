"""Several independently initialised networks trained together, predicting their mean.

A deep ensemble (Lakshminarayanan et al., 2017) averages the predictions of networks
that differ only in their random start. Trained together on the same batches, as
TabM does (Gorishniy et al., 2024), they are one module: in training mode it returns
every member's output, so that each member learns from its own loss; in evaluation
mode it returns the ensemble's prediction, shaped as one member's, so that prediction,
validation and export see a single network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["AVERAGES", "NetworkEnsemble", "ensemble_members"]

#: How an ensemble combines its members' outputs in evaluation mode: the mean of the
#: class probabilities (returned as their logarithm, which are logits of them) or
#: the mean of the outputs.
AVERAGES = ("probability", "mean")


class NetworkEnsemble(nn.Module):
    """Networks of one architecture, trained together; the mean of their predictions.

    Parameters
    ----------
    members : sequence of nn.Module
        The networks, each mapping ``(N, ...)`` inputs to ``(N, n_outputs)`` outputs,
        with an ``input_scaler``.
    average : {"probability", "mean"}
        In evaluation mode, ``"probability"`` returns the logarithm of the members'
        mean softmax probabilities (classification: the softmax of it is that mean);
        ``"mean"`` returns the mean output (regression).

    Examples
    --------
    >>> import torch
    >>> from sklearn_resnet.backbones import ResidualMLP
    >>> nets = [ResidualMLP(n_inputs=4, n_outputs=3, n_blocks=1, width=8) for _ in range(5)]
    >>> ensemble = NetworkEnsemble(nets, average="probability")
    >>> ensemble.train()(torch.zeros(2, 4)).shape  # every member's logits
    torch.Size([5, 2, 3])
    >>> ensemble.eval()(torch.zeros(2, 4)).shape  # log of the mean probabilities
    torch.Size([2, 3])
    """

    def __init__(self, members: Sequence[nn.Module], average: str):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"An ensemble needs at least 2 members; got {len(members)}.")
        if average not in AVERAGES:
            raise ValueError(f"Unknown average {average!r}; expected one of {list(AVERAGES)}.")
        self.members = nn.ModuleList(members)
        self.average = average

    @property
    def n_members(self) -> int:
        """Number of networks."""
        return len(self.members)

    @property
    def input_scaler(self) -> nn.Module:
        """The first member's input scaling (every member's is fitted to the same rows)."""
        return self.members[0].input_scaler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = torch.stack([member(x) for member in self.members])
        if self.training:
            return outputs
        if self.average == "mean":
            return outputs.mean(0)
        # log(mean_k softmax_k) without underflow, in float32 even under autocast.
        log_probs = torch.log_softmax(outputs.float(), dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(self.n_members)


def ensemble_members(network: nn.Module) -> list[nn.Module]:
    """The networks of ``network``: an ensemble's members, or the network itself.

    Examples
    --------
    >>> from sklearn_resnet.backbones import ResidualMLP
    >>> net = ResidualMLP(n_inputs=4, n_outputs=2, n_blocks=1, width=8)
    >>> ensemble_members(net) == [net]
    True
    """
    if isinstance(network, NetworkEnsemble):
        return list(network.members)
    return [network]
