"""Reading each GPU's memory with NVML for packing: the smallest device counts; no driver
(or fake Ray GPUs) means unknown, never zero."""

import sys
import types

from hpsearch.search import cluster


def _fake_pynvml(totals_bytes):
    mod = types.SimpleNamespace()
    mod.nvmlInit = lambda: None
    mod.nvmlDeviceGetCount = lambda: len(totals_bytes)
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=totals_bytes[h])
    return mod


def test_nvml_reports_the_smallest_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([80 * 2**30, 40 * 2**30]))
    assert cluster._nvml_total_mb() == 40 * 1024


def test_no_driver_means_unknown(monkeypatch):
    def fail():
        raise RuntimeError("NVML Shared Library Not Found")

    fake = _fake_pynvml([])
    fake.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert cluster._nvml_total_mb() is None


def test_cluster_without_gpus_has_no_gpu_memory(ray_local):
    assert cluster.gpu_memory_mb() is None
