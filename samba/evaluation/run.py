"""The whole evaluation: every task x method on identical folds, several seeds, intervals, paired tests.

    python -m samba.evaluation.run --profile quick --methods reference samba_probe --out build/evaluation.json
    python -m samba.evaluation.run --profile full --init CKPT --workers 6 --out results/evaluation.json --max-minutes 8
    python -m samba.evaluation.run --render results/evaluation.json        # the markdown table and verdicts

Methods (all on ``protocol.task_folds``):
    samba_finetune        SAMBA from the checkpoint, fully fine-tuned for a fixed number of epochs
    samba_probe           logistic regression on the frozen checkpoint's pooled bottleneck features
    random_init_finetune  the same architecture from random initialisation, same loop (the control)
    random_init_probe     logistic regression on a randomly initialised encoder's features (the control)
    eegnet                braindecode EEGNet, same loop
    reference             the task's classical reference (``reference.REFERENCE_OF``)

Probes are cheap (features computed once per model and task, logistic regression per fold) and so are EEGNet
and the reference: they run on CPU. The two fine-tune methods are for the GPU. Deterministic methods
(samba_probe, reference) run once per fold: their seeds would be identical.

Budget of ``--profile full``: fine-tuning 6 epochs on at most 1024 stratified training windows per fold, EEGNet 30
epochs, probes on all windows (the run records its own time in ``elapsed_s``; on one H100 with ``--workers 8``, 2-3
of the 5 seeds of all four tasks took about 8 minutes). ``--max-minutes`` stops between units of work; run one
after another they go seed by seed and leave whole early seeds; each row records the seeds it holds. ``--resume`` continues a file
that a time budget stopped: the units it holds are kept, the others run (same commit, device, profile, checkpoint
weights (``init_sha256``), tasks, methods and seeds, or it refuses), and ``runs`` lists every invocation that
wrote it. ``--resume --mixed`` also keeps units written at another commit or on another device (say, the last
probes of a GPU run whose time ran out, finished on a CPU): every row names the commit and device that produced
it, and the document's ``commit`` and ``device`` name them all ("a + b"). The rest must still match.

A unit of work is one (seed, task, method). The units are small and leave most of a GPU and its host idle, so
``--workers N`` runs N of them at once, each in its own process on the same device with 1 / N of the CPU threads
(``--workers 6`` on a GPU machine of 16 cores). With several workers the longest units start first
(``start_order``), so the long ones run side by side instead of trailing behind the rest; with one worker they
start seed by seed. Either way no unit starts after ``--max-minutes``, and rows are ordered by seed and fold, so
the numbers do not depend on N. The default, 1, runs every unit in this process, one after another.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from . import protocol, reference, stats

TASKS = ("eegmmidb-mi", "eyes-open-closed", "eegmat-workload", "muse-p300")
METHODS = ("samba_finetune", "samba_probe", "random_init_finetune", "random_init_probe", "eegnet", "reference")
NEEDS_CHECKPOINT = ("samba_finetune", "samba_probe")
DETERMINISTIC = ("samba_probe", "reference")
PROFILES = {
    # CPU smoke run for CI: tiny data, two folds, one epoch
    "quick": dict(tasks=("eyes-open-closed",), data_profile="quick", max_folds=2, finetune_epochs=1,
                  eegnet_epochs=2, max_train_windows=48, batch_size=16),
    "full": dict(tasks=TASKS, data_profile="full", max_folds=None, finetune_epochs=6, eegnet_epochs=30,
                 max_train_windows=1024, batch_size=64),
}


def chance_level(y: np.ndarray) -> dict:
    """Balanced accuracy and AUROC of a classifier that ignores the input: 1 / K and 0.5."""
    return {"balanced_accuracy": 1.0 / len(np.unique(y)), "auroc": 0.5}


def _scores(y, proba):
    from samba.train.metrics import classification_metrics

    m = classification_metrics(y, proba, 2, from_logits=False)
    return m["balanced_accuracy"], m["auroc"]


def _probe_features(ds, init, seed, device, samba_config=None):
    """Pooled bottleneck features (N, D * k) of every window for a frozen encoder (label-free input scale)."""
    import torch

    from samba.train.baselines import build_model
    from samba.train.finetuning import _device, _features, _robust_scale

    dev = _device(device)
    rng = np.random.default_rng(seed)
    all_idx = np.arange(len(ds))
    torch.manual_seed(seed)
    net = build_model("samba", n_chans=ds.n_channels, n_outputs=2, n_times=ds.n_times, sfreq=ds.sfreq,
                      positions=np.asarray(ds.positions).tolist(), ch_names=list(ds.ch_names),
                      pretrained=init, freeze_encoder=True, input_scale=_robust_scale(ds.X, all_idx, rng),
                      samba_config=samba_config).to(dev)
    return _features(net, ds.X, all_idx, dev).cpu().numpy()


def _logreg(F_tr, y_tr, F_te, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=3000,
                                                             random_state=seed))
    clf.fit(F_tr, y_tr)
    out = np.zeros((len(F_te), 2))
    out[:, clf.classes_.astype(int)] = clf.predict_proba(F_te)
    return out


def run_method(method, ds, folds, seed, P, init=None, device=None, samba_config=None, cache=None) -> list[dict]:
    """Per-fold rows ``{fold, seed, balanced_accuracy, auroc, n_train, n_test, epochs}`` of one method and seed."""
    import torch

    from samba.train.finetuning import _cap, _device, fit_classifier, predict

    y = ds.y
    rows = []
    if method in ("samba_probe", "random_init_probe"):
        key = (method, seed if method == "random_init_probe" else 0)
        if cache is None or key not in cache:
            feats = _probe_features(ds, init if method == "samba_probe" else None, seed, device, samba_config)
            if cache is not None:
                cache[key] = feats
        feats = cache[key] if cache is not None else feats
    for f in folds:
        tr, te = f.train, f.test
        epochs, batch = 0, None
        if method == "reference":
            proba = reference.fit_predict(reference.REFERENCE_OF[ds.task], ds.X[tr], y[tr], ds.X[te], ds.sfreq, seed)
        elif method in ("samba_probe", "random_init_probe"):
            proba = _logreg(feats[tr], y[tr], feats[te], seed)
        else:
            model = "eegnet" if method == "eegnet" else "samba"
            epochs = P["eegnet_epochs"] if method == "eegnet" else P["finetune_epochs"]
            tr = _cap(tr, y, P["max_train_windows"], np.random.default_rng(seed))
            net, _, info = fit_classifier(ds, tr, model=model, init=init if method == "samba_finetune" else None,
                                          seed=seed, epochs=epochs, batch_size=P["batch_size"], device=device,
                                          samba_config=samba_config if model == "samba" else None)
            batch = info["batch_size"]
            logits = predict(net, ds.X, te, _device(device))
            proba = torch.softmax(torch.from_numpy(logits).float(), 1).numpy()
        ba, auc = _scores(y[te], proba)
        rows.append({"fold": f.name, "seed": seed, "balanced_accuracy": ba, "auroc": auc,
                     "n_train": int(len(tr)), "n_test": int(len(te)), "epochs": epochs,
                     **({"batch_size": batch} if epochs else {})})
    return rows


def summarise(task_rows: dict[str, list[dict]]) -> dict:
    """Method -> ``{balanced_accuracy: {mean, ci95}, auroc, epochs, n_windows, seeds, per_fold}``."""
    out = {}
    for method, rows in task_rows.items():
        if not rows:
            continue
        out[method] = {
            "balanced_accuracy": stats.bootstrap_ci(rows, "balanced_accuracy"),
            "auroc": stats.bootstrap_ci(rows, "auroc"),
            "epochs": int(max(r["epochs"] for r in rows)),
            "n_windows": {"train_per_fold": int(np.mean([r["n_train"] for r in rows])),
                          "test_total": int(sum(r["n_test"] for r in rows if r["seed"] == rows[0]["seed"]))},
            "seeds": sorted({r["seed"] for r in rows}),
            **({"batch_sizes": sorted({r["batch_size"] for r in rows if "batch_size" in r})}
               if any("batch_size" in r for r in rows) else {}),
            "per_fold": rows,
        }
    return out


def paired_tests(methods: dict) -> dict:
    """SAMBA vs its random-init control (fine-tune and probe) and vs the best non-SAMBA method, on fold means."""
    def fm(m, key="balanced_accuracy"):
        return stats.fold_means(methods[m]["per_fold"], key) if m in methods else {}

    tests = {}
    for a, b in (("samba_finetune", "random_init_finetune"), ("samba_probe", "random_init_probe")):
        if a in methods and b in methods:
            tests[f"{a}_vs_{b}"] = stats.paired_test(fm(a), fm(b))
    refs = [m for m in ("eegnet", "reference") if m in methods]
    if refs:
        best = max(refs, key=lambda m: methods[m]["balanced_accuracy"]["mean"] or -1)
        for a in ("samba_finetune", "samba_probe"):
            if a in methods:
                t = stats.paired_test(fm(a), fm(best))
                tests[f"{a}_vs_best_reference"] = {**t, "reference": best}
    return tests


def verdict(task: str, entry: dict, alpha: float = 0.05) -> list[str]:
    """Plain-words conclusions generated from the numbers (never written by hand)."""
    chance = entry["chance"]["balanced_accuracy"]
    lines = []
    above = [m for m, r in entry["methods"].items()
             if r["balanced_accuracy"]["ci95"][0] is not None and r["balanced_accuracy"]["ci95"][0] > chance]
    if not above:
        lines.append(f"no method beats chance ({chance:.2f}) with 95 % confidence")
    else:
        lines.append(f"above chance ({chance:.2f}) with 95 % confidence: {', '.join(above)}")
    floor = stats.min_p(entry["n_folds"])
    for name, t in entry["paired_tests"].items():
        if t.get("p") is None:
            continue
        a, b = name.split("_vs_")
        b = t.get("reference", b)
        what = "pretraining" if b.startswith("random_init") else f"{a} vs {b}"
        d = f"{t['effect']:+.3f} balanced accuracy, p={t['p']:.3g}, {t['n']} folds"
        if t["p"] < alpha:
            word = ("helps" if t["effect"] > 0 else "hurts") if what == "pretraining" else \
                ("SAMBA is better" if t["effect"] > 0 else "SAMBA is worse")
        elif floor >= alpha:
            word = f"cannot be decided with {entry['n_folds']} folds (smallest reachable p={floor:.3g})"
        else:  # not "does not help": a test that misses alpha shows no effect, it does not show its absence
            word = "no significant difference"
        lines.append(f"{what} ({a}): {word} ({d})")
    return lines


def render(doc: dict) -> str:
    """Markdown: one table per task (mean [95 % CI], epochs, windows, seeds), the chance level and verdicts."""
    out = [f"Evaluation at commit {doc.get('commit')} on {doc.get('device')}, {doc.get('date')}: `{doc.get('command')}`", ""]
    for task, e in doc["tasks"].items():
        out.append(f"### {task}: {e['protocol']} ({e['n_folds']} folds, {e['n_subjects']} subject(s)); "
                   f"chance: balanced accuracy {e['chance']['balanced_accuracy']:.2f}, AUROC 0.50")
        if e.get("test_subjects_seen_unlabelled"):
            out.append(f"Test subjects whose other recordings were in the pretraining corpus (unlabelled): "
                       f"{e['test_subjects_seen_unlabelled']}")
        out += ["", "| method | balanced accuracy [95 % CI] | AUROC [95 % CI] | epochs | train windows / fold | "
                "test windows | seeds |", "|---|---|---|---|---|---|---|"]
        for m, r in e["methods"].items():
            def cell(k):
                v = r[k]
                if v["mean"] is None:
                    return "n/a"
                return f"{v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"
            out.append(f"| {m} | {cell('balanced_accuracy')} | {cell('auroc')} | {r['epochs']} | "
                       f"{r['n_windows']['train_per_fold']} | {r['n_windows']['test_total']} | {len(r['seeds'])} |")
        out.append("")
        out += [f"- {line}" for line in verdict(task, e)]
        out.append("")
    out += pretraining_family(doc)
    return "\n".join(out)


def pretraining_family(doc: dict, alpha: float = 0.05) -> list[str]:
    """Markdown lines: every SAMBA-vs-random-init test of the document as one family, Holm-adjusted (several tasks
    and two methods each are several chances of a false "pretraining helps"); none when fewer than two tests."""
    tests = {(task, name): t for task, e in doc["tasks"].items() for name, t in e.get("paired_tests", {}).items()
             if "_vs_random_init" in name and t.get("p") is not None}
    if len(tests) < 2:
        return []
    adjusted = stats.holm({k: t["p"] for k, t in tests.items()})
    out = [f"### Pretraining across tasks: {len(tests)} comparisons with random initialisation, Holm-adjusted", ""]
    for (task, name), t in sorted(tests.items(), key=lambda kv: kv[1]["p"]):
        word = "significant" if adjusted[(task, name)] < alpha else "not significant"
        out.append(f"- {task}, {name.split('_vs_')[0]}: {t['effect']:+.3f} balanced accuracy, p={t['p']:.3g}, "
                   f"Holm p={adjusted[(task, name)]:.3g}: {word}")
    return out + [""]


def git_commit() -> str:
    import subprocess

    if os.environ.get("SAMBA_COMMIT"):
        return os.environ["SAMBA_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except Exception:
        return "unknown"


def device_name(device=None) -> str:
    import platform

    import torch

    from samba.devices import resolve_device

    dev = resolve_device(device)  # "auto", "CUDA", "cuda:1": the device that will run, named
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev.index or 0)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def atomic_write_json(obj, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(_clean(obj), fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        return _clean(v.item())
    return v


_WORKER_STATE: dict = {}  # in a worker process: what every unit reads (see ``_run_unit``)


def _start_worker(state: dict, threads: int) -> None:
    """Pool initializer: the evaluation's inputs, received once per worker, and its share of the CPU threads."""
    import torch

    torch.set_num_threads(threads)
    _WORKER_STATE.update(state)


