"""GPUs through NVML, narrowed to what ``CUDA_VISIBLE_DEVICES`` or ``SLURM_JOB_GPUS`` allow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from ..resource import GPU
from ._slurmenv import slurm_gpu_ids

__all__ = ["NVML", "GPUDevice", "GPUInfo", "detect_gpus", "nvml_devices", "visible_devices"]


class NVML(Protocol):
    """The part of ``pynvml`` that detection uses (a test passes a stand-in)."""

    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...


@attrs.frozen
class GPUDevice:
    """One GPU as NVML reports it.

    Attributes:
        index: NVML's device index (PCI bus order, as ``nvidia-smi`` numbers them).
        name: the product name.
        uuid: ``GPU-...``.
        memory_kib: the device's memory.
    """

    index: int
    name: str
    uuid: str
    memory_kib: int


@attrs.frozen
class GPUInfo:
    """The GPUs this process may use and how that was decided.

    Attributes:
        devices: the usable devices, by index.
        source: ``"nvml"`` (every device NVML lists), ``"CUDA_VISIBLE_DEVICES"``,
            ``"SLURM_JOB_GPUS"`` or ``"none"`` (no driver).
        detail: what was read, or why there are no GPUs.
    """

    devices: tuple[GPUDevice, ...]
    source: str
    detail: str

    @property
    def ids(self) -> list[int]:
        """The device indices, as ``GPU(ids)`` takes them."""
        return [device.index for device in self.devices]

    def capacity(self) -> GPU | None:
        """These GPUs as a capacity, or ``None`` when there are none."""
        return GPU(self.ids) if self.devices else None


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes.
    return value.decode() if isinstance(value, bytes) else value


def nvml_devices(nvml: NVML | None = None) -> tuple[tuple[GPUDevice, ...], str]:
    """Every device NVML can open, and a reason when there are none.

    No driver, no library and no ``pynvml`` all mean no GPUs, not an error.  A device this
    process may not open (a Slurm job's cgroup denies the others) is not one of its GPUs.
    """
    if nvml is None:
        try:
            import pynvml
        except ImportError as error:
            return (), f"pynvml cannot be imported: {error}"
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except (nvml.NVMLError, OSError) as error:
        return (), f"NVML did not start: {error}"
    devices: list[GPUDevice] = []
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                devices.append(
                    GPUDevice(
                        index,
                        _text(nvml.nvmlDeviceGetName(handle)),
                        _text(nvml.nvmlDeviceGetUUID(handle)),
                        int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // 1024,
                    )
                )
            except nvml.NVMLError:
                continue
    except nvml.NVMLError as error:
        return (), f"NVML could not count devices: {error}"
    finally:
        nvml.nvmlShutdown()
    return tuple(devices), f"NVML lists {len(devices)} device(s)"


def _match(entry: str, devices: tuple[GPUDevice, ...]) -> GPUDevice | None:
    """The device an entry of ``CUDA_VISIBLE_DEVICES`` names: an index or a UUID (prefix)."""
    if entry.isdigit():
        return next((d for d in devices if d.index == int(entry)), None)
    if not entry.startswith("GPU-"):
        return None  # -1, MIG-..., NoDevFiles and typos name no whole GPU
    found = [d for d in devices if d.uuid.lower().startswith(entry.lower())]
    return found[0] if len(found) == 1 else None


def visible_devices(
    devices: tuple[GPUDevice, ...], environ: Mapping[str, str]
) -> tuple[tuple[GPUDevice, ...], str, str]:
    """The devices this process may use: (devices, source, detail).

    ``CUDA_VISIBLE_DEVICES`` wins when set: it is what CUDA programs started here will see.
    Like CUDA, the list ends at its first entry that names no device, and an empty value
    means none.  Else ``SLURM_JOB_GPUS`` (the job's GPU indices) narrows the devices; else
    every device NVML lists is usable.
    """
    cuda = environ.get("CUDA_VISIBLE_DEVICES")
    if cuda is not None:
        chosen: dict[int, GPUDevice] = {}
        detail = f"CUDA_VISIBLE_DEVICES={cuda!r}"
        for entry in (part.strip() for part in cuda.split(",")):
            device = _match(entry, devices) if entry else None
            if device is None:
                if entry:
                    detail += f"; {entry!r} names no device, so the list ends there"
                break
            chosen[device.index] = device
        return tuple(sorted(chosen.values(), key=lambda d: d.index)), "CUDA_VISIBLE_DEVICES", detail
    slurm = slurm_gpu_ids(environ)
    if slurm is not None:
        allowed = set(slurm)
        chosen_slurm = tuple(d for d in devices if d.index in allowed)
        return chosen_slurm, "SLURM_JOB_GPUS", f"SLURM_JOB_GPUS={environ['SLURM_JOB_GPUS']!r}"
    return devices, "nvml", "every device NVML lists"


def detect_gpus(environ: Mapping[str, str], *, nvml: NVML | None = None) -> GPUInfo:
    """The GPUs this process may use.

    Args:
        environ: the environment to read ``CUDA_VISIBLE_DEVICES`` and ``SLURM_JOB_GPUS`` from.
        nvml: the NVML binding; ``pynvml``, imported only now, by default.
    """
    devices, found = nvml_devices(nvml)
    if not devices:
        return GPUInfo((), "none", found)
    usable, source, detail = visible_devices(devices, environ)
    return GPUInfo(usable, source, detail)
