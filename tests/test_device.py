import pytest
import torch

from sklearn_resnet.device import (
    autocast_dtype,
    available_devices,
    is_out_of_memory,
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