def _run_unit(state: dict, seed: int, task: str, method: str) -> tuple[list[dict], str]:
    """One (seed, task, method) in the process that runs it: its per-fold rows and the device it ran on."""
    rows = run_method(method, state["data"][task], state["folds"][task], seed, state["P"], state["init"],
                      state["device"], state["samba_config"], state["caches"][task])
    return rows, device_name(state["device"])


def _run_unit_in_worker(seed: int, task: str, method: str) -> tuple[list[dict], str]:
    """``_run_unit`` on the state this worker received (only the unit's key crosses the process boundary)."""
    return _run_unit(_WORKER_STATE, seed, task, method)


def _finished(value) -> Future:
    f = Future()
    f.set_result(value)
    return f


# Relative length of one fold of each method's unit, for the start order only: trained methods (EEGNet trains
# longer but is far smaller than SAMBA) before the probes and the reference, which fit one classifier on features.
_FOLD_COST = {"samba_finetune": 3, "random_init_finetune": 3, "eegnet": 2, "samba_probe": 1, "random_init_probe": 1,
              "reference": 1}


def start_order(units: list[tuple], n_folds: dict[str, int], workers: int) -> list[tuple]:
    """The order ``(seed, task, method)`` units start in. One worker: as given (seed-major, so a stop at the time
    budget leaves whole early seeds). Several: longest first (a task's folds times the method's cost per fold;
    eegmat-workload has 20 folds against 3-6 elsewhere), then by seed, so the long units do not form a tail."""
    if workers == 1:
        return list(units)
    return sorted(units, key=lambda u: (-n_folds[u[1]] * _FOLD_COST.get(u[2], 1), u[0]))


