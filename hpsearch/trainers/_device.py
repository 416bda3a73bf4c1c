"""Where a trainer runs and what its device holds: device names, CUDA checks, NVML memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a device is used: checking "cpu" needs none
    import torch

__all__ = ["check_device", "resolve_device", "device_memory_mb"]


def check_device(name: str) -> None:
    """ValueError when `name` asks for a GPU this process cannot see."""
    if name.startswith("cuda"):
        import torch

        index = int(name.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ValueError(f"device={name} but no such CUDA device is visible here")


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when this process can see a GPU (Ray sets CUDA_VISIBLE_DEVICES)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_memory_mb(device: torch.device) -> float | None:
    """Memory in use on the whole device, as nvidia-smi shows it; None without a driver."""
    if device.type != "cuda":
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
    except Exception:  # NVMLError_LibraryNotFound and friends: memory is simply unknown
        return None
