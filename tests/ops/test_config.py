"""KernelConfig: the defaults (the measured fastest settings), how settings are checked, recorded and read from the
one environment variable, and how they pick kernels (CPU checks; the kernels themselves: test_triton_kernels.py)."""

from __future__ import annotations

import pytest
import torch

from samba.errors import UsageError
from samba.ops import KernelConfig, resolve_backend
from samba.ops.config import launch_options


def test_defaults_are_the_measured_settings():
    k = KernelConfig()
    assert k.backend == "auto" and k.fused_block and k.fused_bottleneck and k.triton_scan and k.triton_norm
    assert k.triton_conv and k.triton_upsample
    assert k.scan_forward_launch == (4, 3) and k.scan_forward_narrow_launch is None
    assert k.scan_forward_launch_for(16) == k.scan_forward_launch_for(64) == {"num_warps": 4, "num_stages": 3}
    assert k.scan_chunk_for(64) == k.scan_chunk_for(16) == 64  # the scan's chunk, every head width
    # the split backward for wide heads, the group backward for narrow (<= 16) ones, each at 4 warps
    assert (k.scan_backward_for(64), k.scan_backward_for(16), k.scan_backward_for(None)) == ("split", "group", "split")
    assert k.scan_backward_launch_for("split", 64) == k.scan_backward_launch_for("group", 16) == \
        {"num_warps": 4, "num_stages": 3}
    assert k.scan_backward_launch_for("walk", 64) == {"num_warps": 8, "num_stages": 3}  # where its tests passed
    assert k.norm_backward_tiles == (2048, 8) and k.conv_backward_tiles == (64, 64) and k.conv_backward_iters == 1
    assert k.scan_min_programs == 0 and k.scan_segment_programs == 0 and k.autotune == "full"


def test_narrow_heads_take_their_own_backward_settings():
    k = KernelConfig(scan_backward="walk", scan_backward_launch="8,2", scan_backward_narrow=None)
    assert k.scan_backward_for(16) == k.scan_backward_for(64) == "walk"  # None: the narrow heads follow the others
    assert k.scan_backward_launch_for("walk", 16) == k.scan_backward_launch_for("walk", 64) == \
        {"num_warps": 8, "num_stages": 2}
    k = KernelConfig(scan_backward="walk", scan_backward_launch="8,2", scan_backward_narrow="group",
                     scan_backward_narrow_launch=(2, 3))
    assert (k.scan_backward_for(16), k.scan_backward_for(32)) == ("group", "walk")
    assert k.scan_backward_launch_for("group", 16) == {"num_warps": 2, "num_stages": 3}
    k2 = KernelConfig(scan_forward_launch="8,3", scan_forward_narrow_launch="4,1", scan_chunk=32, scan_chunk_narrow=128)
    assert (k2.scan_forward_launch_for(16), k2.scan_forward_launch_for(64)) == (
        {"num_warps": 4, "num_stages": 1}, {"num_warps": 8, "num_stages": 3})
    assert (k2.scan_chunk_for(16), k2.scan_chunk_for(64)) == (128, 32)
    for bad in ("48", "8", "512", "x"):
        with pytest.raises(UsageError, match="scan_chunk"):
            KernelConfig(scan_chunk=bad)
    assert KernelConfig.from_env({"SAMBA_KERNELS": "conv_backward_iters=4"}).conv_backward_iters == 4
    for bad in ("0", "-1", "two"):
        with pytest.raises(UsageError, match="conv_backward_iters"):
            KernelConfig(conv_backward_iters=bad)
    rec = k.to_dict()
    assert (rec["scan_backward_used_wide"], rec["scan_backward_used_narrow"]) == ("walk", "group")
    assert rec["scan_backward_launch_used_narrow"] == "2,3"


@pytest.mark.parametrize("field", ["scan_forward_launch", "scan_forward_narrow_launch", "scan_backward_launch",
                                   "norm_backward_launch", "conv_backward_launch"])
def test_launch_settings_are_checked_and_recorded(field):
    k = KernelConfig(**{field: "8,3,128"})
    assert getattr(k, field) == (8, 3, 128)
    assert launch_options(getattr(k, field)) == {"num_warps": 8, "num_stages": 3, "maxnreg": 128}
    assert k.to_dict()[field] == "8,3,128" and f"{field}=8,3,128" in str(k)
    assert KernelConfig(**{field: [4, 2]}) == KernelConfig(**{field: "4,2"})  # lists (JSON) and strings alike
    for bad in ("4", "four,2", "3,2", "8,0", "8,3,300", "8,3,128,1"):
        with pytest.raises(UsageError, match=field):
            KernelConfig(**{field: bad})


@pytest.mark.parametrize("field,good,bads", [
    ("conv_backward_tiles", (128, 32), ("64", "100,64", "8,64", "64,64,1")),
    ("norm_backward_tiles", (1024, 16), ("1024", "1000,8", "1024,x"))])
