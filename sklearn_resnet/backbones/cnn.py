"""Residual CNN after He et al. (2015, 2016) for small inputs, in 1-D and 2-D.

A 3x3 stem with ``width`` channels, three stages of ``width``, ``2*width`` and
``4*width`` channels (the second and third down-sample by a stride of 2), global
average pooling and a linear head. Shortcuts are identities within a stage and a
1x1 convolution plus batch norm where the shape changes (He's option B), which gives
ResNet-20 on 3x32x32 inputs with 10 classes its 272,474 parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import FLOAT32, check_block, dropout_layer
from .scaling import InputScaler

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "PreActBlock",
    "ResidualCNN",
    "cnn_block_name",
    "cnn_blocks_for_depth",
    "cnn_depth_step",
    "cnn_output_positions",
]

_N_STAGES = 3
# Weight layers per block for each block type: depth = per_block * 3n + 2.
_LAYERS_PER_BLOCK = {"basic": 2, "preact": 2, "bottleneck": 3}


def cnn_blocks_for_depth(depth: int, block: str) -> int:
    """Return the number of blocks per stage ``n`` for a CNN of ``depth`` weight layers.

    Basic and pre-activation blocks give ``depth = 6n + 2`` (20, 32, 44, 56, 110);
    bottleneck blocks give ``depth = 9n + 2`` (29, 47, 56, 164).

    Raises
    ------
    ValueError
        If ``depth`` fits no CNN of that block type.
    """
    step = cnn_depth_step(block)
    if depth < step + 2 or (depth - 2) % step:
        raise ValueError(f"depth={depth} fits no residual CNN with block={block!r} ({step}n+2).")
    return (depth - 2) // step


def cnn_depth_step(block: str) -> int:
    """Weight layers one more block per stage adds: valid depths are ``step * n + 2``."""
    return _N_STAGES * _LAYERS_PER_BLOCK[block]


def cnn_block_name(network: nn.Module) -> str:
    """The ``block`` that built ``network``, a :class:`ResidualCNN`."""
    first = network.stages[0][0]
    return next(name for name, cls in _BLOCKS.items() if type(first) is cls)


def cnn_output_positions(in_shape: tuple[int, ...]) -> int:
    """Positions per sample in the last stage's feature map for samples of ``in_shape``.

    Each stage after the first halves every spatial size (rounding up).
    """
    sizes = tuple(in_shape[1:])
    for _ in range(_N_STAGES - 1):
        _, sizes = _down_sample(sizes)
    return math.prod(sizes)


#: A convolution's stride: one for every axis, or one per axis.
_Stride = int | tuple[int, ...]


def _down_sample(sizes: tuple[int, ...]) -> tuple[_Stride, tuple[int, ...]]:
    """The stride of a stage that halves every spatial size in ``sizes`` (rounding up),
    and the sizes after it.

    An axis of size 1 gets stride 1 instead of 2: the output is the same (one
    position, the kernel centred on the input's only one), and PyTorch's bfloat16
    convolution on the CPU can return NaN gradients, from run to run, for a stride of 2
    along an axis of size 1. The stride is an int when it is the same along every axis.
    """
    strides = tuple(1 if size == 1 else 2 for size in sizes)
    after = tuple((size - 1) // 2 + 1 for size in sizes)
    return (strides[0] if len(set(strides)) == 1 else strides), after


class SignalConv1d(nn.Conv1d):
    """A 1-D convolution that also takes signals laid out as height-one images.

    On ``(N, C, L)`` input it is :class:`torch.nn.Conv1d`. On ``(N, C, 1, L)`` input it
    runs the same weights as a ``(1, k)`` 2-D convolution, which can use the
    ``channels_last`` kernels (see :class:`ResidualCNN`). Parameters and saved state
    are those of ``nn.Conv1d``.

    Which input it expects is the attribute ``as_image``, set by
    :meth:`ResidualCNN.to`, rather than a test of the input's shape, so that
    ``torch.fx`` can trace the network (with any input scaling), and TorchScript,
    which PyTorch deprecates, can compile the convolutions themselves.
    """

    #: For layers unpickled from before the attribute existed.
    as_image = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.as_image = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.as_image:
            return self._conv_forward(x, self.weight, self.bias)
        return F.conv2d(
            x,
            self.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last),
            self.bias,
            (1, self.stride[0]),
            (0, self.padding[0]),
            (1, self.dilation[0]),
            self.groups,
        )


class SignalBatchNorm1d(nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` that also takes height-one images ``(N, C, 1, L)``.

    It does not check its input's dimensions: in a :class:`ResidualCNN` it only ever
    follows a :class:`SignalConv1d`, which does, and a test of the shape would stop
    ``torch.fx`` from tracing the network.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        return None


class _Ops:
    """Dimension-specific layer constructors (1-D for signals, 2-D for images)."""

    def __init__(self, n_dims: int):
        if n_dims not in (1, 2):
            raise ValueError(f"Only 1-D and 2-D convolutions are supported, got {n_dims}-D input.")
        self.conv_cls = SignalConv1d if n_dims == 1 else nn.Conv2d
        self.norm_cls = SignalBatchNorm1d if n_dims == 1 else nn.BatchNorm2d
        self.pool_cls = nn.AdaptiveAvgPool1d if n_dims == 1 else nn.AdaptiveAvgPool2d

    def conv3x3(self, in_channels: int, out_channels: int, stride: _Stride = 1) -> nn.Module:
        return self.conv_cls(
            in_channels, out_channels, 3, stride=stride, padding=1, bias=False, **FLOAT32
        )

    def conv1x1(self, in_channels: int, out_channels: int, stride: _Stride = 1) -> nn.Module:
        return self.conv_cls(in_channels, out_channels, 1, stride=stride, bias=False, **FLOAT32)

    def norm(self, channels: int) -> nn.Module:
        return self.norm_cls(channels, **FLOAT32)

    def shortcut(self, in_channels: int, out_channels: int, stride: _Stride) -> nn.Module:
        """Identity where the shape stays, else 1x1 convolution + batch norm (option B)."""
        if stride == 1 and in_channels == out_channels:
            return nn.Identity()
        return nn.Sequential(
            self.conv1x1(in_channels, out_channels, stride), self.norm(out_channels)
        )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; ReLU after the addition (He et al., 2015)."""

    expansion = 1

    def __init__(self, ops: _Ops, in_channels: int, planes: int, stride: _Stride, dropout: float):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = ops.conv3x3(in_channels, planes, stride)
        self.bn1 = ops.norm(planes)
        self.conv2 = ops.conv3x3(planes, out_channels)
        self.bn2 = ops.norm(out_channels)
        self.drop = dropout_layer(dropout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = ops.shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with batch norm (He et al., 2015)."""

    expansion = 4

    def __init__(self, ops: _Ops, in_channels: int, planes: int, stride: _Stride, dropout: float):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = ops.conv1x1(in_channels, planes)
        self.bn1 = ops.norm(planes)
        self.conv2 = ops.conv3x3(planes, planes, stride)
        self.bn2 = ops.norm(planes)
        self.conv3 = ops.conv1x1(planes, out_channels)
        self.bn3 = ops.norm(out_channels)
        self.drop = dropout_layer(dropout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = ops.shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.drop(self.relu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)


class PreActBlock(nn.Module):
    """Pre-activation block BN-ReLU-conv-BN-ReLU-conv plus shortcut (He et al., 2016).

    A projection shortcut, where needed, takes the pre-activated input.
    """

    expansion = 1

    def __init__(self, ops: _Ops, in_channels: int, planes: int, stride: _Stride, dropout: float):
        super().__init__()
        out_channels = planes * self.expansion
        self.bn1 = ops.norm(in_channels)
        self.conv1 = ops.conv3x3(in_channels, planes, stride)
        self.bn2 = ops.norm(planes)
        self.conv2 = ops.conv3x3(planes, out_channels)
        self.drop = dropout_layer(dropout)
        self.relu = nn.ReLU()
        self.shortcut = ops.shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        identity = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.drop(self.relu(self.bn2(out))))
        return out + identity

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck, "preact": PreActBlock}


class ResidualCNN(nn.Module):
    """He et al.'s CIFAR ResNet (6n+2 / 9n+2) for ``(C, L)`` signals or ``(C, H, W)`` images.

    Parameters
    ----------
    in_shape : sequence of int
        Shape of one sample without the batch dimension: ``(C, L)`` builds 1-D
        convolutions, ``(C, H, W)`` 2-D ones.
    n_outputs : int
        Number of outputs (logits or regression targets).
    n_blocks : int
        Blocks per stage ``n``; depth is ``6n + 2`` (basic, preact) or ``9n + 2``
        (bottleneck).
    width : int, default=16
        Channels of the stem and first stage (He: 16); the stages have
        ``width``, ``2*width`` and ``4*width`` planes.
    block : {"basic", "bottleneck", "preact"}, default="basic"
        Residual block type.
    dropout : float, default=0.0
        Dropout inside the residual branches.
    zero_init_last : bool, default=True
        Zero the last norm (or convolution) of each residual branch so that every
        block starts as its shortcut: the identity, or the projection where the shape
        changes (Goyal et al., 2017).
    scaling : {"standard", "robust", "quantile"} or None, default=None
        Per-channel input scaling applied first (an :class:`InputScaler`, fitted
        separately with ``net.input_scaler.fit(X)``).

    Attributes
    ----------
    signal_channels_last : bool
        1-D networks only: whether the convolutions run on the signals laid out as
        height-one images ``(N, C, 1, L)`` in ``channels_last`` order. Set by
        ``net.to(memory_format=torch.channels_last)`` (and cleared by
        ``torch.contiguous_format``), as a 2-D network is converted with that call.
        The weights are the same and the results agree to rounding; on the CPU
        oneDNN's ``channels_last`` kernels train the default 1-D ResNet-20 about a
        quarter faster. :meth:`forward_features` returns ``(N, C, L)`` either way,
        while forward hooks on the layers inside see the 4-D tensors.

    Examples
    --------
    >>> import torch
    >>> net = ResidualCNN((3, 32, 32), n_outputs=10, n_blocks=3)  # ResNet-20
    >>> sum(p.numel() for p in net.parameters())
    272474
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        n_outputs: int,
        n_blocks: int,
        width: int = 16,
        block: str = "basic",
        dropout: float = 0.0,
        zero_init_last: bool = True,
        scaling: str | None = None,
    ):
        super().__init__()
        in_shape = tuple(int(s) for s in in_shape)
        check_block(block)
        self.input_scaler = InputScaler(in_shape, scaling)
        self.n_dims = len(in_shape) - 1
        self.signal_channels_last = False
        ops = _Ops(self.n_dims)
        block_cls = _BLOCKS[block]
        self.preact = block == "preact"
        self.stem = ops.conv3x3(in_shape[0], width)
        # The pre-activation design normalises inside each block, so its stem is a bare conv.
        self.stem_norm = nn.Identity() if self.preact else ops.norm(width)
        self.stem_act = nn.Identity() if self.preact else nn.ReLU(inplace=True)
        stages, in_channels, sizes = [], width, in_shape[1:]
        for index in range(_N_STAGES):
            planes = width * 2**index
            stride, sizes = (1, sizes) if index == 0 else _down_sample(sizes)
            layers = []
            for block_index in range(n_blocks):
                layers.append(
                    block_cls(ops, in_channels, planes, stride if block_index == 0 else 1, dropout)
                )
                in_channels = planes * block_cls.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.final_norm = ops.norm(in_channels) if self.preact else nn.Identity()
        self.final_act = nn.ReLU(inplace=True) if self.preact else nn.Identity()
        self.pool = ops.pool_cls(1)
        self.head = nn.Linear(in_channels, n_outputs, **FLOAT32)
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_last:
            for module in self.modules():
                if hasattr(module, "zero_init_last"):
                    module.zero_init_last()

    #: See the class docstring. Also a class attribute, for networks unpickled from
    #: before it existed.
    signal_channels_last = False

    def to(self, *args, **kwargs):
        """:meth:`torch.nn.Module.to`; a 1-D network also records ``memory_format``."""
        memory_format = kwargs.get("memory_format")
        if memory_format is not None and getattr(self, "n_dims", None) == 1:
            self.signal_channels_last = memory_format is torch.channels_last
            self._lay_out_signal_convolutions()
        return super().to(*args, **kwargs)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._lay_out_signal_convolutions()

    def _lay_out_signal_convolutions(self) -> None:
        """Tell each :class:`SignalConv1d` which layout its input comes in."""
        for module in self.modules():
            if isinstance(module, SignalConv1d):
                module.as_image = self.signal_channels_last

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map after the last stage (and the final pre-activation)."""
        x = self.input_scaler(x)
        as_image = self.signal_channels_last
        if as_image:
            x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        x = self.stem_act(self.stem_norm(self.stem(x)))
        x = self.final_act(self.final_norm(self.stages(x)))
        return x.squeeze(2) if as_image else x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Global average pooling and the linear head."""
        return self.head(self.pool(features).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
