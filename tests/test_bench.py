"""`samba bench`: schema of the JSON, failure rows, budget, figures. CPU only, tiny sizes (< 60 s)."""
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from samba import bench
from samba.bench import report, runner, workloads

pytestmark = pytest.mark.timeout(120)


def check_schema(doc: dict):
    for key in ("device", "commit", "date", "torch", "results", "versions", "samba_backend", "dtype", "profile"):
        assert key in doc, key
    assert isinstance(doc["commit"], str) and doc["commit"]
    for key in ("braindecode", "mamba_ssm", "triton"):
        assert key in doc["versions"]
    assert doc["results"], "no rows"
    for r in doc["results"]:
        for f in bench.ROW_FIELDS:
            assert f in r, (f, r)
        assert r["mode"] in ("train", "infer")
        assert r["status"] in bench.STATUSES
        if r["status"] == "ok":
            assert r["ms"] > 0 and r["eeg_s_per_s"] > 0
            spec = bench.MODEL_SPECS.get(r["model"])
            if spec is not None:
                expect = r["batch"] * r["n_times"] / r["sfreq"] / (r["ms"] / 1e3)
                assert r["eeg_s_per_s"] == pytest.approx(expect, rel=1e-3, abs=0.01)
        elif r["status"] in ("oom", "error"):
            assert r["error"]
        else:
            assert r["reason"]


class Tiny(nn.Module):
    """A stand-in classifier: fast enough to exercise the GPU plan on the CPU."""

    def __init__(self, n_times):
        super().__init__()
        self.conv = nn.Conv1d(19, 4, 5, padding=2)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.conv(x).mean(-1))


def tiny_builder(spec, n_times, backend):
    if spec.name == "Broken":
        raise RuntimeError("this model always fails")
    if spec.name == "Hungry":
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 TiB")
    return Tiny(n_times), lambda m, x: m(x)


def test_cpu_quick_run_is_schema_valid(tmp_path):
    models = ["EEGNet"] + (["SAMBA"] if bench.samba_available() else [])
    out = bench.run_bench(device="cpu", out=tmp_path / "b.json", models=models, contexts_s=[1], batches=[1, 2],
                          quick=True, log=None, threads=1)  # one thread: steady on a shared 2-core machine
    doc = json.loads(out.read_text())
    check_schema(doc)
    assert doc["profile"] == "cpu-quick"
    ok = [r for r in doc["results"] if r["status"] == "ok"]
    assert {r["model"] for r in ok} == set(models)
    infer = [r for r in ok if r["sweep"] == "realtime"]
    assert all(r["mode"] == "infer" and r["realtime_factor"] == r["eeg_s_per_s"] for r in infer)
    assert {(r["context_s"], r["batch"]) for r in infer if r["model"] == "EEGNet"} == {(1, 1), (1, 2)}
    # and one training step per model, at the shortest window and the largest batch
    assert sorted((r["model"], r["mode"], r["context_s"], r["batch"]) for r in ok if r["sweep"] == "train") == \
        sorted((m, "train", 1, 2) for m in models)


@pytest.mark.skipif(not bench.samba_available(), reason="SAMBA not importable")
def test_long_samba_train_rows_checkpoint_one_sample_per_piece():
    """From samba_checkpoint_from_s on, SAMBA's train rows recompute each block one sample at a time (the lowest
    10-minute peak measured) and take the group scan backward for every head; shorter rows and inference rows do
    not checkpoint and keep the default kernels."""
    kw = dict(device="cpu", warmup=1, repeats=1, samba_checkpoint_from_s=2)
    long = bench.measure_row("SAMBA", 2, 2, "train", **kw)
    assert long["status"] == "ok", long
    assert long["activation_checkpointing"] and long["checkpoint_piece_tokens"] == long["n_times"] == 256
    assert long["kernels"]["scan_backward_used_wide"] == "group"
    for ctx, mode in ((1, "train"), (2, "infer")):
        row = bench.measure_row("SAMBA", ctx, 2, mode, **kw)
        assert row["status"] == "ok" and not row["activation_checkpointing"] and row["checkpoint_piece_tokens"] is None
        assert row["kernels"]["scan_backward_used_wide"] == "split"