def _executor(state: dict, workers: int):
    """``(context, submit)``: ``submit((seed, task, method))`` returns the unit's future.

    One worker: ``submit`` runs the unit here and returns it finished, so the loop is the plain sequential one.
    More: a pool whose processes start from a fresh interpreter (forkserver, else spawn) and receive ``state``
    once each. Never a fork of this process: the child would inherit its OpenMP thread pool, which hangs the
    child's first parallel torch operation, and its CUDA state, had it initialised CUDA."""
    if workers == 1:
        return nullcontext(), lambda unit: _finished(_run_unit(state, *unit))
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(state, threads))
    return pool, lambda unit: pool.submit(_run_unit_in_worker, *unit)


def _resumable(path: Path, doc: dict, tasks: list, methods, units: list, folds: dict,
               mixed: bool = False) -> tuple[dict, list, float]:
    """The finished units of an earlier, stopped run in ``path``: ``(done, runs, elapsed_s)``.

    Refuses (ValueError) a file written by other code or on another device (unless ``mixed``), or for another
    evaluation: its units would not mix. Rows that do not name their commit and device get the file's."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--resume: cannot read {path}: {err}") from None
    same = ("profile", "init", "init_sha256", "seeds_requested") + (() if mixed else ("commit", "device"))
    for key in same:
        if old.get(key) != doc[key]:
            hint = "; --mixed keeps them" if key in ("commit", "device") else ""
            raise ValueError(f"--resume: {path} has {key} {old.get(key)!r}, this run {doc[key]!r}; use another --out"
                             + hint)
    if "profile_settings" in old and old["profile_settings"] != doc["profile_settings"]:  # older files lack it
        raise ValueError(f"--resume: {path} was run with other settings of profile {doc['profile']!r} "
                         f"({old['profile_settings']}, now {doc['profile_settings']}); use another --out")
    # every task is written from the first unit on; a method appears once one of its units has finished
    if sorted(old.get("tasks", {})) != sorted(tasks) or any(
            not set(e.get("methods", {})) <= set(methods) for e in old["tasks"].values()):
        raise ValueError(f"--resume: {path} holds other tasks or methods; use another --out")
    for t, entry in old["tasks"].items():  # the same folds, whatever the commit: units on other folds would not mix
        if entry.get("folds") != [f.name for f in folds[t]] or entry.get("protocol") != protocol.PROTOCOL_OF[t]:
            raise ValueError(f"--resume: {path} has other folds or another protocol for {t}; use another --out")
    done: dict[tuple, list[dict]] = {}
    for seed, t, m in units:
        rows = [r for r in old["tasks"][t]["methods"].get(m, {}).get("per_fold", []) if r.get("seed") == seed]
        if rows:  # a unit is written whole (all its folds) or not at all
            done[(seed, t, m)] = [{**r, "commit": r.get("commit", old.get("commit")),
                                   "device": r.get("device", old.get("device"))} for r in rows]
    runs = [{**r, "commit": r.get("commit", old.get("commit")), "device": r.get("device", old.get("device"))}
            for r in old.get("runs") or [{"command": old.get("command", ""), "date": old.get("date"),
                                          "workers": old.get("workers")}]]
    return done, runs, float(old.get("elapsed_s") or 0.0)


def checkpoint_sha256(init) -> str | None:
    """The weights' sha256 of a checkpoint folder (its verified manifest) or file: which model was evaluated."""
    from samba.checkpoint import weights_sha256

    if init is None or not Path(init).exists():
        return None
    return weights_sha256(init)


