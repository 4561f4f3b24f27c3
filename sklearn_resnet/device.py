"""Device and precision resolution.

``device="auto"`` picks CUDA, then Apple's MPS, then the CPU. An unavailable device
raises a ``ValueError`` that lists the devices this machine has.
"""

from __future__ import annotations

import torch

__all__ = [
    "autocast_dtype",
    "available_devices",
    "compiler_failed",
    "first_line",
    "is_available",
    "is_out_of_memory",
    "memory_format",
    "out_of_memory_error",
    "release_memory",
    "resolve_device",
    "resolve_precision",
]

_PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Devices usable on this machine, e.g. ``['cpu', 'cuda', 'cuda:0']``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
        devices.extend(f"cuda:{index}" for index in range(torch.cuda.device_count()))
    if _mps_available():
        devices.append("mps")
    return devices


def is_available(device: str) -> bool:
    """Whether ``device`` (a string such as ``"cuda:0"``) can be used here."""
    return device in available_devices()


def resolve_device(device: str, *, owner: str = "estimator") -> str:
    """Turn the ``device`` parameter into a concrete device string.

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    owner : str
        Name used in the error message.

    Returns
    -------
    str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Raises
    ------
    ValueError
        If the device is unknown or not available, naming the available ones.
    """
    available = available_devices()
    if device == "auto":
        if "cuda" in available:
            return "cuda"
        return "mps" if "mps" in available else "cpu"
    if device not in available:
        raise ValueError(
            f"The 'device' parameter of {owner} is {device!r}, which is not available "
            f"on this machine; available: {available}."
        )
    return device


#: First CUDA compute capability with bfloat16 arithmetic in hardware (Ampere); older
#: GPUs emulate it, slower than float32.
NATIVE_BF16_CAPABILITY = (8, 0)


def resolve_precision(precision: str, device: str) -> str:
    """Turn the ``precision`` parameter into ``"32"``, ``"bf16"`` or ``"16"``.

    ``"auto"`` is bf16 on CUDA devices with bfloat16 in hardware (compute capability
    8.0 and newer) and fp32 everywhere else.
    """
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        capability = torch.cuda.get_device_capability(device)
        return "bf16" if capability >= NATIVE_BF16_CAPABILITY else "32"
    return "32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype for a resolved precision (``None`` for fp32)."""
    return _PRECISIONS[precision]


#: On the CPU, images use channels_last only when the CNN's base width is a multiple of this.
CPU_CHANNELS_LAST_MULTIPLE = 8


def memory_format(
    device: str, in_shape: tuple[int, ...], width: int | None = None
) -> torch.memory_format:
    """The memory layout for a network on ``device`` taking samples of ``in_shape``.

    ``channels_last`` (NHWC) for images (``(C, H, W)`` samples) on CUDA, where cuDNN's
    convolutions run fastest in that layout (most of all under bf16/fp16 autocast).
    On the CPU, ``channels_last`` for images and for signals (``(C, L)`` samples, which
    the network then lays out as height-one images, see
    :class:`~sklearn_resnet.backbones.ResidualCNN`) when the CNN's base ``width`` is a
    multiple of 8, where oneDNN's NHWC kernels train faster (see the fit times in the
    benchmarks). With fewer channels torch's CPU NHWC kernels give
    image results that differ from the default layout (about 1e-3 at width 4), so
    narrow networks keep the default layout; signals follow the same rule, although
    their two layouts agree to rounding at any width. Rows, signals on CUDA and other
    devices keep the default layout.
    """
    if len(in_shape) not in (2, 3):
        return torch.contiguous_format
    kind = device_type(device)
    if kind == "cuda" and len(in_shape) == 3:
        return torch.channels_last
    if kind == "cpu" and width is not None and width % CPU_CHANNELS_LAST_MULTIPLE == 0:
        return torch.channels_last
    return torch.contiguous_format


def device_type(device: str) -> str:
    """``"cuda:1"`` -> ``"cuda"``."""
    return torch.device(device).type


#: How torch's allocators word a failed allocation: CUDA and MPS, then the CPU's
#: ("DefaultCPUAllocator: can't allocate memory: you tried to allocate ... bytes").
_OUT_OF_MEMORY_SIGNS = ("out of memory", "can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that a device ran out of memory (CUDA, MPS or the CPU)."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(sign in message for sign in _OUT_OF_MEMORY_SIGNS)


def release_memory(device: str) -> None:
    """Give the memory cached by the allocator of ``device`` back after a failure."""
    if device_type(device) == "cuda":
        torch.cuda.empty_cache()
    elif device_type(device) == "mps":
        torch.mps.empty_cache()


def out_of_memory_error(exc: BaseException, device: str, advice: str) -> torch.OutOfMemoryError:
    """A ``torch.OutOfMemoryError`` that names ``device`` and what to change."""
    release_memory(device)
    return torch.OutOfMemoryError(
        f"Out of memory on device {device!r}: {advice} ({first_line(exc)})"
    )


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def compiler_failed(exc: BaseException) -> BaseException | None:
    """The cause, when ``exc`` is an error of ``torch.compile`` (its tracer or backend)."""
    from torch._dynamo.exc import TorchDynamoException

    if not isinstance(exc, TorchDynamoException):
        return None
    return getattr(exc, "inner_exception", None) or exc
