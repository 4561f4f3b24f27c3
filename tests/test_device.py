import pytest
import torch

from sklearn_resnet.device import (
    autocast_dtype,
    available_devices,
    first_line,
    is_out_of_memory,
    memory_format,
    release_memory,
    resolve_device,
    resolve_precision,
)


def test_cpu_is_always_available():
    assert available_devices()[0] == "cpu"


def test_auto_prefers_cuda_then_mps_then_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if expected == "cpu" and "mps" in available_devices():
        expected = "mps"
    assert resolve_device("auto") == expected


@pytest.mark.parametrize("device", ["cuda:7", "tpu", "cuda:x"])
def test_unavailable_device_names_the_available_ones(device):
    with pytest.raises(ValueError, match=r"'device' parameter of Owner .* available: \['cpu'"):
        resolve_device(device, owner="Owner")


def test_precision_auto_is_fp32_on_cpu():
    assert resolve_precision("auto", "cpu") == "32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert autocast_dtype("32") is None
    assert autocast_dtype("bf16") is torch.bfloat16
    assert autocast_dtype("16") is torch.float16


@pytest.mark.parametrize(
    "capability, expected", [((7, 5), "32"), ((8, 0), "bf16"), ((9, 0), "bf16")]
)
def test_precision_auto_on_cuda_is_bf16_only_where_the_gpu_has_it_in_hardware(
    capability, expected, monkeypatch
):
    """Turing (7.5, e.g. a T4) emulates bf16, which ``torch.cuda.is_bf16_supported`` counts;
    the capability is asked of the GPU the estimator uses, not the current one."""
    asked = []
    monkeypatch.setattr(
        torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability
    )
    assert resolve_precision("auto", "cuda:1") == expected
    assert asked == ["cuda:1"]


def test_failed_allocations_of_every_allocator_count_as_out_of_memory():
    cpu = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 4398046511104 bytes. Error code 12"
    )
    cuda = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    for exc in (cpu, cuda, torch.OutOfMemoryError("x"), MemoryError()):
        assert is_out_of_memory(exc)
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("can't allocate memory"))  # not a torch error


def _machine(monkeypatch, gpus: int, mps: bool) -> None:
    """Pretend this machine has ``gpus`` CUDA devices and MPS or not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("gpus", "mps", "chosen"),
    [(2, True, "cuda"), (1, False, "cuda"), (0, True, "mps"), (0, False, "cpu")],
)
def test_auto_picks_cuda_then_mps_then_cpu_on_any_machine(monkeypatch, gpus, mps, chosen):
    _machine(monkeypatch, gpus, mps)
    assert resolve_device("auto") == chosen


def test_every_gpu_and_mps_are_listed_and_can_be_chosen(monkeypatch):
    _machine(monkeypatch, 2, True)
    assert available_devices() == ["cpu", "cuda", "cuda:0", "cuda:1", "mps"]
    assert [resolve_device(d) for d in ("cuda:1", "mps")] == ["cuda:1", "mps"]


def test_channels_last_on_cuda_is_for_images_only():
    assert memory_format("cuda:0", (3, 8, 8)) == torch.channels_last
    assert memory_format("cuda:0", (3, 64)) == torch.contiguous_format
    assert memory_format("cuda:0", (64,)) == torch.contiguous_format


def test_a_failure_releases_the_cache_of_the_device_it_happened_on(monkeypatch):
    released = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: released.append("cuda"))
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: released.append("mps"))
    for device in ("cuda:1", "mps", "cpu"):
        release_memory(device)
    assert released == ["cuda", "mps"]


def test_messages_quote_the_first_line_of_their_cause():
    assert (
        first_line(RuntimeError("CUDA out of memory.\nTried to allocate")) == "CUDA out of memory."
    )
    assert first_line(RuntimeError("")) == "RuntimeError"