def test_failures_become_rows_not_crashes(tmp_path):
    out = bench.run_bench(device="cpu", out=tmp_path / "f.json", models=["Broken", "Hungry", "Fine"],
                          contexts_s=[1], batches=[2], quick=True, builder=tiny_builder, log=None)
    doc = json.loads(out.read_text())
    check_schema(doc)
    by = {r["model"]: r for r in doc["results"]}
    assert by["Broken"]["status"] == "error" and "always fails" in by["Broken"]["error"]
    assert by["Hungry"]["status"] == "oom"
    assert by["Fine"]["status"] == "ok"


def test_budget_spent_rows_are_skipped(tmp_path):
    out = bench.run_bench(device="cpu", out=tmp_path / "s.json", models=["EEGNet"], contexts_s=[1], batches=[1],
                          quick=True, time_budget_s=0, log=None)
    doc = json.loads(out.read_text())
    check_schema(doc)
    assert [(r["mode"], r["status"]) for r in doc["results"]] == [("infer", "skipped"), ("train", "skipped")]


def test_gpu_plan_sweeps_and_figures(tmp_path):
    """The GPU plan (context sweep, doubling throughput with plateau stop, latency) on a tiny model."""
    out = bench.run_bench(device="cpu", out=tmp_path / "g.json", models=["Fine", "Broken"], contexts_s=[1, 2], batches=[2, 4], threads=1,
                          quick=True, builder=tiny_builder, plan="gpu", time_budget_s=30, log=None)
    doc = json.loads(out.read_text())
    check_schema(doc)
    fine = [r for r in doc["results"] if r["model"] == "Fine"]
    assert {r["sweep"] for r in fine} == {"context", "throughput", "latency"}
    # --batches 2,4: the context sweep runs at each of them (whole-night rows use --batches 1)
    assert {(r["context_s"], r["mode"], r["batch"]) for r in fine if r["sweep"] == "context"} == {
        (c, m, b) for c in (1, 2) for m in ("train", "infer") for b in (2, 4)}
    assert all(r["status"] == "error" for r in doc["results"] if r["model"] == "Broken")
    paths = bench.plot_bench(out, tmp_path / "fig")
    assert len(paths) == 2
    for p in paths:
        assert p.suffix == ".png" and p.stat().st_size > 5000