def evaluate_all(tasks=None, methods=METHODS, seeds: int = 5, profile: str = "quick", init: str | None = None,
                 out="build/evaluation.json", max_minutes: float | None = None, mirror=None, device=None,
                 command: str = "", samba_config=None, datasets: dict | None = None, workers: int = 1,
                 resume: bool = False, mixed: bool = False) -> dict:
    """Run the evaluation and write ``out`` (atomically, after every unit of work); returns the document.

    ``workers`` units run at once, each in its own process (see the module's docstring); the document is the
    same for every ``workers`` but for its ``elapsed_s``, ``workers`` and ``runs``. ``resume``: keep the units
    that ``out`` already holds; ``mixed``: also those of another commit or device (see the module's docstring)."""
    from samba.data import corpus
    from samba.train.finetuning import _load_task

    P = PROFILES[profile]
    tasks = list(tasks or P["tasks"])
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    if init in (None, "", "scratch"):
        init = None
        if any(m in NEEDS_CHECKPOINT for m in methods):
            raise ValueError(f"methods {[m for m in methods if m in NEEDS_CHECKPOINT]} need --init CKPT")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number of at least 1, got {workers!r}")
    t0 = time.perf_counter()
    data = {t: (datasets or {}).get(t) or _load_task(t, mirror, P["data_profile"]) for t in tasks}
    folds = {t: protocol.task_folds(ds, P["max_folds"]) for t, ds in data.items()}
    state = {"data": data, "folds": folds, "P": P, "init": init, "device": device, "samba_config": samba_config,
             "caches": {t: {} for t in tasks}}  # probe features, per process
    # seed-major, so that a stop at the time budget leaves whole early seeds; deterministic methods at seed 0 only
    units = [(seed, t, m) for seed in range(seeds) for t in tasks for m in methods
             if seed == 0 or m not in DETERMINISTIC]
    done: dict[tuple, list[dict]] = {}  # (seed, task, method) -> that unit's rows, in fold order
    settings = {k: v for k, v in P.items() if k != "tasks"}  # what a unit's numbers depend on, beside the code
    doc = {"tasks": {}, "profile": profile, "profile_settings": settings, "init": init,
           "init_sha256": checkpoint_sha256(init),
           "seeds_requested": int(seeds), "complete": False, "commit": git_commit(), "device": device_name(device),
           "date": _dt.date.today().isoformat(), "command": command, "workers": workers}
    runs, elapsed_before = [], 0.0
    if resume and Path(out).is_file():
        done, runs, elapsed_before = _resumable(Path(out), doc, tasks, methods, units, folds, mixed)
        units = [u for u in units if u not in done]
        print(f"resuming {out}: {len(done)} units done, {len(units)} to run", file=sys.stderr)
    runs = runs + [{"command": command, "date": doc["date"], "workers": workers, "device": doc["device"],
                    "commit": doc["commit"]}]

    def publish():
        for t in tasks:
            ds = data[t]
            # rows by seed, then fold: the same document whatever order the units finished in
            rows = {m: [r for key in sorted(done) if key[1:] == (t, m) for r in done[key]] for m in methods}
            seen = corpus.seen_unlabelled(t, {s for f in folds[t] for s in f.test_subjects})
            entry = {"protocol": protocol.PROTOCOL_OF[t], "n_subjects": int(ds.meta.subject.nunique()),
                     "n_folds": len(folds[t]), "folds": [f.name for f in folds[t]], "chance": chance_level(ds.y),
                     "test_subjects_seen_unlabelled": sorted(seen), "methods": summarise(rows)}
            entry["paired_tests"] = paired_tests(entry["methods"])
            entry["verdict"] = verdict(t, entry)
            doc["tasks"][t] = entry
        doc["elapsed_s"] = round(elapsed_before + time.perf_counter() - t0, 1)
        doc["runs"] = runs
        for key in ("commit", "device"):  # every value that produced a row, in run order ("a + b" when mixed)
            seen = list(dict.fromkeys(r[key] for u in sorted(done) for r in done[u]))
            if seen:
                named = [v for v in dict.fromkeys(r[key] for r in runs) if v in seen]
                doc[key] = " + ".join(named + [v for v in seen if v not in named])
        atomic_write_json(doc, out)

    context, submit = _executor(state, workers)
    running: dict[Future, tuple] = {}
    todo = iter(start_order(units, {t: len(f) for t, f in folds.items()}, workers))
    stopped = False
    with context:  # on an error, the units still running finish before it is raised here
        while True:
            while len(running) < workers and not stopped and (unit := next(todo, None)):
                if max_minutes and time.perf_counter() - t0 > 60 * max_minutes:
                    stopped = True  # no new unit after the budget; those running finish
                else:
                    running[submit(unit)] = unit
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                seed, t, m = unit = running.pop(f)
                rows, device_used = f.result()  # a unit's error is raised here, as the unit raised it
                runs[-1]["device"] = device_used
                done[unit] = [{**r, "commit": runs[-1]["commit"], "device": device_used} for r in rows]
                print(f"[{time.perf_counter() - t0:7.1f}s] seed {seed} {t} {m} done", file=sys.stderr)
                publish()
    doc["complete"] = not stopped
    doc["device"] = doc["device"] or device_name(device)  # no unit ran: ask here, now that no worker is left
    publish()
    return doc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m samba.evaluation.run", description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    p.add_argument("--init", default=None, help="pretrained SAMBA checkpoint (needed by samba_finetune / samba_probe)")
    p.add_argument("--methods", nargs="+", default=None, help=f"default: all ({' '.join(METHODS)}); "
                   "without --init, the methods that need no checkpoint")
    p.add_argument("--tasks", nargs="+", default=None, help="default: the profile's")
    p.add_argument("--seeds", type=int, default=None, help="default: 2 (quick), 5 (full)")
    p.add_argument("--out", default="build/evaluation.json")
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--workers", type=int, default=1, help="units of work run at once, each in its own process "
                   "on the same device (default: 1, one after another in this process)")
    p.add_argument("--resume", action="store_true", help="keep the units that --out already holds (a run that "
                   "--max-minutes stopped) and run the rest")
    p.add_argument("--mixed", action="store_true", help="with --resume: also keep units written at another commit "
                   "or on another device; every row names its commit and device")
    p.add_argument("--mirror", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--render", metavar="JSON", default=None, help="print the table of an existing file and exit")
    a = p.parse_args(argv)
    from samba.errors import UsageError

    if a.render:
        try:
            print(render(json.loads(Path(a.render).read_text())))
        except (OSError, ValueError, KeyError) as err:
            raise UsageError(f"cannot render {a.render}: {err}") from None
        return 0
    if a.mixed and not a.resume:
        raise UsageError("--mixed keeps the units of a file being resumed: give it with --resume")
    seeds = a.seeds or (2 if a.profile == "quick" else 5)
    methods = a.methods or [m for m in METHODS if a.init or m not in NEEDS_CHECKPOINT]
    try:
        doc = evaluate_all(a.tasks, methods, seeds, a.profile, a.init, a.out, a.max_minutes,
                           a.mirror or os.environ.get("SAMBA_DATA_MIRROR"), a.device, workers=a.workers, resume=a.resume,
                           mixed=a.mixed,
                           command="python -m samba.evaluation.run " + " ".join(argv if argv is not None else sys.argv[1:]))
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(render(doc))
    print(str(a.out))
    return 0


if __name__ == "__main__":
    from samba.errors import run_main

    sys.exit(run_main(main))
