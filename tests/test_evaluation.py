"""samba.evaluation: folds, intervals, paired tests, references, reconstruction baselines, JSON schemas."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from samba.evaluation import protocol, reconstruction, reference, stats
from samba.evaluation.run import METHODS, evaluate_all, render, verdict
from samba.evaluation.run import main as evaluation_main


def test_ci_of_a_known_sample():
    rows = [{"fold": f"f{i}", "seed": 0, "m": v} for i, v in enumerate([0.6, 0.7, 0.8])]
    ci = stats.bootstrap_ci(rows, "m")
    # t interval over 3 folds: 0.7 +- 4.303 * 0.1 / sqrt(3) = [0.4516, 0.9484]
    assert ci["mean"] == pytest.approx(0.7) and ci["ci95"] == pytest.approx([0.4516, 0.9484], abs=1e-3)
    many = [{"fold": f"f{i}", "seed": s, "m": 0.5 + 0.01 * i} for i in range(20) for s in range(3)]
    b = stats.bootstrap_ci(many, "m")
    assert b["ci95"][0] < b["mean"] < b["ci95"][1] and b["mean"] == pytest.approx(0.595)


def test_paired_test_known_cases():
    a = {f"f{i}": 0.8 for i in range(6)}
    b = {f"f{i}": 0.6 for i in range(6)}
    t = stats.paired_test(a, b)
    assert t["effect"] == pytest.approx(0.2) and t["p"] == pytest.approx(2 / 64)  # all 6 folds agree
    assert stats.paired_test(a, a)["p"] == 1.0
    three = stats.paired_test({"r4": 0.9, "r8": 0.9, "r12": 0.9}, {"r4": 0.5, "r8": 0.5, "r12": 0.5})
    assert three["p"] == pytest.approx(0.25) and stats.min_p(3) == 0.25  # 3 folds cannot reach 0.05
    rng = np.random.default_rng(0)
    big = {f"f{i}": float(v) for i, v in enumerate(rng.normal(0.1, 0.05, 20))}
    assert stats.paired_test(big, {k: 0.0 for k in big})["p"] < 0.001


def test_interpolation_beats_zeros_on_a_smooth_signal():
    t = torch.arange(256, dtype=torch.float32)
    x = torch.stack([torch.sin(2 * np.pi * t / 1024 + p) for p in (0.0, 1.0)])[None].repeat(4, 1, 1)  # (4, 2, 256)
    vis = reconstruction.masks_for(4, 256, seed=0)
    assert (~vis).any() and vis.any()
    l_zero = reconstruction.masked_l1(torch.zeros_like(x), x, vis)
    l_lin = reconstruction.masked_l1(reconstruction.interpolate(x, vis), x, vis)
    assert l_lin < 0.5 * l_zero
    assert reconstruction.masked_l1(x, x, vis) == 0.0


def test_tangent_space_separates_known_covariances():
    rng = np.random.default_rng(0)
    n, c, t = 40, 4, 256
    X = rng.normal(size=(n, c, t))
    y = np.repeat([0, 1], n // 2)
    X[y == 1, 0] *= 3.0  # class 1: more power on channel 0 (across the spectrum, so also in 8-30 Hz)
    proba = reference.fit_predict("tangent_space", X[::2], y[::2], X[1::2], 128.0)
    assert (proba.argmax(1) == y[1::2]).mean() > 0.9
    bp = reference.fit_predict("band_power", X[::2], y[::2], X[1::2], 128.0)
    assert (bp.argmax(1) == y[1::2]).mean() > 0.9


@pytest.fixture(scope="module")
def eyes(mirror):
    from samba.data import load_task

    return load_task("eyes-open-closed", mirror=mirror, profile="quick")


def test_folds_are_disjoint_and_cover(eyes, mirror):
    folds = protocol.task_folds(eyes)
    assert len(folds) == 6
    covered = np.concatenate([f.test for f in folds])
    assert len(np.unique(covered)) == len(covered)  # each window is tested at most once
    for f in folds:
        assert not set(f.train) & set(f.test)
        m = eyes.meta
        te0, te1 = m.onset_s.iloc[f.test].min(), (m.onset_s + m.window_s).iloc[f.test].max()
        s0, s1 = m.onset_s.iloc[f.train].to_numpy(), (m.onset_s + m.window_s).iloc[f.train].to_numpy()
        assert np.all((s1 <= te0 - 2.0 + 1e-6) | (s0 >= te1 + 2.0 - 1e-6))  # the 2 s gap
    from samba.data import load_task

    mi = load_task("eegmmidb-mi", mirror=mirror)
    runs = [set(mi.meta.run.iloc[f.test]) for f in protocol.task_folds(mi)]
    assert runs == [{4}, {8}, {12}]
    mat = load_task("eegmat-workload", mirror=mirror, profile="quick")
    mf = protocol.task_folds(mat)
    assert [f.test_subjects for f in mf] == [(s,) for s in (0, 1, 2, 3, 4, 5, 15, 16)]
    assert all(not set(mat.meta.subject.iloc[f.train]) & set(f.test_subjects) for f in mf)


def test_evaluation_json_schema_and_reference_above_chance(eyes, tmp_path):
    out = tmp_path / "evaluation.json"
    doc = evaluate_all(["eyes-open-closed"], ["reference", "random_init_probe"], seeds=1, profile="quick",
                       out=out, datasets={"eyes-open-closed": eyes}, command="test")
    on_disk = json.loads(out.read_text())
    assert on_disk["tasks"].keys() == doc["tasks"].keys() and on_disk["complete"] is True
    for key in ("commit", "device", "date", "command"):
        assert on_disk[key]
    e = on_disk["tasks"]["eyes-open-closed"]
    for key in ("protocol", "n_subjects", "n_folds", "chance", "methods", "paired_tests"):
        assert key in e
    assert e["chance"]["balanced_accuracy"] == 0.5 and e["test_subjects_seen_unlabelled"] == [1]
    for m, r in e["methods"].items():
        assert set(r) >= {"balanced_accuracy", "auroc", "epochs", "n_windows", "per_fold"}
        lo, hi = r["balanced_accuracy"]["ci95"]
        assert lo <= r["balanced_accuracy"]["mean"] <= hi
        assert len(r["per_fold"]) == e["n_folds"]
    # R01 vs R02 differ in occipital alpha: band power separates them on real data
    assert e["methods"]["reference"]["balanced_accuracy"]["mean"] > 0.8
    md = render(on_disk)
    assert "| reference |" in md and "chance" in md and "above chance" in md


def test_workers_give_the_same_document_as_one_process(eyes, tmp_path):
    kw = dict(tasks=["eyes-open-closed"], methods=["reference", "random_init_probe"], seeds=2, profile="quick",
              datasets={"eyes-open-closed": eyes}, command="test")
    one = evaluate_all(out=tmp_path / "one.json", workers=1, **kw)
    two = evaluate_all(out=tmp_path / "two.json", workers=2, **kw)
    assert (one["workers"], two["workers"]) == (1, 2) and one["complete"] and two["complete"]
    docs = [json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two")]
    for d in docs:
        del d["elapsed_s"], d["workers"], d["runs"]
    assert docs[0] == docs[1]
    methods = docs[1]["tasks"]["eyes-open-closed"]["methods"]
    assert methods["reference"]["seeds"] == [0] and methods["random_init_probe"]["seeds"] == [0, 1]
    rows = methods["random_init_probe"]["per_fold"]
    assert [r["seed"] for r in rows] == [0, 0, 1, 1]  # seed-major, each seed in fold order
    assert [r["fold"] for r in rows[:2]] == [r["fold"] for r in rows[2:]]
    assert [r["balanced_accuracy"] for r in rows[:2]] != [r["balanced_accuracy"] for r in rows[2:]]


def test_resume_runs_only_the_missing_units_and_gives_the_whole_document(eyes, tmp_path):
    kw = dict(tasks=["eyes-open-closed"], methods=["reference", "random_init_probe"], seeds=2, profile="quick",
              datasets={"eyes-open-closed": eyes}, command="test")
    whole = evaluate_all(out=tmp_path / "whole.json", **kw)
    # a run stopped after seed 0: drop seed 1's rows from the file (units are written whole)
    part = json.loads((tmp_path / "whole.json").read_text())
    probe = part["tasks"]["eyes-open-closed"]["methods"]["random_init_probe"]
    probe["per_fold"] = [r for r in probe["per_fold"] if r["seed"] == 0]
    del part["tasks"]["eyes-open-closed"]["methods"]["reference"]  # a method none of whose units had finished
    part["complete"] = False
    (tmp_path / "part.json").write_text(json.dumps(part))
    resumed = evaluate_all(out=tmp_path / "part.json", resume=True, **kw)
    assert resumed["complete"] and len(resumed["runs"]) == 2 and resumed["runs"][1]["device"] == whole["device"]
    assert resumed["tasks"] == json.loads(json.dumps(whole["tasks"]))
    # another evaluation in the same file is refused, not mixed in
    with pytest.raises(ValueError, match="--resume.*seeds_requested"):
        evaluate_all(out=tmp_path / "part.json", resume=True, **{**kw, "seeds": 3})
    with pytest.raises(ValueError, match="--resume.*other tasks or methods"):
        evaluate_all(out=tmp_path / "part.json", resume=True, **{**kw, "methods": ["reference"]})


def test_mixed_resume_keeps_units_of_another_commit_and_device_and_names_them(eyes, tmp_path):
    kw = dict(tasks=["eyes-open-closed"], methods=["reference", "random_init_probe"], seeds=2, profile="quick",
              datasets={"eyes-open-closed": eyes}, command="test")
    whole = evaluate_all(out=tmp_path / "whole.json", **kw)
    assert {(r["commit"], r["device"]) for m in whole["tasks"]["eyes-open-closed"]["methods"].values()
            for r in m["per_fold"]} == {(whole["commit"], whole["device"])}  # every row names where it ran
    # the same stopped run as above, written on a GPU at another commit by code that did not name its rows
    part = json.loads((tmp_path / "whole.json").read_text())
    probe = part["tasks"]["eyes-open-closed"]["methods"]["random_init_probe"]
    probe["per_fold"] = [{k: v for k, v in r.items() if k not in ("commit", "device")}
                         for r in probe["per_fold"] if r["seed"] == 0]
    del part["tasks"]["eyes-open-closed"]["methods"]["reference"]
    part.update(complete=False, commit="0123abc", device="Some GPU", runs=[{"command": "gpu", "workers": 8}])
    (tmp_path / "part.json").write_text(json.dumps(part))
    with pytest.raises(ValueError, match="--resume.*commit '0123abc'.*--mixed keeps them"):
        evaluate_all(out=tmp_path / "part.json", resume=True, **kw)
    (tmp_path / "other_device.json").write_text(json.dumps({**part, "commit": whole["commit"]}))
    with pytest.raises(ValueError, match="--resume.*device 'Some GPU'"):
        evaluate_all(out=tmp_path / "other_device.json", resume=True, **kw)
    other_folds = json.loads(json.dumps(part))
    other_folds["tasks"]["eyes-open-closed"]["folds"][0] = "block9"
    (tmp_path / "other_folds.json").write_text(json.dumps(other_folds))
    with pytest.raises(ValueError, match="other folds or another protocol for eyes-open-closed"):
        evaluate_all(out=tmp_path / "other_folds.json", resume=True, mixed=True, **kw)
    (tmp_path / "other_epochs.json").write_text(json.dumps(
        {**part, "profile_settings": {**part["profile_settings"], "finetune_epochs": 99}}))
    with pytest.raises(ValueError, match="other settings of profile 'quick'"):
        evaluate_all(out=tmp_path / "other_epochs.json", resume=True, mixed=True, **kw)
    mixed = evaluate_all(out=tmp_path / "part.json", resume=True, mixed=True, **kw)
    assert mixed["complete"] and mixed["commit"] == f"0123abc + {whole['commit']}"
    assert mixed["device"] == f"Some GPU + {whole['device']}"
    assert [(r["commit"], r["device"]) for r in mixed["runs"]] == [("0123abc", "Some GPU"),
                                                                 (whole["commit"], whole["device"])]
    rows = mixed["tasks"]["eyes-open-closed"]["methods"]["random_init_probe"]["per_fold"]
    assert {r["device"] for r in rows if r["seed"] == 0} == {"Some GPU"}
    assert {r["device"] for r in rows if r["seed"] == 1} == {whole["device"]}
    from samba.errors import UsageError
    with pytest.raises(UsageError, match="--mixed .* with --resume"):
        evaluation_main(["--mixed", "--out", str(tmp_path / "part.json")])
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("commit", "device")} for r in rs]  # noqa: E731
    assert strip(rows) == strip(whole["tasks"]["eyes-open-closed"]["methods"]["random_init_probe"]["per_fold"])


def test_a_worker_error_reaches_the_caller(eyes, tmp_path):
    with pytest.raises(ValueError, match="unknown device 'no-such-device'"):
        evaluate_all(["eyes-open-closed"], ["random_init_probe"], seeds=2, profile="quick", out=tmp_path / "e.json",
                     device="no-such-device", datasets={"eyes-open-closed": eyes}, workers=2)
    with pytest.raises(ValueError, match="workers must be"):
        evaluate_all(["eyes-open-closed"], ["reference"], seeds=1, profile="quick", out=tmp_path / "e.json",
                     datasets={"eyes-open-closed": eyes}, workers=0)


def test_holm_adjusts_a_family_and_render_reads_pretraining_as_one():
    from samba.evaluation.stats import holm
    from samba.evaluation.run import pretraining_family

    assert holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}) == pytest.approx(
        {"a": 0.04, "b": 0.09, "c": 0.09, "d": 0.5})  # 4 x 0.01; 3 x 0.03; max(0.09, 2 x 0.04); 1 x 0.5
    assert holm({"a": 0.4, "b": 0.3}) == pytest.approx({"a": 0.6, "b": 0.6})  # capped below by the step before
    test = lambda p: {"p": p, "effect": 0.1, "n": 6}  # noqa: E731
    doc = {"tasks": {"x": {"paired_tests": {"samba_finetune_vs_random_init_finetune": test(0.01),
                                            "samba_finetune_vs_best_reference": test(0.001)}},
                     "y": {"paired_tests": {"samba_probe_vs_random_init_probe": test(0.03)}}}}
    lines = "\n".join(pretraining_family(doc))
    assert "2 comparisons" in lines and "reference" not in lines  # only the pretraining tests form the family
    assert "x, samba_finetune: +0.100 balanced accuracy, p=0.01, Holm p=0.02: significant" in lines
    assert "y, samba_probe: +0.100 balanced accuracy, p=0.03, Holm p=0.03: significant" in lines
    del doc["tasks"]["y"]
    assert pretraining_family(doc) == []  # one test is no family


def test_verdict_words_follow_the_numbers():
    entry = {"chance": {"balanced_accuracy": 0.5}, "n_folds": 3,
             "methods": {"reference": {"balanced_accuracy": {"mean": 0.52, "ci95": [0.4, 0.6]}}},
             "paired_tests": {"samba_finetune_vs_random_init_finetune": {"p": 0.25, "effect": 0.1, "n": 3}}}
    words = " ".join(verdict("x", entry))
    assert "no method beats chance" in words and "cannot be decided with 3 folds" in words
    entry["n_folds"] = 8
    entry["paired_tests"]["samba_finetune_vs_random_init_finetune"] = {"p": 0.01, "effect": -0.1, "n": 8}
    assert "pretraining (samba_finetune): hurts" in " ".join(verdict("x", entry))
    entry["paired_tests"]["samba_finetune_vs_random_init_finetune"] = {"p": 0.09, "effect": 0.12, "n": 8}
    words = " ".join(verdict("x", entry))  # a large effect that misses alpha is not evidence of no effect
    assert "pretraining (samba_finetune): no significant difference (+0.120" in words and "does not help" not in words
    assert set(METHODS) == {"samba_finetune", "samba_probe", "random_init_finetune", "random_init_probe",
                            "eegnet", "reference"}


def test_pretraining_json_schema(tmp_path, mirror, monkeypatch):
    from samba import SAMBA
    from samba.checkpoint import save_model
    from test_train_pretrain import tiny_model_config

    from samba import SAMBAConfig

    model = SAMBA(SAMBAConfig(**tiny_model_config()))
    ckpt = save_model(tmp_path / "m.pt", model, extra={"eeg_hours_seen": 0.5})
    out = tmp_path / "pretraining.json"
    assert reconstruction.main(["--model", str(ckpt), "--out", str(out), "--mirror", str(mirror),
                                "--max-windows", "2", "--seen-windows", "1", "--against", str(ckpt)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["masked_l1"]) == {"checkpoint", "zeros", "interpolation", "random_init"}
    # --against: a second checkpoint on the same windows and masks (here the same one: no difference at all)
    vs = doc["against"]
    assert vs["masked_l1"] == doc["masked_l1"]["checkpoint"] and vs["eeg_hours_seen"] == 0.5
    assert vs["model"] == doc["model"] and doc["model"]["path"] == str(ckpt)
    assert doc["model"]["params"] == sum(p.numel() for p in model.parameters())
    assert doc["model"]["bidirectional"] is False
    assert vs["checkpoint_minus"]["mean"] == 0 and vs["checkpoint_minus"]["ci95"] == [0, 0]
    assert set(vs["per_device"]) == set(doc["per_device"])
    # the classical reference: its own key, scored on the same windows, fitted on the corpus only
    ref = doc["classical_reference"]
    assert 0 < ref["masked_l1"] < 10 and set(ref["per_device"]) == set(doc["per_device"])
    assert set(ref["checkpoint_minus"]) == set(doc["checkpoint_minus"]["zeros"])
    assert ref["checkpoint_minus"]["n_windows"] == doc["n_windows"]
    assert ref["fit"]["corpus_windows"] > 0 and ref["fit"]["order"] <= ref["fit"]["neighbourhood"]
    assert abs(sum(e["masked_l1"] * doc["per_device"][d]["n_windows"] for d, e in ref["per_device"].items())
               / doc["n_windows"] - ref["masked_l1"]) < 1e-6
    left = ref["left_edge_only"]  # the same model from the samples before each gap alone
    assert 0 < left["masked_l1"] < 10 and set(left["per_device"]) == set(doc["per_device"])
    assert left["checkpoint_minus"]["n_windows"] == doc["n_windows"]
    assert doc["eeg_hours_seen"] == 0.5 and doc["heldout_recordings"]
    assert all(0 < v < 10 for v in doc["masked_l1"].values())
    # each recording's and each device's means average back to the pooled ones, weighted by their windows
    per, dev = doc["per_recording"], doc["per_device"]
    assert sorted(per) == sorted(doc["heldout_recordings"])
    assert sum(e["n_windows"] for e in dev.values()) == doc["n_windows"]
    assert sum(e["n_recordings"] for e in dev.values()) == len(per)
    for k, v in doc["masked_l1"].items():
        assert abs(sum(e["masked_l1"][k] * e["n_windows"] for e in dev.values()) / doc["n_windows"] - v) < 1e-6
    # many sessions (EEGMAT: one per subject): the interval resamples sessions, not their correlated windows
    assert doc["checkpoint_minus"]["zeros"]["resampled"].startswith("sessions")
    assert dev["eegmat"]["n_sessions"] == dev["eegmat"]["n_recordings"] // 2  # rest and task runs of one session
    # EEGMMIDB S001's run 6 is in the corpus: its held-out runs are flagged, nothing else
    assert doc["subject_in_corpus"] and all(n.startswith("eegmmidb/S001/") for n in doc["subject_in_corpus"])
    # the recordings it trained on, scored the same way: none held out, one window each, the corpus's hours
    seen = doc["seen_recordings"]
    assert seen["recordings"] and not set(seen["recordings"]) & set(doc["heldout_recordings"])
    assert seen["n_windows"] == len(seen["recordings"]) and 0.5 < seen["corpus_hours"] < 100
    assert set(seen["masked_l1"]) == {"checkpoint", "zeros", "random_init"}
    assert set(seen["checkpoint_minus"]) == {"zeros", "random_init"}
    for key in ("commit", "device", "date", "command"):
        assert doc[key]


def test_figures_draw_with_labels(tmp_path):
    from samba import montage
    from samba.evaluation import figures

    fig = figures.validation_curve([{"eeg_hours_seen": 1.0, "masked_l1": 0.8}, {"eeg_hours_seen": 2.0, "masked_l1": 0.7}],
                                   {"zeros": 0.81, "interpolation": 0.9, "random_init": 0.85})
    ax = fig.axes[0]
    assert "hours" in ax.get_xlabel() and "L1" in ax.get_ylabel() and len(ax.lines) == 4
    pos = montage.positions(["C3", "Cz", "C4", "Pz", "Fz", "O1"])
    W = np.random.default_rng(0).dirichlet(np.ones(6), size=(3, 2))  # (S, O, C)
    fig = figures.cdse_topomaps(W, pos, ["step 0", "step 1", "step 2"])
    assert any("CDSE weight" in a.get_ylabel() for a in fig.axes)  # one shared colour bar
    gif = figures.cdse_gif(W, pos, [0, 1, 2], tmp_path / "cdse.gif")
    assert gif.stat().st_size > 0


def test_paired_difference_interval_covers_a_known_shift():
    rng = np.random.default_rng(0)
    b = rng.normal(1.0, 0.1, size=200)
    d = reconstruction.paired_difference(b - 0.05, b)  # every window 0.05 better
    assert abs(d["mean"] + 0.05) < 1e-12 and d["ci95"][0] - 1e-12 <= -0.05 <= d["ci95"][1] + 1e-12
    assert d["fraction_of_windows_better"] == 1.0
    noisy = reconstruction.paired_difference(b + rng.normal(0, 0.1, 200), b)
    assert noisy["ci95"][0] < 0 < noisy["ci95"][1]  # no shift: the interval straddles zero


def test_paired_difference_resamples_sessions_when_there_are_enough():
    # 6 sessions of 20 windows; each session's windows share its offset, so windows are not independent
    rng = np.random.default_rng(0)
    offsets = rng.normal(0, 1, 6)
    groups = np.repeat(np.arange(6), 20)
    a = offsets[groups] + rng.normal(0, 0.01, groups.size)
    by_rec = reconstruction.paired_difference(a, np.zeros_like(a), groups)
    by_win = reconstruction.paired_difference(a, np.zeros_like(a))
    assert by_rec["resampled"] == "sessions (6)" and by_win["resampled"].startswith("windows")
    assert by_rec["mean"] == by_win["mean"]
    width = lambda d: d["ci95"][1] - d["ci95"][0]
    assert width(by_rec) > 3 * width(by_win)  # the window bootstrap overstates the evidence
    few = reconstruction.paired_difference(a[:40], np.zeros(40), groups[:40])  # 2 sessions: windows, and says so
    assert few["resampled"].startswith("windows (40; fewer than 5")
    assert reconstruction.session_of("eegmat/Subject12_2.edf") == reconstruction.session_of("eegmat/Subject12_1.edf")
    assert reconstruction.session_of("no_such/file.edf") == ("no_such/file.edf",)


def test_several_workers_start_the_longest_units_first():
    from samba.evaluation.run import start_order

    units = [(s, t, m) for s in range(2) for t in ("short", "long") for m in ("reference", "samba_finetune")]
    folds = {"short": 3, "long": 20}
    assert start_order(units, folds, 1) == units  # one worker: seed-major, as given
    order = start_order(units, folds, 4)
    assert sorted(order) == sorted(units)
    assert order[:2] == [(0, "long", "samba_finetune"), (1, "long", "samba_finetune")]
    assert order[-2:] == [(0, "short", "reference"), (1, "short", "reference")]


def test_heldout_baselines_adds_the_ar_references_when_the_file_has_them():
    from samba.evaluation.figures import heldout_baselines

    doc = {"masked_l1": {"checkpoint": 0.82, "zeros": 0.84, "interpolation": 1.1, "random_init": 0.84}}
    assert heldout_baselines(doc) == {"zeros": 0.84, "interpolation": 1.1, "random_init": 0.84}
    doc["classical_reference"] = {"masked_l1": 0.80, "left_edge_only": {"masked_l1": 0.821}}
    lines = heldout_baselines(doc)
    assert "checkpoint" not in lines and sorted(lines.values()) == [0.80, 0.821, 0.84, 0.84, 1.1]


def test_recheck_reruns_units_and_measures_how_far_their_scores_moved(eyes, tmp_path, mirror):
    from samba.evaluation import recheck

    kw = dict(tasks=["eyes-open-closed"], methods=["reference", "random_init_probe"], seeds=1, profile="quick",
              datasets={"eyes-open-closed": eyes}, command="test")
    doc = evaluate_all(out=tmp_path / "e.json", **kw)
    units = [(0, "eyes-open-closed", "reference"), (0, "eyes-open-closed", "random_init_probe")]
    same = recheck.recheck(doc, units, "cpu", datasets={"eyes-open-closed": eyes})
    assert [r["balanced_accuracy"]["max_abs_diff"] for r in same] == [0.0, 0.0]  # same code, same device
    rows = doc["tasks"]["eyes-open-closed"]["methods"]["reference"]["per_fold"]
    rows[-1]["balanced_accuracy"] -= 0.25  # as if another device had scored this fold lower
    moved = recheck.recheck(doc, units[:1], "cpu", datasets={"eyes-open-closed": eyes})[0]
    assert moved["balanced_accuracy"]["max_abs_diff"] == pytest.approx(0.25)
    assert moved["balanced_accuracy"]["now"] - moved["balanced_accuracy"]["then"] == pytest.approx(0.25 / len(rows))
    with pytest.raises(ValueError, match="not in the file"):
        recheck.recheck(doc, [(1, "eyes-open-closed", "reference")], "cpu", datasets={"eyes-open-closed": eyes})
    with pytest.raises(ValueError, match="other weights than the file evaluated"):  # the weights changed since
        recheck.recheck({**doc, "init_sha256": "0" * 64}, units, "cpu", datasets={"eyes-open-closed": eyes})
    from samba.errors import UsageError
    with pytest.raises(UsageError, match="SEED:TASK:METHOD"):
        recheck.main([str(tmp_path / "e.json"), "--units", "eyes-open-closed:reference"])
    with pytest.raises(UsageError, match="not an evaluation file"):
        (tmp_path / "list.json").write_text("[1, 2]")
        recheck.main([str(tmp_path / "list.json"), "--units", "0:eyes-open-closed:reference"])
    assert recheck._unit("2:moabb:BNCI2014_001:eegnet") == (2, "moabb:BNCI2014_001", "eegnet")
    assert recheck.main([str(tmp_path / "e.json"), "--units", "0:eyes-open-closed:reference", "--device", "cpu",
                         "--mirror", str(mirror), "--out", str(tmp_path / "recheck.json")]) == 0
    written = json.loads((tmp_path / "recheck.json").read_text())
    assert written["units"][0]["unit"] == "0:eyes-open-closed:reference" and written["commit"] and written["date"]
    assert written["units"][0]["balanced_accuracy"]["max_abs_diff"] == 0.0  # the file on disk was not altered
