#!/usr/bin/env python3
"""usage: python scripts/make_figures.py

Redraw the figures of committed measurements, from the numbers committed beside them (no GPU, no data).

- results/bench_*.json              -> figures/bench_*_{context,throughput,realtime}.png (samba.bench.plot_bench;
                                       the current runs only: results/archive/ is not drawn)
- results/pretraining.json         -> figures/pretraining_curve.png (held-out masked L1 vs EEG hours seen in
                                       pretraining, the three baselines and the classical AR reference (both
                                       edges, and the left edge only) as horizontal lines; and each device's
                                       held-out error minus predicting zeros, with its AR reference dotted)
- results/cdse_over_pretraining.npz -> figures/cdse_over_pretraining.png and .gif (CDSE weights of the
                                       pretraining snapshots, one colour scale)
figures/provenance.json records, per figure, its source file and that file's commit, device, date and command.
No number is computed here; every figure is a drawing of a committed file.
"""
import datetime as _dt
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's samba, whichever Python runs the script
FIG = ROOT / "figures"


def pretraining_curve(js: Path, out: Path) -> Path:
    from samba.evaluation.figures import heldout_baselines, validation_curve

    doc = json.loads(js.read_text())
    base = heldout_baselines(doc)
    ref = doc.get("classical_reference")
    curve = list(doc["curve"])
    hours = doc.get("eeg_hours_seen")
    # the released checkpoint joins its snapshots (the lowest-validation step, so not always the last one)
    add_final = hours is not None and all(r["eeg_hours_seen"] != hours for r in curve)
    if add_final:
        curve = sorted(curve + [{"snapshot": "final", "eeg_hours_seen": hours,
                                 "masked_l1": doc["masked_l1"]["checkpoint"]}], key=lambda r: r["eeg_hours_seen"])
    per_dev = doc.get("per_device") and all("per_device" in r for r in doc["curve"])
    fig, axes = plt.subplots(1, 3 if per_dev else 2, figsize=(18 if per_dev else 12, 4))
    for ax in axes[:2]:
        validation_curve(curve, base, ax=ax)
    # middle: zoomed on the checkpoint's curve, where the baselines closest to it are told apart
    near = [r["masked_l1"] for r in curve] + [v for v in base.values()
                                                      if abs(v - doc["masked_l1"]["checkpoint"]) < 0.05]
    pad = 0.25 * (max(near) - min(near)) or 1e-3
    axes[1].set_ylim(min(near) - pad, max(near) + pad)
    axes[1].legend().remove()
    axes[0].set_title(f"Held-out masked reconstruction ({doc['n_windows']} windows of "
                      f"{len(doc['heldout_recordings'])} held-out recordings)", fontsize=9)
    axes[1].set_title("the same, zoomed on the checkpoint's curve", fontsize=9)
    if per_dev:  # right: each device's error relative to predicting zeros (below 0 = better than zeros)
        ax = axes[2]
        def with_final(pts, last):  # [(hours, value)] of the snapshots, the released checkpoint among them
            return list(zip(*sorted(pts + ([(hours, last)] if add_final else []))))

        for dev, final in doc["per_device"].items():
            hrs, rel = with_final([(r["eeg_hours_seen"], r["per_device"][dev] - final["masked_l1"]["zeros"])
                                   for r in doc["curve"]],
                                  final["masked_l1"]["checkpoint"] - final["masked_l1"]["zeros"])
            n = final.get("n_sessions")
            sessions = f"{n} session{'s' * (n != 1)}, " if n is not None else ""
            line, = ax.plot(hrs, rel, marker="o", label=f"{dev} ({final['n_recordings']} recordings, {sessions}"
                                                           f"{final['n_windows']} windows)")
            if ref and dev in ref.get("per_device", {}):  # that device's AR reference, same colour, dotted
                ax.axhline(ref["per_device"][dev]["masked_l1"] - final["masked_l1"]["zeros"], color=line.get_color(),
                           ls=":", lw=1.2)
        seen = doc.get("seen_recordings")
        if seen and all("seen_masked_l1" in r for r in doc["curve"]):  # the recordings it trained on, for contrast
            hrs, rel = with_final([(r["eeg_hours_seen"], r["seen_masked_l1"] - seen["masked_l1"]["zeros"])
                                   for r in doc["curve"]],
                                  seen["masked_l1"]["checkpoint"] - seen["masked_l1"]["zeros"])
            ax.plot(hrs, rel, marker="s", color="k", ls="-.", label=f"recordings it trained on ({len(seen['recordings'])}"
                    f" recordings, {seen['n_windows']} windows; {seen['corpus_hours']:.2f} h of corpus)")
        ax.axhline(0.0, color="k", lw=1, ls="--", label="predict zeros")
        ax.set_xlabel("EEG seen in pretraining (hours)")
        ax.set_ylabel("masked L1 minus zeros (units of robust s.d.)")
        ax.set_title("each device's held-out recordings (below 0: better than zeros"
                     + ("; dotted: its AR reference)" if ref else ")"), fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        fig.subplots_adjust(wspace=0.3)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def _source(path: Path, prov: dict) -> dict:
    keep = ("commit", "device", "date", "command", "run", "extraction")
    return {"file": str(path.relative_to(ROOT)), **{k: prov[k] for k in keep if k in prov}}


def main():
    FIG.mkdir(exist_ok=True)
    from samba.bench import plot_bench

    provenance = {}
    drawn_by = {"commit": _commit(), "date": _dt.date.today().isoformat(), "command": "python scripts/make_figures.py"}

    for js in sorted((ROOT / "results").glob("bench_*.json")):
        for p in plot_bench(js, FIG):
            print(p)
            provenance[Path(p).name] = _source(js, json.loads(js.read_text()))
    js = ROOT / "results" / "pretraining.json"
    if js.is_file():
        out = pretraining_curve(js, FIG / "pretraining_curve.png")
        print(out)
        provenance[out.name] = _source(js, json.loads(js.read_text()))
    else:
        print(f"{js.relative_to(ROOT)} absent: figures/pretraining_curve.png not redrawn")
    npz = ROOT / "results" / "cdse_over_pretraining.npz"
    if npz.is_file():
        from samba.evaluation.figures import draw_cdse_over_pretraining, load_cdse_over_pretraining

        arrays, prov = load_cdse_over_pretraining(npz)
        for out in draw_cdse_over_pretraining(arrays, FIG / "cdse_over_pretraining.png",
                                              FIG / "cdse_over_pretraining.gif"):
            print(out)
            provenance[out.name] = _source(npz, prov)
    for entry in provenance.values():
        entry["drawn_by"] = drawn_by
    target = FIG / "provenance.json"
    target.write_text(json.dumps(provenance, indent=1) + "\n")
    print(target)


if __name__ == "__main__":
    main()
