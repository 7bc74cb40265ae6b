"""GPUs through NVML, with a stand-in NVML: this machine has no GPU (grainlike/worker/_nvml.py)."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import attrs
import pytest

from grainlike import GPU
from grainlike.worker._nvml import GPUDevice, GPUInfo, detect_gpus, nvml_devices

#: A device as the stand-in reports it: (name, uuid, memory in bytes, openable).
Device = tuple[bytes | str, str, int, bool]


class FakeNVMLError(Exception):
    """NVML's error class, as pynvml raises it."""


@attrs.frozen
class FakeMemory:
    total: int


@attrs.define
class FakeNVML:
    """Answers like pynvml for a machine with the given devices."""

    devices: list[Device]
    driver: bool = True
    calls: list[str] = attrs.Factory(list)
    NVMLError: type[Exception] = FakeNVMLError

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if not self.driver:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        if not self.devices[index][3]:
            raise FakeNVMLError("Insufficient Permissions")
        return index

    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        name: bytes | str = self.devices[handle][0]
        return name

    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes:
        uuid: str = self.devices[handle][1]
        return uuid

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        return FakeMemory(self.devices[handle][2])


A100: Device = (b"NVIDIA A100-SXM4-40GB", "GPU-aaaa1111-0000", 40 << 30, True)
H100: Device = ("NVIDIA H100 80GB HBM3", "GPU-bbbb2222-0000", 80 << 30, True)
FOUR: list[Device] = [
    A100,
    H100,
    (b"NVIDIA A100-SXM4-40GB", "GPU-cccc3333-0000", 40 << 30, True),
    ("NVIDIA H100 80GB HBM3", "GPU-dddd", 80 << 30, True),
]


def four_gpus() -> FakeNVML:
    return FakeNVML(list(FOUR))


def test_devices_are_listed_with_names_uuids_and_memory_and_nvml_is_shut_down() -> None:
    nvml = FakeNVML([A100, H100])
    devices, detail = nvml_devices(nvml)
    assert devices == (
        GPUDevice(0, "NVIDIA A100-SXM4-40GB", "GPU-aaaa1111-0000", 40 << 20),
        GPUDevice(1, "NVIDIA H100 80GB HBM3", "GPU-bbbb2222-0000", 80 << 20),
    )
    assert detail == "NVML lists 2 device(s)"
    assert nvml.calls == ["init", "shutdown"]


def test_a_device_this_process_may_not_open_is_not_its_gpu() -> None:
    devices, _ = nvml_devices(FakeNVML([A100, (*H100[:3], False), A100]))
    assert [d.index for d in devices] == [0, 2]


def test_no_driver_means_no_gpus_and_no_error() -> None:
    info = detect_gpus({"CUDA_VISIBLE_DEVICES": "0"}, nvml=FakeNVML([A100], driver=False))
    assert info == GPUInfo((), "none", "NVML did not start: NVML Shared Library Not Found")
    assert info.capacity() is None


def nvidia_driver_present() -> bool:
    """Whether the real NVML starts on this machine (tests expecting no GPU skip then)."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_the_real_pynvml_without_a_driver_gives_no_gpus() -> None:
    if nvidia_driver_present():
        pytest.skip("this machine has an NVIDIA driver")
    info = detect_gpus({})
    assert info.devices == ()
    assert info.source == "none"


def test_a_missing_pynvml_gives_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes ``import pynvml`` fail
    info = detect_gpus({})
    assert info.source == "none"
    assert info.detail.startswith("pynvml cannot be imported")


def test_the_default_binding_is_what_import_pynvml_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in module in sys.modules is what ``import pynvml`` finds."""
    fake = four_gpus()
    module = ModuleType("pynvml")
    for name in dir(fake):
        if name.startswith("nvml") or name == "NVMLError":
            setattr(module, name, getattr(fake, name))
    monkeypatch.setitem(sys.modules, "pynvml", module)
    assert detect_gpus({}).ids == [0, 1, 2, 3]


def test_every_device_is_usable_when_nothing_narrows_them() -> None:
    info = detect_gpus({}, nvml=four_gpus())
    assert (info.ids, info.source) == ([0, 1, 2, 3], "nvml")
    assert info.capacity() == GPU([0, 1, 2, 3])


def test_cuda_visible_devices_indices_narrow_the_devices() -> None:
    info = detect_gpus({"CUDA_VISIBLE_DEVICES": "3,1"}, nvml=four_gpus())
    assert (info.ids, info.source) == ([1, 3], "CUDA_VISIBLE_DEVICES")
    assert info.devices[0].name == "NVIDIA H100 80GB HBM3"


def test_cuda_visible_devices_uuids_and_unique_prefixes_name_devices() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "GPU-cccc3333-0000,GPU-BBBB"}
    assert detect_gpus(environ, nvml=four_gpus()).ids == [1, 2]


def test_an_empty_cuda_visible_devices_means_no_gpus() -> None:
    info = detect_gpus({"CUDA_VISIBLE_DEVICES": ""}, nvml=four_gpus())
    assert (info.ids, info.capacity()) == ([], None)


@pytest.mark.parametrize("value", ["0,7,2", "0,-1,2", "0,GPU-,2", "0,MIG-xyz,2", "0,bogus"])
def test_cuda_visible_devices_ends_at_the_first_entry_that_names_no_device(value: str) -> None:
    """As in CUDA: "GPU-" is an ambiguous prefix, 7 does not exist, MIG slices are not GPUs."""
    info = detect_gpus({"CUDA_VISIBLE_DEVICES": value}, nvml=four_gpus())
    assert info.ids == [0]
    assert "names no device, so the list ends there" in info.detail


def test_slurm_job_gpus_narrow_the_devices_when_cuda_visible_devices_is_unset() -> None:
    info = detect_gpus({"SLURM_JOB_GPUS": "0,2,9"}, nvml=four_gpus())
    assert (info.ids, info.source) == ([0, 2], "SLURM_JOB_GPUS")


def test_cuda_visible_devices_wins_over_slurm_job_gpus() -> None:
    environ = {"SLURM_JOB_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert detect_gpus(environ, nvml=four_gpus()).ids == [0, 1]


def test_a_failing_device_count_gives_no_gpus_and_shuts_nvml_down() -> None:
    class BrokenCount(FakeNVML):
        def nvmlDeviceGetCount(self) -> int:
            raise FakeNVMLError("GPU is lost")

    nvml = BrokenCount([A100])
    info = detect_gpus({}, nvml=nvml)
    assert info == GPUInfo((), "none", "NVML could not count devices: GPU is lost")
    assert nvml.calls == ["init", "shutdown"]