def test_realtime_figure_and_cli(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert bench.bench_main(["--device", "cpu", "--quick", "--models", "eegnet", "--contexts", "1",
                             "--batches", "1", "--out", str(out), "--plot", str(tmp_path / "fig"), "-q"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    check_schema(json.loads(out.read_text()))
    assert (tmp_path / "fig" / "c_realtime.png").stat().st_size > 5000


def test_unknown_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        bench.run_bench(device="cpu", out=tmp_path / "x.json", models=["NoSuchNet"], quick=True, log=None)


def test_interrupted_run_keeps_its_rows(tmp_path):
    def builder(spec, n_times, backend):
        if spec.name == "Stop":
            raise KeyboardInterrupt  # what SIGINT from a timeout around the run looks like
        return tiny_builder(spec, n_times, backend)

    out = bench.run_bench(device="cpu", out=tmp_path / "i.json", models=["Fine", "Stop", "Later"], contexts_s=[1],
                          batches=[1], quick=True, builder=builder, log=None)
    doc = json.loads(out.read_text())
    check_schema(doc)
    assert doc["complete"] is False
    assert [(r["model"], r["mode"], r["status"]) for r in doc["results"]] == [
        ("Fine", "infer", "ok"), ("Fine", "train", "ok"), ("Stop", "train", "skipped"), ("Later", "train", "skipped")]


def test_isolated_run_merges_child_rows(tmp_path):
    """One process per model (the CUDA default), exercised on the CPU."""
    model = "SAMBA" if bench.samba_available() else "EEGNet"  # SAMBA's process need not import braindecode
    out = bench.run_bench(device="cpu", out=tmp_path / "p.json", models=[model], contexts_s=[1], batches=[1],
                          quick=True, isolate=True, log=None, threads=1)
    doc = json.loads(out.read_text())
    check_schema(doc)
    assert [(r["model"], r["mode"], r["status"]) for r in doc["results"]] == [(model, "infer", "ok"),
                                                                              (model, "train", "ok")]
    assert not list(tmp_path.glob("*.part.json"))


@pytest.mark.parametrize("curve,expect_seen,expect_best", [
    # 16 was flat (< 2 %) but 32 doubled; 64 and 128 flat -> stop; 256 (a late jump) is never reached
    ({8: 100.0, 16: 101.5, 32: 200.0, 64: 203.0, 128: 204.5, 256: 400.0}, [8, 16, 32, 64, 128], 204.5),
    # 3 % per doubling is not saturation (SAMBA's 60-s train curve once looked like this): the sweep goes on until
    # it flattens
    ({8: 100.0, 16: 103.0, 32: 106.1, 64: 109.3, 128: 110.0, 256: 110.5, 512: 130.0},
     [8, 16, 32, 64, 128, 256], 110.5),
])
def test_throughput_sweep_stops_after_two_flat_doublings_not_one(curve, expect_seen, expect_best):
    """One noisy median (no 2 % gain) must not end the batch sweep; two in a row do."""
    seen = []

    def measure(name, ctx, batch, mode, row_cap_s):
        seen.append(batch)
        return {"model": name, "context_s": ctx, "batch": batch, "mode": mode, "status": "ok", "ms": 1.0,
                "eeg_s_per_s": curve[batch], "peak_mib": 1.0}

    prof = bench.Profile("t", (), throughput_contexts_s=(60,), throughput_modes=("infer",), latency=False)
    budget = runner._Budget(60.0, {"X": 1.0})
    budget.start_model("X")
    rows = runner._bench_model_gpu("X", prof, budget, measure)
    assert seen == expect_seen
    assert max(r["eeg_s_per_s"] for r in rows) == expect_best


def test_ten_minute_train_row_comes_before_the_rest_of_the_context_sweep():
    """The 10-minute train step is a memory target: measured right after the latency row, and only once."""
    seen = []

    def measure(name, ctx, batch, mode, row_cap_s):
        seen.append((ctx, mode))
        return {"model": name, "context_s": ctx, "batch": batch, "mode": mode, "status": "ok", "ms": 1.0,
                "eeg_s_per_s": 1.0, "peak_mib": 1.0}

    prof = bench.Profile("t", (4, 60, 600), throughput_contexts_s=(), latency=True)
    budget = runner._Budget(60.0, {"X": 1.0})
    budget.start_model("X")
    runner._bench_model_gpu("X", prof, budget, measure)
    assert seen == [(10, "infer"), (600, "train"), (4, "train"), (4, "infer"), (60, "train"), (60, "infer"),
                    (600, "infer")]


def test_sweeps_subset_runs_only_those_sweeps():
    """--sweeps splits the GPU plan over several runs (e.g. throughput for every model in one call)."""
    seen = []

    def measure(name, ctx, batch, mode, row_cap_s):
        seen.append((ctx, batch, mode))
        return {"model": name, "context_s": ctx, "batch": batch, "mode": mode, "status": "ok", "ms": 1.0,
                "eeg_s_per_s": 1.0, "peak_mib": 1.0}

    prof = workloads.make_profile("cuda", False, (4, 600), None, 60.0, sweeps=["context", "latency"])
    assert prof.sweeps == ("latency", "context")
    budget = runner._Budget(60.0, {"X": 1.0})
    budget.start_model("X")
    rows = runner._bench_model_gpu("X", prof, budget, measure)
    assert {r["sweep"] for r in rows} == {"latency", "context"}
    assert seen[:2] == [(10, 1, "infer"), (600, 4, "train")]
    with pytest.raises(ValueError, match="unknown sweeps"):
        workloads.make_profile("cuda", False, None, None, 60.0, sweeps=["thruput"])


def test_merge_joins_the_sweeps_of_one_run_and_refuses_mixed_runs(tmp_path, capsys):
    """A GPU plan split over several runs (--sweeps) merges back into one JSON whose summary sees every row."""
    parts = []
    for i, sweeps in enumerate((["throughput"], ["latency", "context"])):
        parts.append(bench.run_bench(device="cpu", out=tmp_path / f"p{i}.json", models=["Fine"], contexts_s=[1],
                                     batches=[2], threads=1, quick=True, builder=tiny_builder, plan="gpu",
                                     time_budget_s=30, log=None, sweeps=sweeps))
    assert bench.bench_main(["--merge", str(parts[0]), str(parts[1]), "--out", str(tmp_path / "m.json"), "-q"]) == 0
    merged = json.loads((tmp_path / "m.json").read_text())
    check_schema(merged)
    docs = [json.loads(p.read_text()) for p in parts]
    assert merged["results"] == docs[0]["results"] + docs[1]["results"]
    assert merged["sweeps"] == ["throughput", "latency", "context"]
    assert [m["file"] for m in merged["merged_from"]] == ["p0.json", "p1.json"]
    assert {r["sweep"] for r in merged["results"]} == {"throughput", "latency", "context"}
    assert merged["summary"] == report.summarize(merged["results"])
    with pytest.raises(ValueError, match="appears twice"):
        bench.merge_bench([parts[0], parts[0]], tmp_path / "x.json")
    other = dict(docs[1], commit="0000000")
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="'commit'"):
        bench.merge_bench([parts[0], tmp_path / "other.json"], tmp_path / "x.json")
    (tmp_path / "broken.json").write_text('{"device": "cuda", "resu')  # cut short, e.g. a killed copy
    with pytest.raises(ValueError, match="not a `samba bench` JSON"):
        bench.merge_bench([parts[0], tmp_path / "broken.json"], tmp_path / "x.json")
    with pytest.raises(ValueError, match="at least two"):
        bench.merge_bench([parts[0]], tmp_path / "x.json")


def test_samba_bench_cpu_command_runs_in_ci(tmp_path):
    """The real command line, as CI runs it: tiny windows, batches 1-2, SAMBA and one peer; a schema-valid JSON
    whose path is printed last, with SAMBA's kernel settings recorded where the model carries them."""
    from samba.paths import REPO

    out = tmp_path / "ci.json"
    models = "samba,eegnet" if bench.samba_available() else "eegnet"
    proc = subprocess.run([sys.executable, "-m", "samba", "bench", "--device", "cpu", "--quick", "--models", models,
                           "--contexts", "1", "--batches", "1,2", "--threads", "1", "--out", str(out), "-q"],
                          capture_output=True, text=True, timeout=110,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    doc = json.loads(out.read_text())
    check_schema(doc)
    assert {r["status"] for r in doc["results"]} == {"ok"}
    assert "kernels" in doc
    assert doc["command"] == f"samba bench --device cpu --quick --models {models} --contexts 1 --batches 1,2 " \
                             f"--threads 1 --out {out} -q"  # provenance: the command as typed
    samba_rows = [r for r in doc["results"] if r["model"] == "SAMBA"]
    if samba_rows:
        from samba import SAMBA, SAMBAConfig

        kernels = getattr(SAMBA(SAMBAConfig()), "kernels", None)
        assert doc["kernels"] == (kernels.to_dict() if kernels is not None else None)


def test_user_mistakes_are_one_line_not_a_traceback(tmp_path, capsys):
    assert bench.bench_main(["--device", "cpu", "--models", "NoSuchNet", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("samba: error: unknown model 'NoSuchNet'")
    assert bench.bench_main(["--merge", str(tmp_path / "missing.json"), str(tmp_path / "x.json"),
                             "--out", str(tmp_path / "m.json")]) == 2
    assert "not a `samba bench` JSON" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_command_line_parses_before_importing_torch():
    from samba.paths import REPO

    code = "import sys; from samba.bench import bench_main, MODEL_NAMES; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.strip() == "False", proc.stderr


def _row(model, ctx, batch, mode, sweep, eeg_s_per_s=None, ms=1.0, peak_mib=1.0, status="ok", **kw):
    return {"model": model, "context_s": ctx, "sfreq": 128.0, "batch": batch, "mode": mode, "ms": ms,
            "peak_mib": peak_mib, "eeg_s_per_s": eeg_s_per_s, "status": status, "sweep": sweep, **kw}


def test_summary_reports_each_target_against_the_best_foundation_model_peer():
    """Throughput targets compare with the best foundation-model peer (never the EEGNet floor); whole-night targets
    read the batch-1 context rows; a failed row is reported as not measured, with its reason."""
    rows = [_row("SAMBA", 60, 64, "train", "throughput", 150.0), _row("SAMBA", 60, 128, "train", "throughput", 120.0),
            _row("BIOT", 60, 64, "train", "throughput", 100.0), _row("EEGNet", 60, 64, "train", "throughput", 900.0),
            _row("SAMBA", 60, 64, "infer", "throughput", 199.0), _row("LUNA", 60, 64, "infer", "throughput", 100.0),
            _row("SAMBA", 28800, 1, "infer", "context", ms=900.0, peak_mib=4000.0),
            _row("SAMBA", 3600, 1, "train", "context", ms=100.0, peak_mib=4200.0),
            _row("SAMBA", 3600, 4, "train", "context", ms=100.0, peak_mib=100.0),  # not batch 1: not a target row
            _row("SAMBA", 28800, 1, "train", "context", status="oom", ms=None, peak_mib=None,
                 error="CUDA out of memory")]
    t = report.summarize(rows)["targets"]
    assert t["train_60s_vs_best_peer"] == {
        "value": 1.5, "target": 1.5, "met": True, "best_peer": "BIOT", "samba_eeg_s_per_s": 150.0, "samba_batch": 64,
        "best_peer_eeg_s_per_s": 100.0, "best_peer_batch": 64,
        "peers_not_measured": {"LUNA": "no row for it in this run"}}
    assert t["infer_60s_vs_best_peer"]["value"] == 1.99 and t["infer_60s_vs_best_peer"]["met"] is False
    assert t["infer_8h_batch1_peak_gib"]["value"] == pytest.approx(4000 / 1024, abs=1e-3)
    assert t["infer_8h_batch1_peak_gib"]["met"] and t["infer_8h_batch1_ms"]["met"]
    assert t["train_1h_batch1_peak_gib"]["met"] is False
    assert t["train_8h_batch1_peak_gib"]["met"] is None
    assert "out of memory" in t["train_8h_batch1_peak_gib"]["not_measured"]


def test_cpu_summary_compares_at_batch_eight_and_says_why_train_is_missing():
    rows = [_row("SAMBA", 10, 8, "infer", "realtime", 300.0), _row("SAMBA", 10, 1, "infer", "realtime", 900.0),
            _row("LUNA", 10, 8, "infer", "realtime", 200.0), _row("BIOT", 10, 8, "infer", "realtime", 100.0),
            _row("EEGNet", 10, 8, "infer", "realtime", 9000.0),
            _row("SAMBA", 60, 8, "infer", "realtime", 100.0), _row("LUNA", 60, 8, "infer", "realtime", 200.0),
            _row("BIOT", 60, 8, "infer", "realtime", status="skipped", ms=None, reason="time budget spent")]
    t = report.summarize(rows)["targets"]
    assert t["cpu_infer_10s_vs_best_peer"]["value"] == 1.5 and t["cpu_infer_10s_vs_best_peer"]["met"]
    assert t["cpu_infer_10s_vs_best_peer"]["best_peer"] == "LUNA"
    assert t["cpu_infer_60s_vs_best_peer"]["value"] == 0.5 and not t["cpu_infer_60s_vs_best_peer"]["met"]
    assert t["cpu_infer_60s_vs_best_peer"]["peers_not_measured"] == {"BIOT": "skipped: time budget spent"}
    assert t["cpu_train_vs_best_peer"]["met"] is None
    assert "no CPU train rows at batch 8" in t["cpu_train_vs_best_peer"]["not_measured"]
    assert not any(k.endswith("60s_vs_best_peer") and not k.startswith("cpu") for k in t)  # no GPU targets on a CPU run
