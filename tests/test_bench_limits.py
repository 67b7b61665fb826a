"""samba.bench.limits: the work counted per step and the fractions of the GPU's peaks (CPU, small windows)."""
import json

import pytest
from torch import nn

from samba.bench import limits

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def model():
    return limits.build_model()


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_flops_and_bytes_grow_linearly_in_batch_and_time(model, mode):
    """The fit from batches 1 and 2 of one window predicts batch 3 exactly and a window twice as long within 2 %
    (the reference scan passes states between chunks as a (chunks x chunks) product; the GPU's pass is linear)."""
    T = 512
    flops = {b: limits.count_flops(model, b, T, mode) for b in (1, 2, 3)}
    moved = {b: limits.count_activation_bytes(model, b, T, mode) for b in (1, 2, 3)}
    for counts, count in ((flops, limits.count_flops), (moved, limits.count_activation_bytes)):
        fit = limits.linear_fit({1: counts[1], 2: counts[2]}, T)
        assert fit["per_sample_step"] > 0 and fit["constant"] >= 0
        assert limits.extend(fit, 3, T) == pytest.approx(counts[3], rel=1e-6)
        assert limits.extend(fit, 1, 2 * T) == pytest.approx(count(model, 1, 2 * T, mode), rel=0.02)


def test_a_train_step_counts_the_backward(model):
    """Forward + backward: the backward's products (input and weight gradients) are about twice the forward's."""
    ratio = limits.count_flops(model, 1, 256, "train") / limits.count_flops(model, 1, 256, "infer")
    assert 2.5 < ratio < 3.5


def test_activation_bytes_follow_the_stated_model():
    """Two linear layers around a ReLU: the input read once; the first product's result, the ReLU's output (the second
    product's operand) and the output each written once and read once; weights are not activations. A train step
    adds each tensor's gradient (written and read) and one more read of each product operand."""
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 32), nn.Linear(32, 4)

        def forward(self, x):
            return self.b(self.a(x).relu())

    import torch

    m, B = Tiny(), 5
    x = torch.randn(B, 8)
    Boundary = limits._boundary_mode()
    for mode in ("infer", "train"):
        with torch.set_grad_enabled(mode == "train"):
            with Boundary(m.parameters(), [x]) as trace:
                m(x)
        fwd = B * 8 + 2 * (B * 32 + B * 32 + B * 4)
        bwd = 2 * (B * 32 + B * 32 + B * 4) + (B * 8 + B * 32)  # gradients; operands x and relu(a(x)) read again
        assert trace.bytes(mode) == 2 * (fwd + (bwd if mode == "train" else 0))


def test_fractions_from_given_numbers():
    spec = {"bf16_dense_tflop_s": 1000.0, "memory_tb_s": 2.0}
    f = limits.fractions(flops=5e12, bytes_moved=1e11, ms=100.0, spec=spec)  # 50 TFLOP/s, 1,000 GB/s
    assert f["achieved_tflop_s"] == pytest.approx(50.0)
    assert f["achieved_gb_s"] == pytest.approx(1000.0)
    assert f["fraction_of_bf16_peak"] == pytest.approx(0.05)
    assert f["fraction_of_memory_bandwidth"] == pytest.approx(0.5)
    assert f["flop_per_byte"] == pytest.approx(50.0) and f["ridge_flop_per_byte"] == pytest.approx(500.0)
    assert f["closer_limit"] == "memory bandwidth"
    assert limits.fractions(1e15, 1e9, 1000.0, spec)["closer_limit"].startswith("compute")


def test_limits_reads_the_headline_rows_and_refuses_another_card(tmp_path):
    row = {"model": "SAMBA", "sfreq": 128.0, "peak_mib": 1.0, "status": "ok"}
    bench = {"device": "NVIDIA H100 80GB HBM3", "commit": "abc1234", "results": [
        {**row, "context_s": 60, "n_times": 7680, "batch": b, "mode": m, "ms": ms, "eeg_s_per_s": tp,
         "sweep": "throughput"} for b, m, ms, tp in ((8, "train", 10.0, 100.0), (16, "train", 10.0, 200.0),
                                                     (8, "infer", 5.0, 300.0))]}
    night = {"device": "NVIDIA H100 80GB HBM3", "commit": "def5678", "results": [
        {**row, "context_s": 28800.0, "n_times": 3686400, "batch": 1, "mode": "infer", "ms": 200.0,
         "eeg_s_per_s": 1.0, "sweep": "context"}]}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    (tmp_path / "n.json").write_text(json.dumps(night))
    work = {"n_params": 10, "count_n_times": 1, "count_batches": [1, 2]}
    for mode, (a, s) in (("train", (0.0, 3.0)), ("infer", (0.0, 1.0))):
        fit = {"constant": a, "per_sample_step": s}
        work[mode] = {"flops": fit, "flops_einsum_projections": fit,
                      "activation_bytes": {"constant": 0.0, "per_sample_step": 2 * s}}
    spec = {"bf16_dense_tflop_s": 1.0, "memory_tb_s": 1.0}
    doc = limits.limits(tmp_path / "b.json", tmp_path / "n.json", spec=spec, work=work, command="test")
    assert [(r["row"], r["batch"]) for r in doc["rows"]] == [
        ("60-s train, best batch", 16), ("60-s infer, best batch", 8), ("8-h infer, batch 1", 1)]
    train = doc["rows"][0]
    assert train["flops_per_step"] == pytest.approx(3.0 * 16 * 7680)
    assert train["bytes_per_step_lower_bound"] == pytest.approx(6.0 * 16 * 7680 + limits.parameter_bytes(10, "train"))
    assert doc["sources"]["whole_night"]["commit"] == "def5678" and doc["command"] == "test"
    (tmp_path / "o.json").write_text(json.dumps({**bench, "device": "NVIDIA H200"}))
    with pytest.raises(ValueError, match="not the H100 SXM"):
        limits.limits(tmp_path / "o.json", spec=spec, work=work)


def test_cpu_bound_is_flops_over_rate_and_compares_with_the_best_peer():
    from samba.bench.cpu_limits import bound

    # 10 GFLOP at 200 GFLOP/s: 50 ms at least; 80 EEG-seconds a step -> at most 1,600 EEG-s/s
    b = bound(10e9, 80.0, 200.0, best_peer_eeg_s=1000.0)
    assert b["samba_min_ms"] == 50.0 and b["samba_best_eeg_s_per_s"] == 1600.0 and b["best_possible_ratio"] == 1.6


def test_cpu_step_flops_count_the_benchmark_step():
    from samba.bench.cpu_limits import step_flops

    infer = step_flops("EEGNet", 1.0, 2, "infer")
    train = step_flops("EEGNet", 1.0, 2, "train")
    assert infer > 0 and 2 * infer <= train <= 4 * infer  # backward: about twice the forward's products
    assert step_flops("EEGNet", 1.0, 4, "infer") == 2 * infer  # linear in the batch