def test_tile_settings_are_checked(field, good, bads):
    assert getattr(KernelConfig(**{field: ",".join(map(str, good))}), field) == good
    for bad in bads:
        with pytest.raises(ValueError, match=field):
            KernelConfig(**{field: bad})


def test_choices_are_checked():
    for kw in ({"backend": "fast"}, {"scan_backward": "parallel"}, {"scan_backward_narrow": "chunked"},
               {"autotune": "some"}, {"fused_block": "maybe"}, {"scan_min_programs": "lots"},
               {"scan_min_programs": -1}, {"scan_segment_programs": "many"}, {"scan_segment_programs": -2},
               {"scan_segment_min_steps": 0}, {"scan_segment_min_steps": "long"},
               {"scan_forward_launch": None}):
        with pytest.raises(UsageError, match="KernelConfig"):
            KernelConfig(**kw)


def test_frozen_printable_and_recorded():
    k = KernelConfig()
    with pytest.raises(Exception):
        k.backend = "torch"
    assert str(k) == "KernelConfig(backend=auto; defaults)"
    assert str(KernelConfig(backend="torch", triton_scan=False)) == "KernelConfig(backend=torch, triton_scan=False)"
    rec = k.to_dict()
    assert rec["backend"] == "auto" and rec["scan_forward_launch"] == "4,3" and rec["scan_backward_launch"] is None
    import json

    json.dumps(rec)  # goes into the benchmark JSON as is


def test_the_one_environment_variable():
    assert KernelConfig.from_env({}) == KernelConfig()
    assert KernelConfig.from_env({"SAMBA_KERNELS": "torch"}) == KernelConfig(backend="torch")
    k = KernelConfig.from_env({"SAMBA_KERNELS": "backend=triton,scan_forward_launch=8,3,128,autotune=single,"
                                                "scan_backward_narrow=none,fused_block=0"})
    assert k == KernelConfig(backend="triton", scan_forward_launch=(8, 3, 128), autotune="single",
                             scan_backward_narrow=None, fused_block=False)
    for bad in ("bogus=1", "fast", ",scan_backward=walk"):
        with pytest.raises(UsageError):
            KernelConfig.from_env({"SAMBA_KERNELS": bad})


def test_backend_resolution_on_cpu():
    x = torch.zeros(1)
    assert resolve_backend("auto", x) == resolve_backend("torch", x) == "torch"
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("fast", x)
    with pytest.raises(RuntimeError):  # our kernels, or mamba_ssm's, need CUDA tensors (or are not installed)
        resolve_backend("triton", x)


def test_triton_scan_never_on_cpu_and_small_scans_can_go_to_mamba_ssm(monkeypatch):
    """Our scan only for CUDA tensors; with scan_min_programs, calls with fewer (sample, head) programs take
    mamba_ssm's scan."""
    from samba.ops import ssd
    from samba.ops.triton import ssd as ts

    monkeypatch.setattr(ts, "supported", lambda x, B: True)
    x, B = torch.zeros(1, 3, 8, 64), torch.zeros(1, 3, 1, 16)  # 8 programs, as a 10-minute piece of one sample
    assert not ssd.use_triton_scan(x, B, KernelConfig())  # CPU: never ours

    class FakeCuda:  # only what use_triton_scan reads
        def __init__(self, shape):
            self.shape, self.is_cuda, self.dtype = shape, True, torch.float32

    assert ssd.use_triton_scan(FakeCuda((1, 3, 8, 64)), B, KernelConfig())
    assert not ssd.use_triton_scan(FakeCuda((1, 3, 8, 64)), B, KernelConfig(scan_min_programs=64))
    assert ssd.use_triton_scan(FakeCuda((8, 3, 8, 64)), B, KernelConfig(scan_min_programs=64))
    assert not ssd.use_triton_scan(FakeCuda((8, 3, 8, 64)), B, KernelConfig(triton_scan=False))


def test_model_takes_kernels_once_and_checkpoints_carry_none():
    from samba import SAMBA, SAMBAConfig

    k = KernelConfig(backend="torch", scan_backward="walk")
    m = SAMBA(SAMBAConfig(expand=2, d_state=8, chunk_size=16), kernels=k)
    assert m.kernels is k
    layers = [mod for mod in m.modules() if hasattr(mod, "kernels") and mod is not m]
    assert layers and all(mod.kernels is k for mod in layers)
    assert "backend" not in m.cfg.to_dict() and "kernels" not in m.cfg.to_dict()
    assert SAMBAConfig.from_dict({**m.cfg.to_dict(), "backend": "mamba_ssm"}) == m.cfg  # older checkpoints load
    assert SAMBA(SAMBAConfig(backend="torch")).kernels.backend == "torch"  # the deprecated way still works
